"""Annotator agreement: per record and label question, the annotators' percent agreement
(stored in ``record_agreements`` with the value counts), and per question Krippendorff's
alpha (nominal) over the dataset (``question_agreements``), from submitted responses."""

from __future__ import annotations

import uuid
from collections import Counter

import sqlalchemy as sa

from annota.server.domain import models as m
from annota.server.domain.krippendorff import alpha_nominal, percent_agreement

RESPONSES, QUESTIONS = m.Response.__table__, m.Question.__table__
RECORD_AGREEMENTS, QUESTION_AGREEMENTS = (m.RecordAgreement.__table__,
                                          m.QuestionAgreement.__table__)
LABEL_QUESTIONS = ("label_selection",)


def label_questions(connection: sa.Connection, dataset_id: uuid.UUID) -> dict[str, uuid.UUID]:
    rows = connection.execute(sa.select(QUESTIONS.c.name, QUESTIONS.c.id, QUESTIONS.c.settings)
                              .where(QUESTIONS.c.dataset_id == dataset_id))
    return {r.name: r.id for r in rows if (r.settings or {}).get("type") in LABEL_QUESTIONS}


def recompute_records(connection: sa.Connection, dataset_id: uuid.UUID,
                      record_ids: list[uuid.UUID]) -> int:
    """Recompute the per-record agreement of these records; writes only the rows whose
    values change (a rerun writes nothing) and marks the questions' alpha stale only then.
    Returns how many rows it wrote or deleted."""
    questions = label_questions(connection, dataset_id)
    if not questions or not record_ids:
        return 0
    counts: dict[tuple[uuid.UUID, uuid.UUID], Counter] = {
        (r, q): Counter() for r in record_ids for q in questions.values()}
    for row in connection.execute(
        sa.select(RESPONSES.c.record_id, RESPONSES.c["values"])
        .where(RESPONSES.c.record_id.in_(record_ids), RESPONSES.c.status == "submitted")
    ):
        for question, answer in (row.values or {}).items():
            value = answer.get("value") if isinstance(answer, dict) else answer
            if question in questions and value is not None:
                counts[row.record_id, questions[question]][str(value)] += 1
    wanted = {key: {"responses": sum(c.values()), "value_counts": dict(c),
                    "percent_agreement": percent_agreement(c)} for key, c in counts.items()}
    stored = {(r.record_id, r.question_id): r for r in connection.execute(
        sa.select(RECORD_AGREEMENTS).where(RECORD_AGREEMENTS.c.record_id.in_(record_ids)))}
    gone = [r.id for key, r in stored.items() if key not in wanted]
    changed = [{"row_id": stored[key].id, **values} for key, values in wanted.items()
               if key in stored and _differs(stored[key], values)]
    now = m.utcnow()
    new = [{"id": uuid.uuid4(), "record_id": record, "question_id": question,
            "inserted_at": now, "updated_at": now, **values}
           for (record, question), values in wanted.items() if (record, question) not in stored]
    if gone:
        connection.execute(sa.delete(RECORD_AGREEMENTS).where(RECORD_AGREEMENTS.c.id.in_(gone)))
    if changed:
        connection.execute(
            sa.update(RECORD_AGREEMENTS).where(RECORD_AGREEMENTS.c.id == sa.bindparam("row_id"))
            .values(updated_at=now, **{c: sa.bindparam(c, type_=RECORD_AGREEMENTS.c[c].type)
                                       for c in ("responses", "value_counts",
                                                 "percent_agreement")}), changed)
    if new:
        connection.execute(sa.insert(RECORD_AGREEMENTS), new)
    if gone or changed or new:
        connection.execute(sa.update(QUESTION_AGREEMENTS)
                           .where(QUESTION_AGREEMENTS.c.question_id.in_(questions.values()),
                                  QUESTION_AGREEMENTS.c.stale.is_not(True))
                           .values(stale=True, updated_at=now))
    return len(gone) + len(changed) + len(new)


def _differs(row: sa.Row, values: dict) -> bool:
    return (row.responses != values["responses"] or dict(row.value_counts or {})
            != values["value_counts"] or row.percent_agreement != values["percent_agreement"])


def recompute_alpha(connection: sa.Connection, question_id: uuid.UUID) -> float | None:
    """Krippendorff's alpha of one question from the stored per-record value counts,
    written only when it (or its unit count) changed, or it was stale."""
    units = [row[0] for row in connection.execute(
        sa.select(RECORD_AGREEMENTS.c.value_counts)
        .where(RECORD_AGREEMENTS.c.question_id == question_id))]
    alpha = alpha_nominal(units)
    pairable = sum(1 for u in units if sum(u.values()) >= 2)
    now = m.utcnow()
    values = {"units": pairable, "alpha": alpha, "stale": False}
    stored = connection.execute(sa.select(QUESTION_AGREEMENTS).where(
        QUESTION_AGREEMENTS.c.question_id == question_id)).first()
    if stored is None:
        connection.execute(sa.insert(QUESTION_AGREEMENTS).values(
            id=uuid.uuid4(), question_id=question_id, inserted_at=now, updated_at=now,
            **values))
    elif (stored.units, stored.alpha, stored.stale) != (pairable, alpha, False):
        connection.execute(sa.update(QUESTION_AGREEMENTS)
                           .where(QUESTION_AGREEMENTS.c.id == stored.id)
                           .values(updated_at=now, **values))
    return alpha


def question_alphas(connection: sa.Connection, dataset_id: uuid.UUID) -> dict[str, float | None]:
    """{question name: alpha}, recomputing those that writes made stale."""
    result = {}
    for name, question_id in label_questions(connection, dataset_id).items():
        row = connection.execute(sa.select(QUESTION_AGREEMENTS.c.alpha, QUESTION_AGREEMENTS.c.stale)
                                 .where(QUESTION_AGREEMENTS.c.question_id == question_id)).first()
        result[name] = (recompute_alpha(connection, question_id) if row is None or row.stale
                        else row.alpha)
    return result
