"""The revision history itself: one line, release tags, and agreement with Alembic."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory

from annota.errors import AnnotaError, UnknownRevisionError
from annota.server.schema.history import History, history
from annota.server.schema.migrate import _alembic_config


def test_alembic_sees_the_same_linear_history_with_one_head():
    script = ScriptDirectory.from_config(_alembic_config())
    assert script.get_heads() == [history().head.revision]
    alembic_order = [s.revision for s in reversed(list(script.walk_revisions()))]
    assert alembic_order == [r.revision for r in history().revisions]
    for ours in history().revisions:
        theirs = script.get_revision(ours.revision)
        assert theirs.down_revision == ours.down_revision
        assert theirs.module.release == ours.release
        assert theirs.module.data_loss == ours.data_loss


def test_releases_are_tagged_and_every_tag_resolves():
    hist = history()
    releases = [t.release for t in hist.tags]
    assert len(releases) >= 8 and {"1.7", "2.0"} <= set(releases)
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))))
    for tag in hist.tags:
        assert hist.resolve(tag.release) == tag.revision
        # the tag is the release's last revision
        later = hist.revisions[hist.position(tag.revision):]
        assert all(r.release != tag.release for r in later)
    assert hist.resolve("head") == hist.head.revision
    assert hist.resolve("base") is None


def test_every_revision_declares_release_and_description():
    for r in history().revisions:
        assert r.release and r.description
        assert r.data_loss is None or len(r.data_loss) > 10


def test_resolve_accepts_ids_and_unique_prefixes():
    hist = history()
    rev = hist.revisions[3].revision
    assert hist.resolve(rev) == rev
    assert hist.resolve(rev[:6]) == rev


def test_unknown_target_lists_known_releases():
    with pytest.raises(UnknownRevisionError) as info:
        history().resolve("9.9")
    assert "1.7" in str(info.value) and "2.0" in str(info.value)
    assert "1.7" in info.value.known


def test_plans_go_up_or_down_by_themselves():
    hist = history()
    up = hist.plan(None, hist.resolve("1.7"))
    assert up.direction == "upgrade"
    assert up.steps[-1].revision.revision == hist.resolve("1.7")
    assert [s.revision.revision for s in up.steps] == [
        r.revision for r in hist.revisions[: hist.position(hist.resolve("1.7"))]
    ]
    down = hist.plan(hist.head.revision, hist.resolve("1.7"))
    assert down.direction == "downgrade"
    assert down.steps[0].revision == hist.head
    assert hist.resolve("1.7") not in [s.revision.revision for s in down.steps]
    assert any(s.loses_data for s in down.steps)
    assert hist.plan(hist.head.revision, hist.head.revision).steps == ()


def _write(directory, name, revision, down, release):
    (directory / f"{name}.py").write_text(
        f'"""{name}"""\nrevision = "{revision}"\ndown_revision = {down!r}\n'
        f'release = "{release}"\ndata_loss = None\n'
    )


def test_a_branched_history_is_refused(tmp_path):
    _write(tmp_path, "a", "aaaa", None, "1.0")
    _write(tmp_path, "b", "bbbb", "aaaa", "1.1")
    _write(tmp_path, "c", "cccc", "aaaa", "1.1")
    with pytest.raises(AnnotaError, match="branches at aaaa"):
        History.load(tmp_path)


def test_a_revision_without_release_is_refused(tmp_path):
    (tmp_path / "x.py").write_text('revision = "abcd"\ndown_revision = None\n')
    with pytest.raises(AnnotaError, match="does not declare release"):
        History.load(tmp_path)


def test_the_jobs_tables_revision_creates_them():
    from annota.server.schema.history import JOBS_TABLES_REVISION

    source = history().get(JOBS_TABLES_REVISION).path.read_text(encoding="utf-8")
    assert '"backfill_jobs"' in source and '"async_migrations"' in source
