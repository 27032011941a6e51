"""agreement: recompute annotator agreement (see ``annota.server.domain.agreement``)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from annota.server.domain.agreement import label_questions, recompute_alpha, recompute_records
from annota.server.jobs.backfills.base import Backfill


class Agreement(Backfill):
    name = "agreement"
    version = 1
    since = "4700fbf00e8f"
    description = ("annotator agreement per record and label question (percent agreement) "
                   "and per question (Krippendorff's alpha, nominal)")

    def recompute(self, connection: sa.Connection, dataset_id: uuid.UUID,
                  record_ids: list[uuid.UUID]) -> None:
        recompute_records(connection, dataset_id, record_ids)

    def finish(self, connection: sa.Connection, dataset_id: uuid.UUID) -> None:
        for question_id in label_questions(connection, dataset_id).values():
            recompute_alpha(connection, question_id)

