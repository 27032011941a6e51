"""Database URLs: validation, driver choice, and masking of passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

from annota.config import Settings
from annota.errors import ConfigurationError
from annota.urls import DatabaseURL, mask_url


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg"),
        ("postgres://u:p@h:5432/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:////tmp/x.db", "sqlite"),
    ],
)
def test_postgresql_urls_work_as_written_with_psycopg3(raw, driver):
    url = DatabaseURL.parse(raw)
    assert url.driver == driver
    assert url.sqlalchemy_url.startswith(driver + "://")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "is not a URL"),
        ("mysql://u:s3cret@h/db", "unsupported database 'mysql'"),
        ("postgresql://u:s3cret@h:port/db", "malformed"),
        ("postgresql://u:s3cret@/db", "has no host"),
        ("sqlite://relative.db", "three slashes"),
    ],
)
def test_malformed_urls_are_one_clear_error_with_the_password_masked(raw, message):
    with pytest.raises(ConfigurationError, match=message) as info:
        DatabaseURL.parse(raw)
    assert "s3cret" not in str(info.value)


def test_masking_covers_userinfo_and_query_passwords():
    assert mask_url("postgresql://ann:p%40ss@h/db") == "postgresql://ann:***@h/db"
    assert mask_url("postgresql://h/db?user=a&password=xyz") == "postgresql://h/db?user=a&password=***"
    assert mask_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_scrub_removes_the_decoded_password_from_driver_messages():
    url = DatabaseURL.parse("postgresql://ann:p%40ss@h/db")
    assert url.scrub("auth failed for p@ss at postgresql://ann:p%40ss@h/db") == (
        "auth failed for *** at postgresql://ann:***@h/db"
    )


def test_sqlite_paths():
    assert DatabaseURL.parse("sqlite:////abs/a.db").sqlite_path == Path("/abs/a.db")
    assert DatabaseURL.parse("sqlite:///rel/a.db").sqlite_path == Path("rel/a.db")
    assert DatabaseURL.parse("sqlite://").sqlite_path is None


def test_settings_default_to_sqlite_under_annota_home(tmp_path):
    settings = Settings.from_env({"ANNOTA_HOME": str(tmp_path)})
    assert settings.database_url.sqlite_path == tmp_path / "annota.db"
    other = Settings.from_env({"ANNOTA_HOME": str(tmp_path), "ANNOTA_DATABASE_URL": "postgres://a:b@h/d"})
    assert other.database_url.backend == "postgresql"
