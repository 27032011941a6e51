"""Wall time of whole `annota` processes on the embedded SQLite default.

    python benchmarks/cli_speed.py [--runs 15]

Measures (1) `annota server database revisions` on a database at head and (2) a
base -> head `migrate` of a fresh SQLite file, each as a new process, and prints the
median against the targets (0.3 s and 1.0 s on a 2-core machine).

annota's own modules are byte-compiled first, as `pip install` leaves them: where
PYTHONDONTWRITEBYTECODE is set (as on these machines) every run would otherwise compile
annota from source and time the compiler, not the command.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"revisions": 0.3, "migrate base->head": 1.0}


def command() -> list[str]:
    script = shutil.which("annota")
    return [script] if script else [sys.executable, "-m", "annota"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command() + args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    import annota

    compileall.compile_dir(Path(annota.__file__).parent, quiet=1)
    samples: dict[str, list[float]] = {name: [] for name in TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOTA_")}
        for i in range(runs):
            env["ANNOTA_HOME"] = str(Path(tmp) / f"home{i}")
            samples["migrate base->head"].append(
                timed(["server", "database", "migrate"], env))
            samples["revisions"].append(timed(["server", "database", "revisions"], env))
    print(f"{runs} runs each, whole processes, {' '.join(command())}")
    for name, values in samples.items():
        median, target = statistics.median(values), TARGETS[name]
        print(f"{name:20} median {median:.3f}s  min {min(values):.3f}s  max {max(values):.3f}s"
              f"  target {target:.1f}s  median/target {median / target:.2f}")


if __name__ == "__main__":
    main()
