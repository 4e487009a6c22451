"""boto3 against the sidecar: what an application using an S3 SDK sees, and where
its objects land on the regional backends."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from helpers import error_code, error_message, http_status

MiB = 1024 * 1024


def expect_error(call, code: str, status: int = 403) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    got = info.value
    assert (error_code(got), http_status(got)) == (code, status), (
        f"expected {code}/{status}, got {error_code(got)}/{http_status(got)}: {error_message(got)}"
    )
    return got


def list_keys(client, bucket: str, **kw) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


# --------------------------------------------------------------------- CRUD


@pytest.mark.parametrize("tenant", ["acme", "globex", "initech"])
def test_put_get_head_list_delete(s3, placement, tenant, uid):
    c = s3(tenant)
    key = f"tickets/{uid}/comment.json"
    other = f"tickets/{uid}/tags.json"
    body = b'{"comment": "hello from ' + tenant.encode() + b'"}'

    put = c.put_object(
        Bucket=tenant,
        Key=key,
        Body=body,
        ContentType="application/json",
        Metadata={"origin": "pytest"},
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    c.put_object(Bucket=tenant, Key=other, Body=b"[]", ContentType="application/json")

    got = c.get_object(Bucket=tenant, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/json"
    assert got["ETag"] == put["ETag"]

    head = c.head_object(Bucket=tenant, Key=key)
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"origin": "pytest"}
    assert head["ETag"] == put["ETag"]

    listing = c.list_objects_v2(Bucket=tenant, Prefix=f"tickets/{uid}/")
    assert [(o["Key"], o["Size"]) for o in listing.get("Contents", [])] == [
        (key, len(body)),
        (other, 2),
    ]
    assert listing["KeyCount"] == 2
    # The backend's own prefix never leaks into what the client sees.
    assert all(not o["Key"].startswith(f"{tenant}/") for o in listing["Contents"])

    deleted = c.delete_object(Bucket=tenant, Key=key)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as info:
        c.head_object(Bucket=tenant, Key=key)
    assert http_status(info.value) == 404
    expect_error(lambda: c.get_object(Bucket=tenant, Key=key), "NoSuchKey", 404)
    assert list_keys(c, tenant, Prefix=f"tickets/{uid}/") == [other]
    assert placement(tenant, key) == []

    c.delete_object(Bucket=tenant, Key=other)
    assert list_keys(c, tenant, Prefix=f"tickets/{uid}/") == []


# --------------------------------------------------------------------- placement

PLACEMENT = [
    # chat content: EEA only, whatever the tenant's locality
    ("acme", "chat/{uid}/session.json", "eu"),
    ("globex", "chat/{uid}/session.json", "eu"),
    ("initech", "chat/{uid}/session.json", "eu"),
    # call recordings: US only (non-strict tenants)
    ("acme", "talk/recordings/{uid}/call.wav", "us"),
    ("globex", "talk/recordings/{uid}/call.wav", "us"),
    ("initech", "talk/recordings/{uid}/call.wav", "us"),
    # ticket data: the tenant's locality (default region us without one)
    ("acme", "tickets/{uid}/1.json", "eu"),
    ("globex", "tickets/{uid}/1.json", "us"),
    ("initech", "tickets/{uid}/1.json", "us"),
]


@pytest.mark.parametrize(
    "tenant,key_tpl,region",
    PLACEMENT,
    ids=[f"{t}-{k.split('/')[0] if not k.startswith('talk') else 'recordings'}-{r}" for t, k, r in PLACEMENT],
)
def test_placement_on_backends(s3, placement, backend_body, tenant, key_tpl, region, uid):
    key = key_tpl.format(uid=uid)
    body = f"{tenant} {key}".encode() + os.urandom(64)
    s3(tenant).put_object(Bucket=tenant, Key=key, Body=body)

    assert placement(tenant, key) == [region], f"{tenant}/{key} should be in {region} only"
    assert backend_body(region, tenant, key) == body
    assert s3(tenant).get_object(Bucket=tenant, Key=key)["Body"].read() == body

    s3(tenant).delete_object(Bucket=tenant, Key=key)
    assert placement(tenant, key) == []


def test_list_merges_regions(s3, placement, uid):
    """A list of the whole virtual bucket shows objects from both regions, in key order."""
    c = s3("acme")
    keys = [f"chat/{uid}/a", f"talk/recordings/{uid}/b", f"tickets/{uid}/c"]
    for k in keys:
        c.put_object(Bucket="acme", Key=k, Body=k.encode())
    assert placement("acme", keys[0]) == ["eu"]
    assert placement("acme", keys[1]) == ["us"]

    listed = list_keys(c, "acme")
    mine = [k for k in listed if uid in k]
    assert mine == sorted(keys)
    assert listed == sorted(listed), "a merged list must stay in key order"

    for k in keys:
        c.delete_object(Bucket="acme", Key=k)
    assert [k for k in list_keys(c, "acme") if uid in k] == []


# --------------------------------------------------------------------- multipart


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def test_transfer_manager_multipart_64mib(s3, placement, backends, tmp_path, uid):
    src = tmp_path / "export.bin"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    size = src.stat().st_size
    cfg = TransferConfig(
        multipart_threshold=8 * MiB,
        multipart_chunksize=8 * MiB,
        max_concurrency=4,
    )
    c = s3("acme")
    key = f"tickets/{uid}/export.bin"

    t0 = time.monotonic()
    c.upload_file(str(src), "acme", key, Config=cfg)
    upload_s = time.monotonic() - t0

    head = c.head_object(Bucket="acme", Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-8"), f"not a multipart ETag: {head['ETag']}"

    assert placement("acme", key) == ["eu"]
    eu, eu_bucket = backends["eu"]
    assert eu.head_object(Bucket=eu_bucket, Key=f"acme/{key}")["ContentLength"] == size
    pending = eu.list_multipart_uploads(Bucket=eu_bucket, Prefix=f"acme/tickets/{uid}/")
    assert pending.get("Uploads", []) == [], "the completed upload must not stay pending"

    dst = tmp_path / "export.back"
    c.download_file("acme", key, str(dst), Config=cfg)
    assert dst.stat().st_size == size
    assert sha256_file(dst) == sha256_file(src)
    print(f"64 MiB multipart upload took {upload_s:.1f}s")

    c.delete_object(Bucket="acme", Key=key)
    assert placement("acme", key) == []


# --------------------------------------------------------------------- presigned URLs


def test_presigned_get(s3, uid):
    c = s3("globex")
    key = f"tickets/{uid}/report.txt"
    body = b"presigned hello " + os.urandom(16)
    c.put_object(Bucket="globex", Key=key, Body=body, ContentType="text/plain")
    url = c.generate_presigned_url(
        "get_object", Params={"Bucket": "globex", "Key": key}, ExpiresIn=300
    )
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        assert resp.read() == body
        assert resp.headers["Content-Type"] == "text/plain"
    c.delete_object(Bucket="globex", Key=key)


def test_presigned_get_expired(s3, uid):
    c = s3("globex")
    key = f"tickets/{uid}/report.txt"
    body = b"expires soon " + os.urandom(16)
    c.put_object(Bucket="globex", Key=key, Body=body)
    url = c.generate_presigned_url(
        "get_object", Params={"Bucket": "globex", "Key": key}, ExpiresIn=1
    )
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=30).read()
    assert info.value.code == 403
    assert body not in info.value.read()
    c.delete_object(Bucket="globex", Key=key)


# --------------------------------------------------------------------- denials


def test_strict_tenant_denied_out_of_locality(s3, placement, uid):
    key = f"talk/recordings/{uid}/x"
    err = expect_error(
        lambda: s3("eurobank").put_object(Bucket="eurobank", Key=key, Body=b"recording"),
        "AccessDenied",
    )
    assert "out_of_locality" in error_message(err), error_message(err)
    assert placement("eurobank", key) == []


def test_strict_tenant_allowed_in_locality(s3, placement, uid):
    """The same strict tenant writes in-locality data normally (to the EU)."""
    key = f"tickets/{uid}/ok.json"
    s3("eurobank").put_object(Bucket="eurobank", Key=key, Body=b"{}")
    assert placement("eurobank", key) == ["eu"]
    s3("eurobank").delete_object(Bucket="eurobank", Key=key)


def test_tenant_key_on_other_tenants_bucket(s3, placement, uid):
    key = f"tickets/{uid}/secret.json"
    s3("globex").put_object(Bucket="globex", Key=key, Body=b"globex only")
    acme = s3("acme")

    new_key = f"tickets/{uid}/intruder.json"
    expect_error(lambda: acme.put_object(Bucket="globex", Key=new_key, Body=b"x"), "AccessDenied")
    expect_error(lambda: acme.get_object(Bucket="globex", Key=key), "AccessDenied")
    expect_error(lambda: acme.list_objects_v2(Bucket="globex"), "AccessDenied")
    expect_error(lambda: acme.delete_object(Bucket="globex", Key=key), "AccessDenied")

    assert placement("globex", new_key) == []
    assert s3("globex").get_object(Bucket="globex", Key=key)["Body"].read() == b"globex only"
    s3("globex").delete_object(Bucket="globex", Key=key)


def test_wrong_secret(sidecar_client, placement, uid):
    c = sidecar_client("ACMEEXAMPLEKEY", "not-the-acme-secret")
    key = f"tickets/{uid}/x.json"
    expect_error(lambda: c.put_object(Bucket="acme", Key=key, Body=b"x"), "SignatureDoesNotMatch")
    expect_error(lambda: c.list_objects_v2(Bucket="acme"), "SignatureDoesNotMatch")
    assert placement("acme", key) == []


def test_unknown_access_key(sidecar_client, placement, uid):
    c = sidecar_client("NOSUCHKEYEXAMPLE", "whatever-secret")
    key = f"tickets/{uid}/x.json"
    expect_error(lambda: c.put_object(Bucket="acme", Key=key, Body=b"x"), "InvalidAccessKeyId")
    expect_error(lambda: c.list_objects_v2(Bucket="acme"), "InvalidAccessKeyId")
    assert placement("acme", key) == []


def test_service_key_acts_for_its_tenants_only(s3, placement, uid):
    app = s3("appserver")
    key = f"tickets/{uid}/from-app.json"
    app.put_object(Bucket="acme", Key=key, Body=b"a")
    app.put_object(Bucket="globex", Key=key, Body=b"g")
    assert placement("acme", key) == ["eu"]
    assert placement("globex", key) == ["us"]
    assert s3("acme").get_object(Bucket="acme", Key=key)["Body"].read() == b"a"
    expect_error(lambda: app.put_object(Bucket="eurobank", Key=key, Body=b"e"), "AccessDenied")
    assert placement("eurobank", key) == []
    app.delete_object(Bucket="acme", Key=key)
    app.delete_object(Bucket="globex", Key=key)


def test_requests_after_a_denial_on_the_same_connection_are_intact(s3, uid):
    """A PUT refused before its body is read must not poison the next request
    on the same keep-alive connection (this once gave a rare
    SignatureDoesNotMatch on the allowed PUT that followed a denial)."""
    import threading

    client = s3("eurobank")
    errors, allowed, denied = [], [0], [0]

    def work(t):
        for i in range(150):
            try:
                client.put_object(Bucket="eurobank", Key=f"tickets/{uid}/{t}/{i}", Body=os.urandom(100))
                allowed[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                errors.append(("allowed", repr(e)[:200]))
            try:
                client.put_object(Bucket="eurobank", Key=f"insights/{uid}/{t}/{i}", Body=b"x")
                errors.append(("denied write was accepted", i))
            except ClientError as e:
                if e.response["Error"]["Code"] == "AccessDenied":
                    denied[0] += 1
                else:
                    errors.append(("denied", e.response["Error"]["Code"]))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert errors == []
    assert allowed[0] == 8 * 150
    assert denied[0] == 8 * 150
