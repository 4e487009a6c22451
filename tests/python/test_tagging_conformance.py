"""Object tagging with boto3, against Garage directly and through the sidecar.

Garage (v1.x) lacks object tagging: PutObjectTagging, GetObjectTagging and
DeleteObjectTagging answer `501 NotImplemented`, and it ignores `x-amz-tagging`
on PutObject (GET sends no `x-amz-tagging-count`). So no case can compare
with Garage's answer: each case asks Garage directly and asserts it still
lacks the operation (if Garage gains it, the test fails and the case must
become a comparison), and asserts S3's documented answer through the sidecar,
which keeps an object's tags as a reserved metadata entry of the object itself
in the object's own region (docs/s3-compatibility.md)."""

from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    log_tail,
    make_sidecar_client,
    sidecar_binary,
    spawn_sidecar,
    stop_process,
    wait_http,
    wait_ready,
)
from helpers import TENANT_KEYS, error_code, error_message, http_status

RESERVED = "residency-tagging"
BODY = b'{"tagged": true}'


def answer(f):
    try:
        r = f()
        r.pop("ResponseMetadata", None)
        return (200, "", r)
    except ClientError as e:
        return (http_status(e), error_code(e), error_message(e))


def tagset(pairs):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs]}


def tags_of(client, bucket, key):
    r = client.get_object_tagging(Bucket=bucket, Key=key)
    return [(t["Key"], t["Value"]) for t in r["TagSet"]]


@pytest.fixture
def garage_eu(backends, uid):
    client, bucket = backends["eu"]
    key = f"tagging-{uid}"
    client.put_object(Bucket=bucket, Key=key, Body=BODY, Tagging="a=1")
    yield client, bucket, key
    client.delete_object(Bucket=bucket, Key=key)


def assert_garage_lacks_tagging(garage_eu):
    """Garage still lacks tagging: the reason every case asserts S3's answer."""
    client, bucket, key = garage_eu
    for f in (
        lambda: client.get_object_tagging(Bucket=bucket, Key=key),
        lambda: client.put_object_tagging(Bucket=bucket, Key=key, Tagging=tagset([("a", "1")])),
        lambda: client.delete_object_tagging(Bucket=bucket, Key=key),
    ):
        assert answer(f)[:2] == (501, "NotImplemented"), "Garage tags now: compare with it"
    assert "TagCount" not in client.get_object(Bucket=bucket, Key=key), "Garage keeps x-amz-tagging now"


@pytest.mark.parametrize("prefix,region", [("chat", "eu"), ("talk/recordings", "us")])
def test_tags_set_on_put_are_read_counted_and_stay_in_the_objects_region(
    s3, backends, placement, uid, garage_eu, prefix, region
):
    assert_garage_lacks_tagging(garage_eu)
    c = s3("acme")
    key = f"{prefix}/{uid}/t.json"
    c.put_object(Bucket="acme", Key=key, Body=BODY, Tagging="project=apollo&owner=ops%20team",
                 ContentType="application/json", Metadata={"kept": "yes"})
    assert tags_of(c, "acme", key) == [("project", "apollo"), ("owner", "ops team")]
    got = c.get_object(Bucket="acme", Key=key)
    assert got["TagCount"] == 2
    assert got["Metadata"] == {"kept": "yes"}
    assert "TagCount" not in c.head_object(Bucket="acme", Key=key)  # S3 sends it on GET only
    assert c.head_object(Bucket="acme", Key=key)["Metadata"] == {"kept": "yes"}
    # The tags are the object's own metadata, in its region only.
    assert placement("acme", key) == [region]
    client, bucket = backends[region]
    raw = client.head_object(Bucket=bucket, Key=f"acme/{key}")["Metadata"]
    assert RESERVED in raw
    # Replace: content, content headers, user metadata and region are kept.
    before = c.head_object(Bucket="acme", Key=key)
    c.put_object_tagging(Bucket="acme", Key=key, Tagging=tagset([("stage", "done")]))
    assert tags_of(c, "acme", key) == [("stage", "done")]
    after = c.get_object(Bucket="acme", Key=key)
    assert after["Body"].read() == BODY
    assert after["TagCount"] == 1
    for h in ("ContentType", "ETag", "Metadata", "ContentLength"):
        assert after[h] == before[h], h
    assert placement("acme", key) == [region]
    # Delete: 204, no tags, no count, the object unchanged.
    r = c.delete_object_tagging(Bucket="acme", Key=key)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(c, "acme", key) == []
    gone = c.get_object(Bucket="acme", Key=key)
    assert "TagCount" not in gone and gone["Body"].read() == BODY
    assert RESERVED not in client.head_object(Bucket=bucket, Key=f"acme/{key}")["Metadata"]
    c.delete_object(Bucket="acme", Key=key)


def test_tagging_a_missing_object_is_no_such_key(s3, uid, garage_eu):
    assert_garage_lacks_tagging(garage_eu)
    c = s3("acme")
    key = f"chat/{uid}/missing"
    for f in (
        lambda: c.get_object_tagging(Bucket="acme", Key=key),
        lambda: c.put_object_tagging(Bucket="acme", Key=key, Tagging=tagset([("a", "1")])),
        lambda: c.delete_object_tagging(Bucket="acme", Key=key),
    ):
        assert answer(f)[:2] == (404, "NoSuchKey")


BAD_TAG_SETS = {
    "eleven tags": [(f"k{i}", "v") for i in range(11)],
    "key of 129": [("k" * 129, "v")],
    "value of 257": [("k", "v" * 257)],
    "duplicate keys": [("a", "1"), ("a", "2")],
    "key with #": [("a#b", "1")],
    "bad character": [("a", "<script>")],
}


@pytest.mark.parametrize("case", list(BAD_TAG_SETS), ids=list(BAD_TAG_SETS))
def test_bad_tag_sets_are_invalid_tag_and_change_nothing(s3, uid, garage_eu, case):
    assert_garage_lacks_tagging(garage_eu)
    c = s3("acme")
    key = f"chat/{uid}/bad"
    c.put_object(Bucket="acme", Key=key, Body=BODY, Tagging="keep=me")
    status, code, message = answer(
        lambda: c.put_object_tagging(Bucket="acme", Key=key, Tagging=tagset(BAD_TAG_SETS[case])))
    assert (status, code) == (400, "InvalidTag"), message
    assert message
    assert tags_of(c, "acme", key) == [("keep", "me")]
    c.delete_object(Bucket="acme", Key=key)


@pytest.mark.parametrize("header", ["=empty-key", "a=1&a=2", "&".join(f"k{i}=v" for i in range(11)), "k=" + "v" * 257])
def test_a_bad_tagging_header_is_invalid_tag_and_writes_nothing(s3, placement, uid, garage_eu, header):
    assert_garage_lacks_tagging(garage_eu)
    c = s3("acme")
    key = f"chat/{uid}/hdr"
    assert answer(lambda: c.put_object(Bucket="acme", Key=key, Body=BODY, Tagging=header))[:2] == (400, "InvalidTag")
    assert placement("acme", key) == []


def test_the_reserved_metadata_name_is_refused(s3, placement, uid, garage_eu):
    """A residency rule: the sidecar keeps tags under this name (Garage stores it)."""
    c = s3("acme")
    key = f"chat/{uid}/reserved"
    status, code, message = answer(
        lambda: c.put_object(Bucket="acme", Key=key, Body=BODY, Metadata={RESERVED: "a=1"}))
    assert (status, code) == (400, "InvalidArgument")
    assert "reserved" in message
    assert placement("acme", key) == []
    client, bucket, gkey = garage_eu
    assert answer(lambda: client.put_object(Bucket=bucket, Key=gkey, Body=BODY, Metadata={RESERVED: "a=1"}))[0] == 200


def test_copy_keeps_or_replaces_tags_as_the_directive_says(s3, uid, garage_eu):
    assert_garage_lacks_tagging(garage_eu)
    c = s3("acme")
    src = f"chat/{uid}/src"
    c.put_object(Bucket="acme", Key=src, Body=BODY, Tagging="from=source", Metadata={"m": "1"})
    source = {"Bucket": "acme", "Key": src}
    # COPY (the default): the source's tags.
    c.copy_object(Bucket="acme", Key=f"chat/{uid}/copy", CopySource=source)
    assert tags_of(c, "acme", f"chat/{uid}/copy") == [("from", "source")]
    # REPLACE: the request's tags (none without x-amz-tagging).
    c.copy_object(Bucket="acme", Key=f"chat/{uid}/repl", CopySource=source,
                  TaggingDirective="REPLACE", Tagging="new=tags")
    assert tags_of(c, "acme", f"chat/{uid}/repl") == [("new", "tags")]
    assert c.head_object(Bucket="acme", Key=f"chat/{uid}/repl")["Metadata"] == {"m": "1"}
    c.copy_object(Bucket="acme", Key=f"chat/{uid}/none", CopySource=source, TaggingDirective="REPLACE")
    assert tags_of(c, "acme", f"chat/{uid}/none") == []
    # New metadata, tags kept from the source.
    c.copy_object(Bucket="acme", Key=f"chat/{uid}/meta", CopySource=source,
                  MetadataDirective="REPLACE", Metadata={"m": "2"})
    assert tags_of(c, "acme", f"chat/{uid}/meta") == [("from", "source")]
    assert c.head_object(Bucket="acme", Key=f"chat/{uid}/meta")["Metadata"] == {"m": "2"}
    for k in (src, f"chat/{uid}/copy", f"chat/{uid}/repl", f"chat/{uid}/none", f"chat/{uid}/meta"):
        c.delete_object(Bucket="acme", Key=k)


def test_a_multipart_upload_keeps_its_tags(s3, uid, garage_eu):
    assert_garage_lacks_tagging(garage_eu)
    c = s3("acme")
    key = f"chat/{uid}/mp"
    up = c.create_multipart_upload(Bucket="acme", Key=key, Tagging="multi=part")["UploadId"]
    e = c.upload_part(Bucket="acme", Key=key, UploadId=up, PartNumber=1, Body=BODY)["ETag"]
    c.complete_multipart_upload(Bucket="acme", Key=key, UploadId=up,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert tags_of(c, "acme", key) == [("multi", "part")]
    assert c.get_object(Bucket="acme", Key=key)["TagCount"] == 1
    c.delete_object(Bucket="acme", Key=key)


def test_tags_on_directory_backends_are_audited_as_writes_of_the_object(tmp_path):
    """The sidecar on directory backends (local files): tags set, replaced and
    removed in the object's own directory; each change is audited as a write
    (a copy onto itself) of that key, as any CopyObject is."""
    from test_audit_durable import residency, write_config

    config, listen, admin = write_config(tmp_path, "durable")
    log = tmp_path / "sidecar.log"
    proc = spawn_sidecar(sidecar_binary(), config, log, {**os.environ, "NO_COLOR": "1"})
    key = "tickets/dir-tagged.json"
    try:
        deadline = time.monotonic() + 30
        wait_http(f"http://127.0.0.1:{listen}/", deadline, proc)
        wait_ready(f"http://127.0.0.1:{admin}/readyz", deadline, proc)
        c = make_sidecar_client(f"http://127.0.0.1:{listen}", *TENANT_KEYS["acme"])
        c.put_object(Bucket="acme", Key=key, Body=BODY, Tagging="a=1", Metadata={"kept": "yes"})
        assert tags_of(c, "acme", key) == [("a", "1")]
        c.put_object_tagging(Bucket="acme", Key=key, Tagging=tagset([("b", "2"), ("c", "3")]))
        got = c.get_object(Bucket="acme", Key=key)
        assert (got["Body"].read(), got["TagCount"], got["Metadata"]) == (BODY, 2, {"kept": "yes"})
        assert tags_of(c, "acme", key) == [("b", "2"), ("c", "3")]
        assert answer(lambda: c.put_object_tagging(
            Bucket="acme", Key=key, Tagging=tagset([("x", "1")] * 2)))[:2] == (400, "InvalidTag")
        c.delete_object_tagging(Bucket="acme", Key=key)
        assert tags_of(c, "acme", key) == []
        # Only in the directory of the region the key is placed in.
        held = [r for r in ("eu", "us") if any(p.name == "dir-tagged.json" for p in (tmp_path / r).rglob("*"))]
        assert len(held) == 1, held
    finally:
        stop_process(proc)
    show = residency("audit", "show", "--config", str(config), "--tenant", "acme")
    assert show.returncode == 0, show.stderr
    lines = [l for l in show.stdout.splitlines() if key in l]
    # The put and the two tag changes (the refused one changed nothing).
    writes = [l for l in lines if "copy" in l]
    assert len(writes) == 2, f"{show.stdout}\n{log_tail(log)}"
