"""Settings: every ANNOTA_* variable read in one place, and any malformed value of any of
them is one line naming it, exit 2, at once: generated values, not a short list."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota import config
from annota.cli import cli
from tests.conftest import make_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "annota"

# text an environment can hold: no NUL, no lone surrogates
CHARS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
TEXT = st.text(CHARS, min_size=1, max_size=40)
# no white space or control character (C1's NEL, \x85, is both): a word survives stripping
WORD = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="\x7f",
                             blacklist_categories=("Cc", "Zs")), min_size=1, max_size=12)


def _meaningful(value: str) -> bool:
    return bool(value.strip())


def not_one_of(*allowed: str) -> st.SearchStrategy[str]:
    return TEXT.filter(lambda v: _meaningful(v) and v.strip().lower() not in allowed)


def not_whole_in(low: int, high: int) -> st.SearchStrategy[str]:
    def bad(v: str) -> bool:
        try:
            return not low <= int(v) <= high
        except ValueError:
            return True
    out_of_range = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
    return st.one_of(out_of_range.map(str), TEXT.filter(lambda v: _meaningful(v) and bad(v)))


def not_positive_seconds() -> st.SearchStrategy[str]:
    def bad(v: str) -> bool:
        try:
            return not 0 < float(v) < 10**7
        except ValueError:
            return True
    return st.one_of(st.floats(max_value=0).map(str), st.just("nan"), st.just("inf"),
                     TEXT.filter(lambda v: _meaningful(v) and bad(v)))


def with_control_character() -> st.SearchStrategy[str]:
    """Paths, names and secrets take any text but a control character (a paste error)."""
    control = st.sampled_from([chr(c) for c in range(1, 32)] + ["\x7f"])
    return st.builds(lambda a, c, b: a + c + b, WORD, control, WORD)


def not_url(*schemes: str) -> st.SearchStrategy[str]:
    wrong_scheme = st.builds(lambda s, rest: f"{s}://{rest}",
                             st.from_regex(r"\A[a-z][a-z0-9+]{1,9}\Z").filter(
                                 lambda s: s not in schemes), WORD)
    no_scheme = TEXT.filter(lambda v: _meaningful(v) and "://" not in v)
    bad_port = st.builds(lambda s, p: f"{s}://host:{p}/x", st.sampled_from(schemes),
                         st.from_regex(r"\A[a-z]{1,6}\Z"))
    return st.one_of(wrong_scheme, no_scheme, bad_port)


MALFORMED: dict[str, st.SearchStrategy[str]] = {
    "ANNOTA_HOME": with_control_character(),
    "ANNOTA_DATABASE_URL": st.one_of(not_url("sqlite", "postgresql", "postgres"),
                                     with_control_character()),
    "ANNOTA_TRACEBACK": not_one_of("1", "true", "yes", "on", "0", "false", "no", "off"),
    "ANNOTA_SEARCH_ENGINE": not_one_of(*config.SEARCH_ENGINES),
    "ANNOTA_ELASTICSEARCH": not_url("http", "https"),
    "ANNOTA_ELASTICSEARCH_API_KEY": with_control_character(),
    "ANNOTA_ELASTICSEARCH_USERNAME": with_control_character(),
    "ANNOTA_ELASTICSEARCH_PASSWORD": with_control_character(),
    "ANNOTA_ELASTICSEARCH_CA_PATH": with_control_character(),
    "ANNOTA_SEARCH_PATH": with_control_character(),
    "ANNOTA_ELASTICSEARCH_SSL_VERIFY": not_one_of("1", "true", "yes", "on", "0", "false",
                                                  "no", "off"),
    "ANNOTA_SEARCH_INDEX_PREFIX": st.one_of(
        st.builds(lambda c, w: c + w, st.sampled_from("_-+.ABZ"), WORD),
        st.builds(lambda a, b: a + " " + b, WORD, WORD)),
    "ANNOTA_SEARCH_REPLICAS": not_whole_in(0, 100),
    "ANNOTA_SEARCH_SHARDS": not_whole_in(1, 1024),
    "ANNOTA_REDIS_URL": not_url("redis", "rediss", "unix"),
    "ANNOTA_BACKFILL_THREADS": not_whole_in(1, 64),
    "ANNOTA_BACKFILL_STALE_SECONDS": not_positive_seconds(),
    "ANNOTA_BACKFILL_BATCH_SECONDS": not_positive_seconds(),
    "ANNOTA_MIGRATION_LOCK_TIMEOUT": not_positive_seconds(),
    "ANNOTA_MIGRATION_STATEMENT_TIMEOUT": not_positive_seconds(),
    "ANNOTA_MIGRATION_RETRIES": not_whole_in(0, 100),
    "ANNOTA_BACKUP_KEEP": not_whole_in(1, 1000),
    "ANNOTA_ALLOW_SCHEDULED_MIGRATIONS": not_one_of("1", "true", "yes", "on", "0", "false",
                                                    "no", "off"),
    "ANNOTA_SERVER_HOST": st.builds(lambda a, c, b: a + c + b, WORD,
                                    st.sampled_from(" /?#@!$%^&*()'\"<>"), WORD),
    "ANNOTA_SERVER_PORT": not_whole_in(1, 65535),
    "ANNOTA_NEW_USER_API_KEY": with_control_character(),
    "ANNOTA_SECRET_KEY": with_control_character(),
}
# set, but to nothing: a secret that came through empty must never mean "the default"
BLANK = st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2003"), max_size=6)
SETTING = st.sampled_from(config.SETTINGS).flatmap(
    lambda s: st.tuples(st.just(s), st.one_of(MALFORMED[s.variable], BLANK)))


def test_every_setting_has_a_malformed_strategy_and_a_line_in_the_readme():
    assert set(MALFORMED) == set(config.BY_VARIABLE)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for setting in config.SETTINGS:
        assert f"`{setting.variable}`" in readme, f"{setting.variable} is not documented"


def test_nothing_but_the_settings_module_reads_the_environment():
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg == "envvar":
                readers.append(f"{path.relative_to(ROOT)}:{node.value.lineno} (click envvar)")
    assert readers == []


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=SETTING)
def test_any_malformed_setting_is_one_line_naming_it(tmp_path, case):
    setting, value = case
    env = make_env(tmp_path, None)
    env[setting.variable] = value
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["server", "database", "current"], env=env)
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, (setting.variable, value, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert setting.variable in lines[0]
    assert result.stdout == "" and "Traceback" not in result.output
    if setting.secret and value.strip():
        assert value.strip() not in result.output
    assert elapsed < 5
    assert not (tmp_path / "home").exists()  # nothing was created


@pytest.mark.parametrize("setting", config.SETTINGS, ids=lambda s: s.variable)
def test_a_real_process_refuses_a_malformed_setting_at_once(tmp_path, setting):
    """One generated value per setting, through a whole process, for each kind of command."""
    commands = [["server", "database", "revisions"], ["server", "start"],
                ["server", "worker"], ["server", "search-engine", "status"],
                ["server", "database", "backfills", "list"]]
    command = commands[config.SETTINGS.index(setting) % len(commands)]

    @settings(max_examples=2, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=MALFORMED[setting.variable])
    def check(value: str) -> None:
        env = {**make_env(tmp_path, None), setting.variable: value}
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "annota", *command], env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (value, result.stderr)
        assert result.stdout == ""
        assert re.fullmatch(rf"Error: {setting.variable} [^\n]*\n", result.stderr), result.stderr
        assert time.monotonic() - started < 10

    check()


@given(replicas=st.integers(0, 100), shards=st.integers(1, 1024),
       seconds=st.floats(min_value=0.001, max_value=10**6),
       flag=st.sampled_from(["1", "TRUE", " yes ", "On", "0", "false", "NO", "off"]))
def test_well_formed_values_are_typed(replicas, shards, seconds, flag):
    env = {"ANNOTA_HOME": "/tmp/annota home?#%é", "ANNOTA_SEARCH_REPLICAS": str(replicas),
           "ANNOTA_SEARCH_SHARDS": f" {shards} ", "ANNOTA_BACKFILL_STALE_SECONDS": repr(seconds),
           "ANNOTA_ALLOW_SCHEDULED_MIGRATIONS": flag}
    loaded = config.Settings.from_env(env)
    assert (loaded.search.replicas, loaded.search.shards) == (replicas, shards)
    assert loaded.backfill_stale_seconds == seconds
    assert loaded.allow_scheduled_migrations is (flag.strip().lower() in ("1", "true", "yes",
                                                                           "on"))
    assert loaded.database_url.sqlite_path == Path("/tmp/annota home?#%é/annota.db")


def test_secrets_print_as_stars():
    loaded = config.Settings.from_env({"ANNOTA_ELASTICSEARCH_PASSWORD": "pw-s3cret",
                                       "ANNOTA_ELASTICSEARCH": "http://u:url-s3cret@h:9200"})
    keyed = config.Settings.from_env({"ANNOTA_ELASTICSEARCH_API_KEY": "key-s3cret"})
    shown = f"{loaded!r} {loaded.search} {loaded.search.password} {keyed!r} {keyed.search.api_key}"
    assert "s3cret" not in shown and "***" in shown
    assert loaded.search.password.get_secret_value() == "pw-s3cret"
    assert "url-s3cret" not in loaded.search.masked_url


@settings(max_examples=len(config.SETTINGS) * 3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setting=st.sampled_from(config.SETTINGS), value=BLANK)
def test_a_blank_setting_is_refused_not_taken_as_unset(tmp_path, setting, value):
    """A blank ANNOTA_DATABASE_URL once meant the default SQLite file: a deployment whose
    secret came through empty ran on an empty embedded database. Every setting, blank or
    whitespace: one line naming it, exit 2, nothing created."""
    env = {**make_env(tmp_path, None), setting.variable: value}
    result = CliRunner().invoke(cli, ["server", "database", "migrate"], env=env)
    assert result.exit_code == 2, (setting.variable, value, result.output)
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"Error: {setting.variable} is set but blank")
    assert not (tmp_path / "home").exists()


def test_two_ways_to_authenticate_to_the_engine_is_a_configuration_error(tmp_path):
    env = {**make_env(tmp_path, None), "ANNOTA_ELASTICSEARCH_API_KEY": "key-s3cret",
           "ANNOTA_ELASTICSEARCH_USERNAME": "elastic",
           "ANNOTA_ELASTICSEARCH_PASSWORD": "pw-s3cret"}
    for command in (["server", "search-engine", "status"], ["server", "database", "current"]):
        result = subprocess.run([sys.executable, "-m", "annota", *command], env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, result.stderr
        assert re.fullmatch(r"Error: ANNOTA_ELASTICSEARCH_API_KEY and [^\n]*\n", result.stderr)
        assert "s3cret" not in result.stdout + result.stderr
    assert not (tmp_path / "home").exists()
