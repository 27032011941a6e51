"""Jobs: the backfill state machine, the backfills themselves, and running them in-process
or on RQ workers."""
