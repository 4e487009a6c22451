"""Conditional GET and HEAD, differentially: the same object written directly
to Garage and through the sidecar, then each combination of If-Match,
If-None-Match, If-Modified-Since and If-Unmodified-Since asked of both with
boto3; the status (200, 304, 412), the error code and, on 200, the body must
be the same (Garage's 412 to a GET has no error body: there the sidecar
sends S3's `PreconditionFailed` error, and the test expects it)."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, http_status

BODY = b'{"conditional": true}'


@pytest.fixture
def both(s3, backends, uid):
    """(sidecar, direct): (client, bucket, key, etag, last_modified) each."""
    side_c = s3("acme")
    side_key = f"tickets/{uid}/cond.json"
    side_c.put_object(Bucket="acme", Key=side_key, Body=BODY, ContentType="application/json")
    client, bucket = backends["eu"]
    key = f"conditional-{uid}.json"
    client.put_object(Bucket=bucket, Key=key, Body=BODY)
    out = []
    for c, b, k in ((side_c, "acme", side_key), (client, bucket, key)):
        h = c.head_object(Bucket=b, Key=k)
        out.append((c, b, k, h["ETag"], h["LastModified"]))
    yield out
    for c, b, k, *_ in out:
        c.delete_object(Bucket=b, Key=k)


def ask(side, op: str, case: dict):
    client, bucket, key, etag, modified = side
    hour = dt.timedelta(hours=1)
    values = {
        "etag": etag,
        "other": '"0123456789abcdef0123456789abcdef"',
        "any": "*",
        "past": modified - hour,
        "future": modified + hour,
    }
    args = {name: values[v] for name, v in case.items()}
    try:
        r = getattr(client, op)(Bucket=bucket, Key=key, **args)
        body = r["Body"].read() if op == "get_object" else None
        return (200, "", body)
    except ClientError as e:
        return (http_status(e), error_code(e), None)


CASES = [
    {},
    {"IfMatch": "etag"},
    {"IfMatch": "other"},
    {"IfMatch": "any"},
    {"IfNoneMatch": "etag"},
    {"IfNoneMatch": "other"},
    {"IfNoneMatch": "any"},
    {"IfModifiedSince": "past"},
    {"IfModifiedSince": "future"},
    {"IfUnmodifiedSince": "past"},
    {"IfUnmodifiedSince": "future"},
    {"IfMatch": "etag", "IfUnmodifiedSince": "past"},
    {"IfNoneMatch": "other", "IfModifiedSince": "future"},
    {"IfMatch": "other", "IfNoneMatch": "etag"},
]


@pytest.mark.parametrize("op", ["get_object", "head_object"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "none")
def test_conditional_reads_answer_as_garage(both, op, case):
    side, direct = both
    through, plain = ask(side, op, case), ask(direct, op, case)
    if op == "get_object" and plain[:2] == (412, "412"):
        # Garage answers a failed GET precondition without an error body;
        # S3 sends its XML error, code PreconditionFailed, as the sidecar
        # does. (A HEAD has no body on either.)
        plain = (412, "PreconditionFailed", None)
    assert through == plain
    if through[0] == 200 and op == "get_object":
        assert through[2] == BODY


@pytest.mark.parametrize("op", ["get_object", "head_object"])
def test_a_version_id_reads_the_null_version_or_nothing(both, op):
    side, direct = both

    def read(s, version):
        client, bucket, key, *_ = s
        try:
            r = getattr(client, op)(Bucket=bucket, Key=key, VersionId=version)
            return (200, r["Body"].read() if op == "get_object" else None)
        except ClientError as e:
            return (http_status(e), error_code(e))

    # The only version of an object in an unversioned bucket: as Garage.
    assert read(side, "null") == read(direct, "null")
    assert read(side, "null")[0] == 200
    # Another version id: Garage ignores it and sends the current object;
    # S3 documents NoSuchVersion (404), which the sidecar answers (a HEAD
    # has no error body: boto3 reads its status as the code).
    other = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert read(direct, other)[0] == 200, "Garage now checks version ids: compare directly"
    assert read(side, other) == (404, "NoSuchVersion" if op == "get_object" else "404")
