"""End-to-end fixtures: two real Garage S3 servers (eu, us), the Residency sidecar
in front of them, and boto3 clients for both sides.

The Garage pair comes from the RESIDENCY_TEST_* variables that `scripts/test.sh`
sources from `residency-testkit up`; when they are absent, this file starts the
testkit itself (so `pytest tests/python` works on its own) and stops it at the end.
The sidecar binary is $RESIDENCY_BIN, else <repo>/target/debug/residency
(`cargo build -p residency`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import TENANT_KEYS

REPO_ROOT = Path(__file__).resolve().parents[2]

# Per-test wall-clock limit (seconds); every network call also has its own timeout.
TEST_TIMEOUT = int(os.environ.get("RESIDENCY_PY_TEST_TIMEOUT", "240"))
TESTKIT_READY_TIMEOUT = int(os.environ.get("RESIDENCY_TESTKIT_TIMEOUT", "600"))
SIDECAR_READY_TIMEOUT = 30

REGIONS = ("eu", "us")
ENV_FIELDS = ("ENDPOINT", "REGION", "BUCKET", "ACCESS_KEY", "SECRET_KEY")

CLIENT_CONFIG = dict(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    connect_timeout=5,
    read_timeout=60,
    retries={"max_attempts": 1, "mode": "standard"},
)


# --------------------------------------------------------------------- helpers


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        text = ANSI.sub("", path.read_text(errors="replace"))
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, grace: float = 10.0, group: bool = False) -> None:
    """SIGTERM (to the process, or its process group), then SIGKILL after `grace`."""
    if proc.poll() is not None:
        return

    def send(sig):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=10)


def parse_env_file(path: Path) -> dict[str, str]:
    """Reads `export K='v'` lines as written by residency-testkit."""
    out = {}
    for line in path.read_text().splitlines():
        parts = shlex.split(line, comments=True)
        if not parts:
            continue
        if parts[0] == "export":
            parts = parts[1:]
        for part in parts:
            k, sep, v = part.partition("=")
            if sep:
                out[k] = v
    return out


def backend_env_from(environ) -> dict[str, dict[str, str]] | None:
    regions = {}
    for r in REGIONS:
        fields = {}
        for f in ENV_FIELDS:
            v = environ.get(f"RESIDENCY_TEST_{r.upper()}_{f}")
            if not v:
                return None
            fields[f.lower()] = v
        regions[r] = fields
    return regions


def wait_http(url: str, deadline: float, proc: subprocess.Popen | None = None) -> None:
    """Waits until `url` answers with any HTTP response."""
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP answer (e.g. 403 for an anonymous request) is an answer
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer: {last}")


def wait_ready(url: str, deadline: float, proc: subprocess.Popen) -> None:
    """Waits until `url` answers 200 (the sidecar's /readyz: every backend reachable)."""
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"{e.code}: {e.read().decode(errors='replace').strip()}"
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready: {last}")


# --------------------------------------------------------------------- garage


@pytest.fixture(scope="session")
def garage(tmp_path_factory):
    """{'eu': {endpoint, region, bucket, access_key, secret_key}, 'us': {...}}."""
    found = backend_env_from(os.environ)
    if found is not None:
        yield found
        return

    work = tmp_path_factory.mktemp("testkit")
    env_file = work / "garage.env"
    err_log = work / "testkit.err"
    testkit_bin = REPO_ROOT / "target" / "debug" / "residency-testkit"
    if testkit_bin.exists():
        cmd = [str(testkit_bin)]
    else:
        cmd = ["cargo", "run", "-q", "-p", "residency-testkit", "--"]
    cmd += ["up", "--env-file", str(env_file), "--exit-on-stdin-eof"]
    with open(err_log, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,  # closing it stops the testkit even if we die
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    lines: queue.Queue = queue.Queue()

    def reader():
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace").strip())
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + TESTKIT_READY_TIMEOUT
    ready = False
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line == "ready":
                ready = True
                break
        if not ready:
            pytest.fail(
                f"residency-testkit not ready (exit {proc.poll()}); stderr:\n{log_tail(err_log)}",
                pytrace=False,
            )
        found = backend_env_from(parse_env_file(env_file))
        assert found is not None, f"incomplete env file {env_file}:\n{env_file.read_text()}"
        yield found
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        stop_process(proc, grace=20, group=True)


# --------------------------------------------------------------------- sidecar


class Sidecar:
    def __init__(self, endpoint: str, admin: str, log: Path, config: Path, proc):
        self.endpoint = endpoint
        self.admin = admin
        self.log = log
        self.config = config
        self.proc = proc

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, max_chars: int = 8000) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError as e:
            return f"<cannot read {self.log}: {e}>"
        text = ANSI.sub("", text)[-max_chars:]
        return text or "(the sidecar logged nothing during this test)"


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sidecar_binary() -> Path:
    """The `residency` binary the tests run (`RESIDENCY_BIN`, else the debug build)."""
    binary = Path(os.environ.get("RESIDENCY_BIN") or REPO_ROOT / "target" / "debug" / "residency")
    if not binary.exists():
        pytest.fail(f"sidecar binary {binary} not found: run `cargo build -p residency`", pytrace=False)
    return binary


def sidecar_config_head(*extra: str) -> tuple[list[str], int, int]:
    """The top of a sidecar config on two free ports with the example policy and
    tenants (and `extra` lines), and the two ports."""
    listen, admin = free_port(), free_port()
    while admin == listen:
        admin = free_port()
    # Each sidecar its own copy of the tenants file: the buckets tenants
    # create are kept beside it (<stem>.buckets.toml), one registry each.
    tenants = Path(tempfile.mkdtemp(prefix="residency-tenants-")) / "tenants.example.toml"
    shutil.copyfile(REPO_ROOT / "config" / "tenants.example.toml", tenants)
    lines = [
        f'listen = "127.0.0.1:{listen}"',
        f'admin = "127.0.0.1:{admin}"',
        f"policy = {toml_str(str(REPO_ROOT / 'config' / 'hosting-policy.toml'))}",
        f"tenants = {toml_str(str(tenants))}",
        *extra,
        f'upload_id_secret = "pytest-{uuid.uuid4().hex}"',
        "",
    ]
    return lines, listen, admin


def spawn_sidecar(binary: Path, config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`residency serve --config CONFIG`, its output into `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(binary), "serve", "--config", str(config)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


@pytest.fixture(scope="session")
def sidecar(garage, tmp_path_factory):
    binary = sidecar_binary()
    work = tmp_path_factory.mktemp("sidecar")
    lines, listen, admin = sidecar_config_head('log_format = "text"')
    for r in REGIONS:
        g = garage[r]
        lines += [
            f"[regions.{r}]",
            'kind = "s3"',
            f"endpoint = {toml_str(g['endpoint'])}",
            f"bucket = {toml_str(g['bucket'])}",
            f"region = {toml_str(g['region'])}",
            f"access_key = {toml_str(g['access_key'])}",
            f"secret_key = {toml_str(g['secret_key'])}",
            "",
        ]
    lines += ["[limits]", "shutdown_grace_secs = 5", "", "[audit]", "enabled = false", ""]
    # Buckets shared by tenants (tests/python/test_shared_buckets.py).
    lines += [
        "[[shared_buckets]]",
        'name = "attachments"',
        'tenant_from = "key"',
        'default_category = "attachments"',
        "",
        "[[shared_buckets]]",
        'name = "uploads"',
        'tenant_from = "header"',
        "",
    ]
    config = work / "residency.toml"
    config.write_text("\n".join(lines))
    log = work / "sidecar.log"
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    env["NO_COLOR"] = "1"
    proc = spawn_sidecar(binary, config, log, env)
    try:
        deadline = time.monotonic() + SIDECAR_READY_TIMEOUT
        try:
            wait_http(f"http://127.0.0.1:{listen}/", deadline, proc)
            wait_ready(f"http://127.0.0.1:{admin}/readyz", deadline, proc)
        except (RuntimeError, TimeoutError) as e:
            pytest.fail(
                f"sidecar did not start ({e}); config {config}:\n{config.read_text()}\n"
                f"--- log tail ({log}) ---\n{log_tail(log)}",
                pytrace=False,
            )
        yield Sidecar(f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}", log, config, proc)
    finally:
        stop_process(proc, grace=10)
        if proc.returncode not in (0, None, -signal.SIGTERM):
            print(f"\nsidecar exited with {proc.returncode}; log tail:\n{log_tail(log)}", file=sys.stderr)


# --------------------------------------------------------------------- clients


def make_sidecar_client(endpoint: str, access_key: str, secret_key: str):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(**CLIENT_CONFIG),
    )


@pytest.fixture(scope="session")
def s3(sidecar):
    """s3('acme') → a boto3 client on the sidecar signed with that tenant's key."""
    cache = {}

    def get(tenant: str):
        if tenant not in cache:
            ak, sk = TENANT_KEYS[tenant]
            cache[tenant] = make_sidecar_client(sidecar.endpoint, ak, sk)
        return cache[tenant]

    return get


@pytest.fixture(scope="session")
def sidecar_client(sidecar):
    """sidecar_client(access_key, secret_key) → a client with arbitrary credentials."""
    return lambda ak, sk: make_sidecar_client(sidecar.endpoint, ak, sk)


@pytest.fixture(scope="session")
def backends(garage):
    """{'eu': (client, bucket), 'us': (client, bucket)}: direct access to each Garage."""
    out = {}
    for r in REGIONS:
        g = garage[r]
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=g["endpoint"],
            aws_access_key_id=g["access_key"],
            aws_secret_access_key=g["secret_key"],
            region_name=g["region"],
            config=Config(**CLIENT_CONFIG),
        )
        out[r] = (client, g["bucket"])
    return out


@pytest.fixture(scope="session")
def placement(backends):
    """placement(tenant, key) → sorted list of regions whose bucket holds `<tenant>/<key>`."""

    def where(tenant: str, key: str) -> list[str]:
        found = []
        for r, (client, bucket) in backends.items():
            try:
                client.head_object(Bucket=bucket, Key=f"{tenant}/{key}")
                found.append(r)
            except ClientError as e:
                if e.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                    raise
        return sorted(found)

    return where


@pytest.fixture(scope="session")
def backend_body(backends):
    """backend_body(region, tenant, key) → the bytes stored at `<tenant>/<key>` there."""

    def read(region: str, tenant: str, key: str) -> bytes:
        client, bucket = backends[region]
        return client.get_object(Bucket=bucket, Key=f"{tenant}/{key}")["Body"].read()

    return read


@pytest.fixture
def uid():
    """A unique path segment so tests never see each other's objects."""
    return f"pytest-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------- bounds and diagnostics


@pytest.fixture(autouse=True)
def _bounded_and_logged(request):
    """Fails a test that runs longer than TEST_TIMEOUT, and remembers where the
    sidecar log stood so a failure report can show what the sidecar logged."""
    sc = None
    if "sidecar" in request.fixturenames:
        sc = request.getfixturevalue("sidecar")
        request.node.stash[_LOG_KEY] = (sc, sc.log_size())

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")

    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


_LOG_KEY = pytest.StashKey()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        entry = item.stash.get(_LOG_KEY, None)
        if entry is not None:
            sc, offset = entry
            report.sections.append(("sidecar log during this test", sc.log_since(offset)))
