#!/usr/bin/env python3
"""Start the local services the test suite needs, unless they are already configured.

    eval "$(python3 scripts/services.py env)"   # start what is missing, print exports
    python3 scripts/services.py stop            # stop what this script started

A service given by its environment URL (ANNOTA_TEST_POSTGRES_URL, ANNOTA_TEST_REDIS_URL,
ANNOTA_TEST_ELASTICSEARCH_URL, ANNOTA_TEST_ELASTICSEARCH9_URL, ANNOTA_TEST_OPENSEARCH_URL)
is left alone. Otherwise, on loopback ports under ANNOTA_SERVICES_DIR (default
/tmp/annota-services):

- PostgreSQL and Redis from Debian's packages (installed with apt-get when missing and we
  are root), PostgreSQL as a throw-away cluster;
- Elasticsearch 8 and 9 and OpenSearch 2 from their integration-test zip distributions on
  Maven Central (fetched with `mvn dependency:get`), run with the machine's JDK and a
  512 MiB heap, and a two-node Elasticsearch 8 cluster from the same distribution
  (ANNOTA_TEST_ELASTICSEARCH_CLUSTER_URL) with small write queues. The OpenSearch zip
  has no k-NN, so its k-NN plugin and the lang-painless module it extends are added from
  their Maven Central artifacts.

- a Docker engine (Debian's docker.io; dockerd started here, as root), a stand-in base image
  made with debootstrap (python3, its venv module and this machine's CA bundle), and
  PostgreSQL and Redis images built on it (tests/images) for the testcontainers fallback;
- Debian's chromium and chromium-driver, for the dashboard's Selenium tests
  (ANNOTA_TEST_CHROMIUM, ANNOTA_TEST_CHROMEDRIVER).

Standard library only: this runs before anything is installed. Messages go to stderr;
stdout carries only the exports.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
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


# --- redis ---------------------------------------------------------------------------

REDIS_PORT = int(os.environ.get("ANNOTA_SERVICES_REDIS_PORT", "56379"))


def redis_answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis() -> str:
    configured = os.environ.get("ANNOTA_TEST_REDIS_URL")
    if configured:
        return configured
    url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    if redis_answers(REDIS_PORT):
        return url
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists():
        apt_install("redis-server")
    home = SERVICES_DIR / "redis"
    home.mkdir(parents=True, exist_ok=True)
    log(f"starting Redis on 127.0.0.1:{REDIS_PORT}")
    run([server, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "yes", "--dir", str(home),
         "--pidfile", str(home / "redis.pid"), "--logfile", str(home / "redis.log")],
        stdout=sys.stderr)
    deadline = time.monotonic() + 30
    while not redis_answers(REDIS_PORT):
        if time.monotonic() > deadline:
            raise SystemExit(f"[services] Redis did not answer on port {REDIS_PORT}")
        time.sleep(0.2)
    return url


# --- search engines --------------------------------------------------------------------

SEARCH_USER = "annota-services"  # Elasticsearch and OpenSearch refuse to run as root
ENGINES = {
    "elasticsearch": {
        "env": "ANNOTA_TEST_ELASTICSEARCH_URL", "port": 59200, "java": 17,
        "artifact": "org.elasticsearch.distribution.integ-test-zip:elasticsearch",
        "version": os.environ.get("ANNOTA_SERVICES_ES8_VERSION", "8.19.3"),
    },
    "elasticsearch9": {
        "env": "ANNOTA_TEST_ELASTICSEARCH9_URL", "port": 59202, "java": 21,
        "artifact": "org.elasticsearch.distribution.integ-test-zip:elasticsearch",
        "version": os.environ.get("ANNOTA_SERVICES_ES9_VERSION", "9.1.0"),
    },
    "opensearch": {
        "env": "ANNOTA_TEST_OPENSEARCH_URL", "port": 59201, "java": 17,
        "artifact": "org.opensearch.distribution.integ-test-zip:opensearch",
        "version": os.environ.get("ANNOTA_SERVICES_OPENSEARCH_VERSION", "2.19.1"),
    },
}
# a two-node Elasticsearch 8 cluster (two processes of the same distribution), where
# shards, replicas and alias swaps behave as users run them. Small write queues make the
# engine refuse bulk work with 429 under parallel senders, so the retries are exercised.
CLUSTER = {"nodes": ("cluster-a", "cluster-b"), "ports": (59203, 59204),
           "env": "ANNOTA_TEST_ELASTICSEARCH_CLUSTER_URL", "write_queue": 1,
           "max_request": "20mb"}
for _node, _port in zip(CLUSTER["nodes"], CLUSTER["ports"], strict=True):
    ENGINES[_node] = {**ENGINES["elasticsearch"], "port": _port, "install": "elasticsearch",
                      "node": _node, "env": CLUSTER["env"] if _node == "cluster-a" else None}
PAINLESS_JARS = [  # lang-painless and its runtime dependencies (its Maven POM)
    "org.opensearch.plugin:lang-painless:{v}",
    "org.opensearch.plugin:opensearch-scripting-painless-spi:{v}",
    "org.antlr:antlr4-runtime:4.13.1", "org.ow2.asm:asm:9.7", "org.ow2.asm:asm-util:9.7",
    "org.ow2.asm:asm-tree:9.7", "org.ow2.asm:asm-commons:9.7", "org.ow2.asm:asm-analysis:9.7",
]


def maven(coordinates: str, packaging: str = "jar") -> Path:
    """Fetch one artifact from Maven Central into the local repository; return its path."""
    group, artifact, version = coordinates.split(":")
    path = (Path.home() / ".m2" / "repository" / group.replace(".", "/") / artifact / version
            / f"{artifact}-{version}.{packaging}")
    if not path.exists():
        if not shutil.which("mvn"):
            apt_install("maven")
        log(f"fetching {coordinates}:{packaging} from Maven Central")
        run(["mvn", "-q", "-B", "dependency:get", f"-Dartifact={coordinates}:{packaging}",
             "-Dtransitive=false"], stdout=sys.stderr)
    return path


def java_home(minimum: int) -> str:
    """The oldest installed JDK of at least ``minimum`` (Debian's and Temurin alike)."""
    found = []
    for release in glob.glob("/usr/lib/jvm/*/release"):
        match = re.search(r'JAVA_VERSION="(\d+)', Path(release).read_text())
        if match and int(match[1]) >= minimum:
            found.append((int(match[1]), str(Path(release).parent)))
    if not found:
        apt_install("openjdk-17-jdk-headless")
        return java_home(minimum)
    return min(found)[1]


def extract(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, into))
            mode = info.external_attr >> 16
            if mode:
                target.chmod(mode & 0o777)


def install_engine(name: str, spec: dict) -> Path:
    version = spec["version"]
    home = SERVICES_DIR / f"{spec.get('install', name)}-{version}"
    product = spec["artifact"].split(":")[1]
    dist = home / f"{product}-{version}"
    if dist.exists():
        return dist
    extract(maven(f"{spec['artifact']}:{version}", "zip"), home)
    if product == "opensearch":
        module = dist / "modules" / "lang-painless"
        module.mkdir()
        for coordinates in PAINLESS_JARS:
            shutil.copy(maven(coordinates.format(v=version)), module)
        (module / "plugin-descriptor.properties").write_text(
            "description=Painless scripting (assembled from Maven Central by annota)\n"
            f"version={version}\nname=lang-painless\n"
            "classname=org.opensearch.painless.PainlessPlugin\njava.version=11\n"
            f"opensearch.version={version}\nextended.plugins=\nhas.native.controller=false\n")
        (module / "plugin-security.policy").write_text(
            'grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
            '  permission java.lang.RuntimePermission "getClassLoader";\n};\n')
        extract(maven(f"org.opensearch.plugin:opensearch-knn:{version}.0", "zip"),
                dist / "plugins" / "opensearch-knn")
    return dist


def engine_answers(url: str, nodes: int = 1) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=2) as response:
            health = json.load(response)
    except OSError:
        return False
    return health.get("status") in ("green", "yellow") and health.get("number_of_nodes",
                                                                       1) >= nodes


def start_engine(name: str, spec: dict) -> str:
    url = f"http://127.0.0.1:{spec['port']}"
    if engine_answers(url):
        return url
    dist = install_engine(name, spec)
    state = dist.parent / (f"state-{spec['node']}" if spec.get("node") else "state")
    (state / "data").mkdir(parents=True, exist_ok=True)
    (state / "logs").mkdir(exist_ok=True)
    product = "opensearch" if "opensearch" in spec["artifact"] else "elasticsearch"
    settings = {
        "discovery.type": "single-node", "network.host": "127.0.0.1",
        "http.port": spec["port"], "transport.port": spec["port"] + 100,
        "path.data": state / "data", "path.logs": state / "logs",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if spec.get("node"):  # a node of the two-node cluster
        del settings["discovery.type"]
        settings.update({
            "cluster.name": "annota-test-cluster", "node.name": spec["node"],
            "discovery.seed_hosts": ",".join(f"127.0.0.1:{p + 100}" for p in CLUSTER["ports"]),
            "cluster.initial_master_nodes": ",".join(CLUSTER["nodes"]),
            "thread_pool.write.size": 1,
            "thread_pool.write.queue_size": CLUSTER["write_queue"],
            # smaller than the usual 100mb: a bulk request must be bounded in bytes too
            "http.max_content_length": CLUSTER["max_request"]})
    if product == "elasticsearch":
        settings["xpack.security.enabled"] = "false"
    prefix = "ES" if product == "elasticsearch" else "OPENSEARCH"
    env = {**os.environ, f"{prefix}_JAVA_HOME": java_home(spec["java"]),
           f"{prefix}_JAVA_OPTS": "-Xms512m -Xmx512m"}
    command = [str(dist / "bin" / product), "-p", str(state / "pid")]
    command += [f"-E{k}={v}" for k, v in settings.items()]
    if os.geteuid() == 0:
        if subprocess.run(["id", SEARCH_USER], capture_output=True).returncode != 0:
            run(["useradd", "--system", "--no-create-home", SEARCH_USER])
        run(["chown", "-R", SEARCH_USER, str(dist.parent)])
        command = ["runuser", "-u", SEARCH_USER, "--", "env",
                   *(f"{k}={env[k]}" for k in env if k.startswith(prefix)), *command]
    log(f"starting {name} {spec['version']} on {url} (output in {state / 'console.log'})")
    with open(state / "console.log", "ab") as console:  # detached: it outlives this script
        subprocess.Popen(command, env=env, stdout=console, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    return url


def wait_for(name: str, url: str, timeout: float = 240, nodes: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while not engine_answers(url, nodes):
        if time.monotonic() > deadline:
            raise SystemExit(f"[services] {name} did not come up on {url} in {timeout:g}s; "
                             f"see its logs under {SERVICES_DIR}")
        time.sleep(1)


def search_engines() -> dict[str, str]:
    urls, started = {}, {}
    for name, spec in ENGINES.items():
        given = os.environ.get(CLUSTER["env"] if spec.get("node") else spec["env"])
        if given:
            if spec["env"]:
                urls[spec["env"]] = given
        else:
            started[name] = start_engine(name, spec)
            if spec["env"]:
                urls[spec["env"]] = started[name]
    for name, url in started.items():  # they boot in parallel; wait for each
        wait_for(name, url, nodes=len(CLUSTER["nodes"]) if ENGINES[name].get("node") else 1)
    return urls


DOCKER_DIR = SERVICES_DIR / "docker"
BASE_IMAGE = "annota-base:bookworm"  # a stand-in for python:3.11-slim, from Debian packages
TEST_IMAGES = {"ANNOTA_TEST_POSTGRES_IMAGE": ("annota-test-postgres:15", "postgres"),
               "ANNOTA_TEST_REDIS_IMAGE": ("annota-test-redis:7", "redis")}
IMAGES_DIR = Path(__file__).resolve().parent.parent / "tests" / "images"


def docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag],
                          capture_output=True).returncode == 0


def ca_bundle() -> Path:
    """The CA bundle this machine's pip trusts: pip inside a build needs the same one."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("[services] no CA bundle found for the Docker base image")


def build_base() -> None:
    """``debootstrap --variant=minbase bookworm`` with python3 and its venv module, plus the
    machine's CA bundle, imported as BASE_IMAGE (public images cannot be pulled here)."""
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    rootfs = DOCKER_DIR / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        log("building the stand-in base image with debootstrap (a few minutes, once)")
        run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", str(rootfs), "http://deb.debian.org/debian"], stdout=sys.stderr)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    shutil.copyfile(ca_bundle(), rootfs / bundle.lstrip("/"))
    for cached in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        cached.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(["docker", "import", "--change", f"ENV PIP_CERT={bundle}",
         "--change", f"ENV SSL_CERT_FILE={bundle}", "--change", 'CMD ["/bin/bash"]',
         "-", BASE_IMAGE], stdin=tar.stdout, stdout=sys.stderr)
    tar.wait()


def docker() -> dict[str, str]:
    """A Docker engine (Debian's docker.io, dockerd started here as root), the stand-in
    base image, and PostgreSQL and Redis images built on it for the testcontainers
    fallback. Nothing when there is no engine and we cannot start one (not root)."""
    if not docker_answers():
        if os.geteuid() != 0:
            log("no Docker engine, and not root to start one: the Docker tests will skip")
            return {}
        if not shutil.which("dockerd"):
            apt_install("docker.io", "docker-compose")
        state = DOCKER_DIR / "state"
        state.mkdir(parents=True, exist_ok=True)
        log(f"starting dockerd (output in {state / 'dockerd.log'})")
        with open(state / "dockerd.log", "ab") as out:
            daemon = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        (state / "pid").write_text(str(daemon.pid))
        deadline = time.monotonic() + 60
        while not docker_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"[services] dockerd did not start; see {state / 'dockerd.log'}")
            time.sleep(0.5)
    if not shutil.which("docker-compose") and os.geteuid() == 0:
        apt_install("docker-compose")  # to check docker/docker-compose.yaml with
    if not image_exists(BASE_IMAGE):
        build_base()
    exports = {"ANNOTA_TEST_DOCKER_BASE": BASE_IMAGE}
    for variable, (tag, folder) in TEST_IMAGES.items():
        if not image_exists(tag):
            log(f"building {tag} from Debian packages")
            run(["docker", "build", "--network", "host", "--build-arg", f"BASE={BASE_IMAGE}",
                 "-t", tag, str(IMAGES_DIR / folder)], stdout=sys.stderr)
        exports[variable] = tag
    return exports


def stop() -> None:
    data = SERVICES_DIR / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        owner = "postgres" if os.geteuid() == 0 else None
        run([str(postgres_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            as_user=owner, stdout=sys.stderr)
    for pidfile in [*SERVICES_DIR.glob("*/state*/pid"), SERVICES_DIR / "redis" / "redis.pid"]:
        if not pidfile.exists():
            continue
        try:
            os.kill(int(pidfile.read_text()), 15)
            service = pidfile.parent.parent if pidfile.parent.name == "state" else pidfile.parent
            log(f"stopped {service.name}")
        except (ProcessLookupError, ValueError):
            pass


def extension_python() -> None:
    """Debian's Python with venv: its sqlite3 loads extensions, so the embedded search
    engine's sqlite-vec path is tested with it (this Python's sqlite3 may not load them)."""
    system = Path("/usr/bin/python3")
    if not system.exists() or subprocess.run([str(system), "-m", "venv", "--help"],
                                             capture_output=True).returncode:
        apt_install("python3", "python3-venv")


def browser() -> dict[str, str]:
    """Debian's Chromium and its chromedriver, for the dashboard's browser tests."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        apt_install("chromium", "chromium-driver")
    return {"ANNOTA_TEST_CHROMIUM": shutil.which("chromium") or "",
            "ANNOTA_TEST_CHROMEDRIVER": shutil.which("chromedriver") or ""}


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else "env"
    if command == "env":
        extension_python()
        exports = {"ANNOTA_TEST_POSTGRES_URL": postgres(), "ANNOTA_TEST_REDIS_URL": redis(),
                   **search_engines(), **docker(), **browser()}
        for key, value in exports.items():
            print(f"export {key}={shlex.quote(value)}")
    elif command == "stop":
        stop()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
