"""The annotation model and the operations on it: workspaces, datasets (with their
settings), records (validated against them), users, and the derived data that writes
keep current (record status, agreement)."""
