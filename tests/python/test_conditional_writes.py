"""Conditional writes (`If-None-Match: *`, `If-Match: <etag>`) on PutObject,
CopyObject and CompleteMultipartUpload, with boto3, against Garage directly
and through the sidecar.

Garage (v1.x) ignores both headers on writes: it overwrites whatever the
condition says. Where the condition holds, the two answer the same (the case
compares them); where it fails, S3 documents `412 PreconditionFailed` (and
`404 NoSuchKey` for If-Match on a missing key), which the sidecar answers
and the test asserts, checking that Garage still ignores the header (if it
starts honouring it, the case must become a comparison) and that the
sidecar changed nothing."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, http_status

OLD = b"old body"
NEW = b"new body"
OTHER_ETAG = '"0123456789abcdef0123456789abcdef"'


def answer(f):
    try:
        f()
        return (200, "")
    except ClientError as e:
        return (http_status(e), error_code(e))


@pytest.fixture
def both(s3, backends, uid):
    """(sidecar, direct): (client, bucket, existing key, its etag, a missing key)."""
    side_c = s3("acme")
    direct_c, bucket = backends["eu"]
    out = []
    for c, b, prefix in ((side_c, "acme", f"chat/{uid}/"), (direct_c, bucket, f"condput-{uid}/")):
        key = prefix + "existing"
        etag = c.put_object(Bucket=b, Key=key, Body=OLD)["ETag"]
        out.append((c, b, key, etag, prefix + "missing"))
    yield out
    for c, b, key, _, missing in out:
        c.delete_object(Bucket=b, Key=key)
        c.delete_object(Bucket=b, Key=missing)


def body(side, key):
    c, b, *_ = side
    return c.get_object(Bucket=b, Key=key)["Body"].read()


def put(side, target, **cond):
    c, b, key, etag, missing = side
    k = key if target == "existing" else missing
    if cond.get("IfMatch") == "etag":
        cond["IfMatch"] = etag
    return answer(lambda: c.put_object(Bucket=b, Key=k, Body=NEW, **cond)), k


# (target, condition, S3's answer)
PUT_CASES = [
    ("missing", {"IfNoneMatch": "*"}, (200, "")),
    ("existing", {"IfNoneMatch": "*"}, (412, "PreconditionFailed")),
    ("existing", {"IfMatch": "etag"}, (200, "")),
    ("existing", {"IfMatch": OTHER_ETAG}, (412, "PreconditionFailed")),
    ("missing", {"IfMatch": OTHER_ETAG}, (404, "NoSuchKey")),
]


@pytest.mark.parametrize("target,cond,s3_answer", PUT_CASES,
                         ids=[f"{t}-{','.join(f'{k}={v}' for k, v in c.items())}" for t, c, _ in PUT_CASES])
def test_conditional_put(both, target, cond, s3_answer):
    side, direct = both
    through, key = put(side, target, **dict(cond))
    plain, dkey = put(direct, target, **dict(cond))
    assert through == s3_answer
    if s3_answer[0] == 200:
        # The condition holds: the same answer as Garage, the new body on both.
        assert through == plain
        assert body(side, key) == body(direct, dkey) == NEW
    else:
        # Garage ignores the header and writes; S3 (and the sidecar) refuse
        # and change nothing.
        assert plain == (200, ""), "Garage honours conditional writes now: compare with it"
        if target == "existing":
            assert body(side, key) == OLD
        else:
            assert answer(lambda: side[0].head_object(Bucket=side[1], Key=key))[0] == 404


@pytest.mark.parametrize("target,s3_answer", [("missing", (200, "")), ("existing", (412, "PreconditionFailed"))])
def test_create_only_copy(both, target, s3_answer):
    side, direct = both
    answers = []
    for c, b, key, _, missing in (side, direct):
        src = key + "-src"
        c.put_object(Bucket=b, Key=src, Body=NEW)
        dst = key if target == "existing" else missing
        answers.append(answer(lambda: c.copy_object(Bucket=b, Key=dst, CopySource={"Bucket": b, "Key": src},
                                                    IfNoneMatch="*")))
        c.delete_object(Bucket=b, Key=src)
    through, plain = answers
    assert through == s3_answer
    if s3_answer[0] == 200:
        assert through == plain
    else:
        assert plain == (200, ""), "Garage honours conditional copies now: compare with it"
        assert body(side, side[2]) == OLD


def test_create_only_complete_multipart_upload(both):
    side, direct = both
    answers = []
    for c, b, key, _, _ in (side, direct):
        up = c.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
        e = c.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=1, Body=NEW)["ETag"]
        answers.append(answer(lambda: c.complete_multipart_upload(
            Bucket=b, Key=key, UploadId=up, IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})))
        if answers[-1][0] != 200:
            c.abort_multipart_upload(Bucket=b, Key=key, UploadId=up)
    through, plain = answers
    assert plain == (200, ""), "Garage honours conditional completes now: compare with it"
    assert through == (412, "PreconditionFailed")
    assert body(side, side[2]) == OLD


def test_concurrent_create_only_puts_through_one_sidecar_have_one_winner(s3, uid):
    c = s3("acme")
    key = f"chat/{uid}/race"
    results = []
    lock = threading.Lock()

    def writer(i):
        r = answer(lambda: c.put_object(Bucket="acme", Key=key, Body=f"writer {i}".encode(), IfNoneMatch="*"))
        with lock:
            results.append((r, i))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for r, i in results if r == (200, "")]
    assert len(winners) == 1, results
    assert all(r == (412, "PreconditionFailed") for r, i in results if i not in winners)
    assert c.get_object(Bucket="acme", Key=key)["Body"].read() == f"writer {winners[0]}".encode()
    c.delete_object(Bucket="acme", Key=key)
