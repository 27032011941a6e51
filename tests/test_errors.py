"""One error module, one base, each type with its exit code, as the README's table says."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import annota
from annota import errors

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_codes() -> dict[str, int]:
    """{error type: exit code} from the README's exit-code table."""
    text = README.read_text(encoding="utf-8")
    table = text.split("### Exit codes and errors", 1)[1].split("\n## ", 1)[0]
    found: dict[str, int] = {}
    for code, types in re.findall(r"^\| `(\d+)` \|[^|]*\|([^|]*)\|$", table, re.M):
        for name in re.findall(r"`(\w+)`", types):
            assert name not in found, f"{name} is listed twice"
            found[name] = int(code)
    return found


def all_subclasses(cls: type) -> set[type]:
    return {cls, *(s for sub in cls.__subclasses__() for s in all_subclasses(sub))}


def test_every_module_raises_only_errors_defined_in_the_errors_module():
    for module in pkgutil.walk_packages(annota.__path__, "annota."):
        if not module.name.startswith("annota.alembic"):  # revisions need Alembic's context
            importlib.import_module(module.name)
    outside = [f"{c.__module__}.{c.__name__}" for c in all_subclasses(errors.AnnotaError)
               if c.__module__ != "annota.errors"]
    assert outside == []


def test_the_readme_table_matches_the_exit_codes():
    documented = readme_codes()
    defined = {c.__name__: c.exit_code for c in all_subclasses(errors.AnnotaError)}
    assert documented == defined
