"""No generated password is ever printed: URLs parsed and masked whatever characters a
password holds (spaces, @, :, /, %, unicode; percent-encoded or not), and whole commands
whose output, errors, --json and --traceback carry no secret."""

from __future__ import annotations

from urllib.parse import quote

import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from annota.urls import MASK, DatabaseURL, mask_url, url_password
from tests.conftest import Annota, make_env

# anything an environment variable can hold but NUL; and as the user may type it
ANY = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
PASSWORD = st.text(ANY, min_size=1, max_size=30)
ENCODED = st.booleans()
# markers no output contains by itself: a leak of either end of a password shows
START, END = "Ω§", "¶ж"


def written(password: str, encoded: bool) -> str:
    return quote(password, safe="") if encoded else password


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret)}


@given(password=PASSWORD, encoded=ENCODED)
def test_any_password_parses_and_is_masked(password, encoded):
    raw = f"postgresql://annota:{written(password, encoded)}@127.0.0.1:5432/annota"
    assume(encoded or "%" not in password)  # a literal %XX would read as an escape
    url = DatabaseURL.parse(raw)
    assert url.password == password
    assert sa.make_url(url.sqlalchemy_url).password == password  # what the driver gets
    shown = url.masked
    assert shown == f"postgresql://annota:{MASK}@127.0.0.1:5432/annota"
    assert url_password(raw) == password


@given(password=PASSWORD.filter(lambda p: "://" not in p and "\n" not in p),
       encoded=ENCODED, scheme=st.sampled_from(["postgresql", "redis", "https"]))
def test_mask_url_masks_a_password_in_free_text(password, encoded, scheme):
    secret = START + password + END
    text = (f"could not connect to {scheme}://user:{written(secret, encoded)}@db.example:5432/x"
            " (connection refused)")
    masked = mask_url(text)
    assert not any(form in masked for form in forms(secret) | {START, END})
    assert masked.endswith("@db.example:5432/x (connection refused)")


def test_secret_query_parameters_are_masked():
    for name in ("password", "sslpassword", "PASSWORD", "token", "api_key", "client_secret"):
        masked = mask_url(f"postgresql://h/db?sslmode=require&{name}=s3cret&x=1")
        assert "s3cret" not in masked and f"{name}={MASK}&x=1" in masked


COMMANDS = [("server", "database", "current"), ("server", "database", "current", "--json"),
            ("server", "database", "revisions", "--json"), ("server", "database", "check"),
            ("server", "database", "migrate"), ("server", "database", "migrate", "--sql"),
            ("--traceback", "server", "database", "current")]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(password=PASSWORD, encoded=ENCODED, command=st.sampled_from(COMMANDS))
def test_no_database_password_reaches_any_output(tmp_path, password, encoded, command):
    secret = START + password + END
    url = f"postgresql://annota:{written(secret, encoded)}@127.0.0.1:1/annota"
    result = Annota(make_env(tmp_path, url)).invoke(*command)
    assert result.exit_code in (2, 5), result.output  # malformed, or nobody at port 1
    assert not any(form in result.output for form in forms(secret) | {START, END}), (
        result.output)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(password=PASSWORD, encoded=ENCODED, where=st.sampled_from(["url", "setting", "redis"]))
def test_no_search_or_redis_password_reaches_any_output(tmp_path, password, encoded, where):
    secret = START + password + END
    env = make_env(tmp_path, None)
    if where == "url":
        env["ANNOTA_ELASTICSEARCH"] = f"http://elastic:{written(secret, encoded)}@127.0.0.1:1"
        command = ("server", "search-engine", "cleanup")
    elif where == "setting":
        env.update(ANNOTA_ELASTICSEARCH="http://127.0.0.1:1",
                   ANNOTA_ELASTICSEARCH_USERNAME="elastic",
                   ANNOTA_ELASTICSEARCH_PASSWORD=secret)
        command = ("--traceback", "server", "search-engine", "cleanup")
    else:
        env["ANNOTA_REDIS_URL"] = f"redis://:{written(secret, encoded)}@127.0.0.1:1/0"
        command = ("server", "worker")
    result = Annota(env).invoke(*command)
    assert result.exit_code in (2, 5, 8), result.output
    assert not any(form in result.output for form in forms(secret) | {START, END}), (
        result.output)
