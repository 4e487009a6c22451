"""The aws CLI (from the venv running pytest) against the sidecar."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TENANT_KEYS

MiB = 1024 * 1024
CLI_TIMEOUT = 180


@pytest.fixture(scope="session")
def aws_bin() -> str:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("aws")
    if not found:
        pytest.fail(f"no aws CLI next to {sys.executable} nor on PATH: pip install awscli", pytrace=False)
    return found


@pytest.fixture(scope="session")
def aws_config(tmp_path_factory) -> Path:
    """An isolated CLI config: path-style addressing, 8 MiB multipart threshold/parts."""
    d = tmp_path_factory.mktemp("awscli")
    cfg = d / "config"
    cfg.write_text(
        "[default]\n"
        "region = us-east-1\n"
        "s3 =\n"
        "  addressing_style = path\n"
        "  multipart_threshold = 8MB\n"
        "  multipart_chunksize = 8MB\n"
    )
    return cfg


@pytest.fixture(scope="session")
def aws(aws_bin, aws_config, sidecar):
    """aws(tenant, *args) → CompletedProcess; asserts success unless check=False."""

    def run(tenant: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        ak, sk = TENANT_KEYS[tenant]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=ak,
            AWS_SECRET_ACCESS_KEY=sk,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=str(aws_config),
            AWS_SHARED_CREDENTIALS_FILE=str(aws_config.parent / "credentials-none"),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
        )
        cmd = [aws_bin, "--endpoint-url", sidecar.endpoint, *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
        if check:
            assert proc.returncode == 0, (
                f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    return run


def test_cli_cp_in_and_out(aws, placement, backend_body, tmp_path, uid):
    src = tmp_path / "note.txt"
    src.write_bytes(b"hello from the aws cli\n" + os.urandom(100))
    key = f"tickets/{uid}/note.txt"

    aws("acme", "s3", "cp", str(src), f"s3://acme/{key}")
    assert placement("acme", key) == ["eu"]
    assert backend_body("eu", "acme", key) == src.read_bytes()

    dst = tmp_path / "back.txt"
    aws("acme", "s3", "cp", f"s3://acme/{key}", str(dst))
    assert dst.read_bytes() == src.read_bytes()


def test_cli_ls_head_list(aws, tmp_path, uid):
    src = tmp_path / "a.json"
    src.write_bytes(b'{"a": 1}')
    key = f"tickets/{uid}/a.json"
    aws("globex", "s3", "cp", str(src), f"s3://globex/{key}")

    ls = aws("globex", "s3", "ls", f"s3://globex/tickets/{uid}/")
    rows = [line.split() for line in ls.stdout.splitlines() if line.strip()]
    assert len(rows) == 1, ls.stdout
    # "<date> <time> <size> <name>"
    assert rows[0][-1] == "a.json" and rows[0][-2] == str(len(b'{"a": 1}')), ls.stdout

    head = json.loads(aws("globex", "s3api", "head-object", "--bucket", "globex", "--key", key).stdout)
    assert head["ContentLength"] == len(b'{"a": 1}')
    assert head["ETag"].strip('"')

    listing = json.loads(
        aws(
            "globex", "s3api", "list-objects-v2", "--bucket", "globex", "--prefix", f"tickets/{uid}/"
        ).stdout
    )
    assert [(o["Key"], o["Size"]) for o in listing.get("Contents", [])] == [(key, 8)]

    empty = aws(
        "globex", "s3api", "list-objects-v2", "--bucket", "globex", "--prefix", f"tickets/{uid}/nothing/"
    ).stdout
    assert not (json.loads(empty) if empty.strip() else {}).get("Contents")


def test_cli_multipart_20mib(aws, placement, backends, tmp_path, uid):
    src = tmp_path / "call.bin"
    with open(src, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(MiB))
    key = f"tickets/{uid}/call.bin"

    aws("globex", "s3", "cp", str(src), f"s3://globex/{key}")
    assert placement("globex", key) == ["us"]
    us, us_bucket = backends["us"]
    assert us.head_object(Bucket=us_bucket, Key=f"globex/{key}")["ContentLength"] == 20 * MiB

    head = json.loads(aws("globex", "s3api", "head-object", "--bucket", "globex", "--key", key).stdout)
    assert head["ContentLength"] == 20 * MiB
    assert head["ETag"].strip('"').endswith("-3"), f"not a 3-part multipart ETag: {head['ETag']}"

    dst = tmp_path / "call.back"
    aws("globex", "s3", "cp", f"s3://globex/{key}", str(dst))
    assert dst.read_bytes() == src.read_bytes()


def test_cli_rm(aws, placement, tmp_path, uid):
    src = tmp_path / "gone.txt"
    src.write_bytes(b"soon gone")
    key = f"chat/{uid}/gone.txt"
    aws("acme", "s3", "cp", str(src), f"s3://acme/{key}")
    assert placement("acme", key) == ["eu"]

    aws("acme", "s3", "rm", f"s3://acme/{key}")
    assert placement("acme", key) == []
    ls = aws("acme", "s3", "ls", f"s3://acme/chat/{uid}/", check=False)
    # `aws s3 ls` of an empty prefix prints nothing (and exits 1).
    assert ls.stdout.strip() == ""
    head = aws("acme", "s3api", "head-object", "--bucket", "acme", "--key", key, check=False)
    assert head.returncode != 0 and "404" in head.stderr, head.stderr


def test_cli_denied_out_of_locality(aws, placement, tmp_path, uid):
    src = tmp_path / "rec.wav"
    src.write_bytes(b"RIFF....WAVE")
    key = f"talk/recordings/{uid}/x.wav"
    proc = aws("eurobank", "s3", "cp", str(src), f"s3://eurobank/{key}", check=False)
    assert proc.returncode != 0
    assert "AccessDenied" in proc.stderr, proc.stderr
    assert placement("eurobank", key) == []


def test_cli_sync_round_trip(aws, placement, tmp_path, uid):
    """`aws s3 sync` up, down, again (nothing to do) and with --delete: the
    listing it compares against must page and encode keys as S3 does."""
    src = tmp_path / "up"
    files = {
        "a.json": b'{"a": 1}',
        "with space.json": b"[1]",
        "plus+sign.json": b"[2]",
        "sub/dir/deep.json": b'{"deep": true}',
    }
    for rel, body in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(body)
    target = f"s3://acme/tickets/{uid}/"
    up = aws("acme", "s3", "sync", str(src), target)
    assert up.stdout.count("upload:") == len(files), up.stdout
    for rel in files:
        assert placement("acme", f"tickets/{uid}/{rel}") == ["eu"]

    back = tmp_path / "down"
    aws("acme", "s3", "sync", target, str(back))
    got = {str(p.relative_to(back)): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    assert got == files

    again = aws("acme", "s3", "sync", str(src), target)
    assert "upload:" not in again.stdout, again.stdout

    (src / "a.json").unlink()
    gone = aws("acme", "s3", "sync", "--delete", str(src), target)
    assert gone.stdout.count("delete:") == 1, gone.stdout
    assert placement("acme", f"tickets/{uid}/a.json") == []
    aws("acme", "s3", "rm", "--recursive", target)
