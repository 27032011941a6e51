#!/usr/bin/env python3
"""Start the local services the test suite needs, unless they are already configured.

    eval "$(python3 scripts/services.py env)"   # start what is missing, print exports
    python3 scripts/services.py stop            # stop what this script started

A service given by its environment URL (ANNOTA_TEST_POSTGRES_URL) is left alone.
Otherwise PostgreSQL comes from Debian's packages (installed with apt-get when missing
and we are root) and runs as a throw-away cluster on a loopback port under
ANNOTA_SERVICES_DIR (default /tmp/annota-services). Standard library only: this runs
before anything is installed. Messages go to stderr; stdout carries only the exports.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

SERVICES_DIR = Path(os.environ.get("ANNOTA_SERVICES_DIR", "/tmp/annota-services"))
PG_PORT = int(os.environ.get("ANNOTA_SERVICES_PG_PORT", "54329"))
PG_USER, PG_PASSWORD = "annota", "annota-test-secret"


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, as_user: str | None = None, **kw) -> subprocess.CompletedProcess:
    if as_user and os.geteuid() == 0:
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    return subprocess.run(cmd, check=True, **kw)


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(f"[services] please install {' '.join(packages)} (Debian packages)")
    log(f"installing {' '.join(packages)} from Debian's packages")
    quiet = {"stdout": sys.stderr, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    run(["apt-get", "update", "-qq"], **quiet)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], **quiet)


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        apt_install("postgresql")
        return postgres_bindir()
    return Path(found[-1]).parent


def postgres() -> str:
    configured = os.environ.get("ANNOTA_TEST_POSTGRES_URL")
    if configured:
        return configured
    url = f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{PG_PORT}/postgres"
    bindir = postgres_bindir()
    ready = subprocess.run([bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(PG_PORT)])
    if ready.returncode == 0:
        return url
    home = SERVICES_DIR / "postgres"
    data = home / "data"
    owner = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
    home.mkdir(parents=True, exist_ok=True)
    SERVICES_DIR.chmod(0o755)
    if owner:
        shutil.chown(home, owner, owner)
    if not (data / "PG_VERSION").exists():
        log(f"initialising a PostgreSQL cluster in {data}")
        pwfile = home / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if owner:
            shutil.chown(pwfile, owner, owner)
        run([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"],
            as_user=owner, stdout=subprocess.DEVNULL)
        pwfile.unlink()
    options = (f"-c listen_addresses=127.0.0.1 -p {PG_PORT} -k {home} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    log(f"starting PostgreSQL on 127.0.0.1:{PG_PORT}")
    run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "postgres.log"), "-w",
         "-t", "60", "-o", options, "start"], as_user=owner, stdout=sys.stderr)
    return url


def stop() -> None:
    data = SERVICES_DIR / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        owner = "postgres" if os.geteuid() == 0 else None
        run([str(postgres_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            as_user=owner, stdout=sys.stderr)


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else "env"
    if command == "env":
        print(f"export ANNOTA_TEST_POSTGRES_URL={shlex.quote(postgres())}")
    elif command == "stop":
        stop()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
