"""Durable audit (issue 14, item 7): `residency serve` on directory backends,
three acknowledged PUTs, `kill -9` at once: `residency audit show` lists all
three and `audit verify` says intact; a batch removed from the middle of the
chain is reported as a gap by `audit verify` with a non-zero exit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import (
    REPO_ROOT,
    log_tail,
    make_sidecar_client,
    sidecar_binary,
    sidecar_config_head,
    spawn_sidecar,
    toml_str,
    wait_http,
    wait_ready,
)
from helpers import TENANT_KEYS



def write_config(work: Path, mode: str) -> tuple[Path, int, int]:
    lines, listen, admin = sidecar_config_head()
    for r in ("eu", "us"):
        lines += [f"[regions.{r}]", 'kind = "dir"', f"path = {toml_str(str(work / r))}", ""]
    # flush_secs is long: only a durable commit can store the records in time.
    lines += ["[audit]", f'mode = "{mode}"', "flush_secs = 60", "commit_timeout_ms = 2000", ""]
    config = work / "residency.toml"
    config.write_text("\n".join(lines))
    return config, listen, admin


def residency(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(sidecar_binary()), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_acknowledged_puts_survive_kill_9_and_a_removed_batch_is_a_gap(tmp_path):
    config, listen, admin = write_config(tmp_path, os.environ.get("AUDIT_MODE", "durable"))
    log = tmp_path / "sidecar.log"
    proc = spawn_sidecar(sidecar_binary(), config, log, {**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 30
        wait_http(f"http://127.0.0.1:{listen}/", deadline, proc)
        wait_ready(f"http://127.0.0.1:{admin}/readyz", deadline, proc)
        s3 = make_sidecar_client(f"http://127.0.0.1:{listen}", *TENANT_KEYS["acme"])
        keys = [f"tickets/durable-{i}.json" for i in range(3)]
        for k in keys:
            resp = s3.put_object(Bucket="acme", Key=k, Body=b"{}")
            assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        # At once after the last acknowledgement: no shutdown, no flush.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    show = residency("audit", "show", "--config", str(config), "--tenant", "acme")
    assert show.returncode == 0, show.stderr
    for k in keys:
        assert k in show.stdout, f"{k} missing from audit show:\n{show.stdout}\n{log_tail(log)}"
    verify = residency("audit", "verify", "--config", str(config), "--tenant", "acme")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit trail intact" in verify.stdout

    # Three sequential acknowledged writes: three batches of one chain, in eu.
    batches = sorted((tmp_path / "eu").rglob("*.jsonl"))
    batches = [b for b in batches if "_audit" in str(b) and "acme" in str(b)]
    assert len(batches) >= 3, batches
    middle = batches[len(batches) // 2]
    middle.unlink()
    verify = residency("audit", "verify", "--config", str(config), "--tenant", "acme")
    assert verify.returncode != 0, verify.stdout
    assert "missing" in verify.stdout and "AUDIT TRAIL DAMAGED" in verify.stdout, verify.stdout
