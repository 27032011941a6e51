"""``annota server upgrade``: the schema, async migrations, backfills and search indices
in one plan (``plan.py``), run in order (``run.py``)."""

from annota.server.upgrade.plan import PARTS, UpgradePlan, parts_from, plan_upgrade
from annota.server.upgrade.run import UpgradeReporter, UpgradeResult, upgrade

__all__ = ["PARTS", "UpgradePlan", "UpgradeReporter", "UpgradeResult", "parts_from",
           "plan_upgrade", "upgrade"]
