"""The operations the sidecar supported before, differentially: each case runs
with boto3 against a Garage bucket directly and through the sidecar (tenant
acme, ticket data: its EU region), and what a client reads must be the same:
status, S3 error code, body, and the headers it reads (ETag, length, type,
user metadata, content range, checksums). Keys differ only by their prefix.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, http_status

BODY = b"0123456789abcdefghij" * 3


@pytest.fixture
def sides(s3, backends, uid):
    """[(client, bucket, prefix)] for Garage (eu) and the sidecar."""
    garage, bucket = backends["eu"]
    out = [(garage, bucket, f"basic-{uid}/"), (s3("acme"), "acme", f"tickets/{uid}/")]
    yield out
    for c, b, p in out:
        for o in c.list_objects_v2(Bucket=b, Prefix=p).get("Contents", []):
            c.delete_object(Bucket=b, Key=o["Key"])


def outcome(f, **kw):
    """What a client reads of one call: (status, code, fields)."""
    try:
        r = f(**kw)
    except ClientError as e:
        return (http_status(e), error_code(e), None)
    meta = r.pop("ResponseMetadata")
    fields = {}
    for k in ("ETag", "ContentLength", "ContentType", "ContentRange", "Metadata", "ChecksumSHA256",
              "ChecksumCRC32", "CopyObjectResult"):
        if k in r:
            v = r[k]
            if k == "CopyObjectResult":
                v = v.get("ETag")
            fields[k] = v
    if "Body" in r:
        fields["Body"] = r["Body"].read()
    return (meta["HTTPStatusCode"], "", fields)


CASES = [
    ("put", "put_object", dict(Body=BODY, ContentType="application/json", Metadata={"a": "1"})),
    ("get", "get_object", {}),
    ("head", "head_object", {}),
    ("range 2-5", "get_object", dict(Range="bytes=2-5")),
    ("suffix range", "get_object", dict(Range="bytes=-7")),
    ("open range", "get_object", dict(Range="bytes=50-")),
    ("range past the end", "get_object", dict(Range="bytes=100-200")),
    ("put with SHA-256", "put_object", dict(Body=BODY, ChecksumAlgorithm="SHA256")),
    ("get with checksum mode", "get_object", dict(ChecksumMode="ENABLED")),
    ("put with a wrong Content-MD5", "put_object",
     dict(Body=BODY, ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")),
    ("delete", "delete_object", {}),
    ("get deleted", "get_object", {}),
    ("head deleted", "head_object", {}),
    ("delete again", "delete_object", {}),
]


def test_single_object_operations_answer_as_garage_does(sides):
    for name, op, kw in CASES:
        got = [outcome(getattr(c, op), Bucket=b, Key=p + "obj.json", **kw) for c, b, p in sides]
        assert got[0] == got[1], (name, got)


def test_copy_batch_delete_and_presigned_urls_answer_as_garage_does(sides):
    results = []
    for c, b, p in sides:
        c.put_object(Bucket=b, Key=p + "src.json", Body=BODY, Metadata={"x": "y"})
        r = [
            outcome(c.copy_object, Bucket=b, Key=p + "dst.json", CopySource={"Bucket": b, "Key": p + "src.json"}),
            outcome(c.get_object, Bucket=b, Key=p + "dst.json"),
            outcome(c.copy_object, Bucket=b, Key=p + "dst2.json", CopySource={"Bucket": b, "Key": p + "src.json"},
                    MetadataDirective="REPLACE", Metadata={"x": "z"}, ContentType="text/plain"),
            outcome(c.head_object, Bucket=b, Key=p + "dst2.json"),
            outcome(c.copy_object, Bucket=b, Key=p + "dst3.json",
                    CopySource={"Bucket": b, "Key": p + "missing.json"}),
        ]
        d = c.delete_objects(Bucket=b, Delete={"Objects": [{"Key": p + k} for k in ("dst.json", "dst2.json", "none.json")]})
        r.append(sorted(x["Key"][len(p):] for x in d.get("Deleted", [])))
        r.append(d.get("Errors", []))
        url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": p + "src.json"}, ExpiresIn=300)
        with urllib.request.urlopen(url, timeout=10) as resp:
            r.append((resp.status, resp.read(), resp.headers.get("ETag")))
        put_url = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": p + "presigned.json"},
                                           ExpiresIn=300)
        req = urllib.request.Request(put_url, data=b"presigned", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as resp:
            r.append(resp.status)
        r.append(c.get_object(Bucket=b, Key=p + "presigned.json")["Body"].read())
        sig = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["X-Amz-Signature"][0]
        bad = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
        try:
            urllib.request.urlopen(bad, timeout=10)
            r.append(200)
        except urllib.error.HTTPError as e:
            r.append(e.code)
        results.append(r)
    assert results[0] == results[1], results


def test_multipart_upload_answers_as_garage_does(sides):
    part1 = b"a" * (5 * 1024 * 1024)
    part2 = b"b" * 1000
    results = []
    for c, b, p in sides:
        key = p + "multi.bin"
        up = c.create_multipart_upload(Bucket=b, Key=key, ContentType="application/json")
        e1 = c.upload_part(Bucket=b, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=part1)["ETag"]
        e2 = c.upload_part(Bucket=b, Key=key, UploadId=up["UploadId"], PartNumber=2, Body=part2)["ETag"]
        parts = c.list_parts(Bucket=b, Key=key, UploadId=up["UploadId"])["Parts"]
        bad = outcome(c.complete_multipart_upload, Bucket=b, Key=key, UploadId=up["UploadId"],
                      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}, {"PartNumber": 2, "ETag": e2}]})
        done = c.complete_multipart_upload(Bucket=b, Key=key, UploadId=up["UploadId"],
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                                      {"PartNumber": 2, "ETag": e2}]})
        got = c.get_object(Bucket=b, Key=key)
        body = got["Body"].read()
        results.append((e1, e2, [(x["PartNumber"], x["ETag"], x["Size"]) for x in parts], bad[:2],
                        done["ETag"], got["ContentLength"], hashlib.md5(body).hexdigest()))
        results[-1] += (outcome(c.abort_multipart_upload, Bucket=b, Key=key, UploadId=up["UploadId"])[:2],)
    assert results[0] == results[1], results


def test_copy_source_conditions_answer_as_garage_does(sides):
    import datetime as dt

    hour = dt.timedelta(hours=1)
    results = []
    for c, b, p in sides:
        c.put_object(Bucket=b, Key=p + "csrc.json", Body=BODY)
        h = c.head_object(Bucket=b, Key=p + "csrc.json")
        etag, modified = h["ETag"], h["LastModified"]
        cases = [
            {"CopySourceIfMatch": etag},
            {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
            {"CopySourceIfNoneMatch": etag},
            {"CopySourceIfNoneMatch": '"0123456789abcdef0123456789abcdef"'},
            {"CopySourceIfModifiedSince": modified + hour},
            {"CopySourceIfModifiedSince": modified - hour},
            {"CopySourceIfUnmodifiedSince": modified - hour},
            {"CopySourceIfUnmodifiedSince": modified + hour},
            {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": modified - hour},
        ]
        results.append([
            outcome(c.copy_object, Bucket=b, Key=p + "cdst.json",
                    CopySource={"Bucket": b, "Key": p + "csrc.json"}, **kw)[:2]
            for kw in cases
        ])
    assert results[0] == results[1], results
    assert [r[0] for r in results[1]] == [200, 412, 412, 200, 412, 200, 412, 200, 200], results
