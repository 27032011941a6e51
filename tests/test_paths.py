"""Any directory name works for ANNOTA_HOME and for a SQLite file: the URL is built from
the path, never by pasting text, and parses back to the same path."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.config import Settings
from annota.urls import DatabaseURL
from tests.conftest import Annota

# a file name: any printable character but '/' (control characters are refused as paste
# errors, see test_config); not '.' or '..'
NAME = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs", "Cc")),
               min_size=1, max_size=40).filter(lambda n: n not in (".", "..")
                                                and len(n.encode("utf-8")) < 200)
ODD = st.one_of(NAME, st.sampled_from(["with space", "q?mark", "hash#tag", "100%", "%41",
                                       "ünïcödé ✓", "a@b:c", "semi;colon&amp"]))


@given(name=ODD)
def test_a_sqlite_url_built_from_any_path_parses_back_to_it(name):
    path = Path("/srv") / name / f"{name}.db"
    url = DatabaseURL.for_sqlite_file(path)
    assert DatabaseURL.parse(url.raw).sqlite_path == path
    assert Settings.from_env({"ANNOTA_HOME": str(path.parent)}).database_url.sqlite_path == (
        path.parent / "annota.db")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=ODD)
def test_migrate_and_read_under_any_annota_home(tmp_path_factory, name):
    home = tmp_path_factory.mktemp("home") / name
    annota = Annota({"ANNOTA_HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert annota.invoke("server", "database", "migrate").exit_code == 0
    assert (home / "annota.db").is_file()
    current = annota.invoke("server", "database", "check")
    assert current.exit_code == 0, current.output
    down = annota.invoke("server", "database", "migrate", "--revision", "1.7", "--yes")
    assert down.exit_code == 0 and len(list(home.glob("annota.db.*.bak"))) == 1
