"""boto3 against a sidecar on directory backends (no Garage needed): virtual-hosted
addressing with a port in the endpoint (issue "Hardening", item 15), and SigV2
refused unless configured (item 2).

`*.s3.localhost` is resolved to 127.0.0.1 inside the test (glibc does not resolve
subdomains of localhost by itself)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    SIDECAR_READY_TIMEOUT,
    log_tail,
    sidecar_binary,
    sidecar_config_head,
    spawn_sidecar,
    stop_process,
    toml_str,
    wait_http,
)
from helpers import TENANT_KEYS, error_code, error_message, http_status

DOMAIN = "s3.localhost"


def start_sidecar(work: Path, extra: str = ""):
    binary = sidecar_binary()
    head, listen, _admin = sidecar_config_head(f'virtual_host_domains = ["{DOMAIN}"]')
    config = work / "residency.toml"
    config.write_text(
        "\n".join(
            [
                *head,
                "[regions.eu]",
                'kind = "dir"',
                f"path = {toml_str(str(work / 'eu'))}",
                "[regions.us]",
                'kind = "dir"',
                f"path = {toml_str(str(work / 'us'))}",
                "[limits]",
                "shutdown_grace_secs = 1",
                "[audit]",
                "enabled = false",
                extra,
                "",
            ]
        )
    )
    log = work / "sidecar.log"
    proc = spawn_sidecar(binary, config, log)
    try:
        wait_http(f"http://127.0.0.1:{listen}/", time.monotonic() + SIDECAR_READY_TIMEOUT, proc)
    except (RuntimeError, TimeoutError) as e:
        stop_process(proc, grace=2)
        pytest.fail(f"sidecar did not start ({e}):\n{log_tail(log)}", pytrace=False)
    return proc, listen


@pytest.fixture(scope="module")
def sidecar_port(tmp_path_factory):
    proc, port = start_sidecar(tmp_path_factory.mktemp("protocol"))
    yield port
    stop_process(proc, grace=5)


@pytest.fixture
def resolve_localhost(monkeypatch):
    """`<anything>.s3.localhost` resolves to 127.0.0.1 for this test."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def client(endpoint: str, tenant: str, **config):
    access, secret = TENANT_KEYS[tenant]
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def test_virtual_hosted_style_with_a_port(sidecar_port, resolve_localhost):
    s3 = client(f"http://{DOMAIN}:{sidecar_port}", "acme", signature_version="s3v4", s3={"addressing_style": "virtual"})
    hosts = []
    s3.meta.events.register("before-send.s3.*", lambda request, **_: hosts.append(request.url))
    s3.put_object(Bucket="acme", Key="tickets/vhost/1.txt", Body=b"virtual")
    assert s3.get_object(Bucket="acme", Key="tickets/vhost/1.txt")["Body"].read() == b"virtual"
    listed = s3.list_objects_v2(Bucket="acme", Prefix="tickets/vhost/")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["tickets/vhost/1.txt"]
    # The requests really were virtual-hosted, with the port in the Host header.
    assert hosts and all(u.startswith(f"http://acme.{DOMAIN}:{sidecar_port}/") for u in hosts), hosts


def test_sigv2_is_refused_by_default(sidecar_port):
    v4 = client(f"http://127.0.0.1:{sidecar_port}", "acme", signature_version="s3v4", s3={"addressing_style": "path"})
    v4.put_object(Bucket="acme", Key="tickets/v2/1.txt", Body=b"first")
    v2 = client(f"http://127.0.0.1:{sidecar_port}", "acme", signature_version="s3", s3={"addressing_style": "path"})
    for call in (
        lambda: v2.get_object(Bucket="acme", Key="tickets/v2/1.txt"),
        lambda: v2.put_object(Bucket="acme", Key="tickets/v2/1.txt", Body=b"evil"),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert (http_status(info.value), error_code(info.value)) == (403, "AccessDenied")
        assert "Signature Version 4" in error_message(info.value)
    assert v4.get_object(Bucket="acme", Key="tickets/v2/1.txt")["Body"].read() == b"first"


def test_sigv2_allowed_by_configuration(tmp_path):
    proc, port = start_sidecar(tmp_path, "[auth]\nallow_sigv2 = true")
    try:
        v2 = client(f"http://127.0.0.1:{port}", "acme", signature_version="s3", s3={"addressing_style": "path"})
        v2.put_object(Bucket="acme", Key="tickets/v2/2.txt", Body=b"signed v2")
        assert v2.get_object(Bucket="acme", Key="tickets/v2/2.txt")["Body"].read() == b"signed v2"
    finally:
        stop_process(proc, grace=5)
