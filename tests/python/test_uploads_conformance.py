"""ListMultipartUploads, differentially: the same open uploads (two of them
for one key) created directly on Garage and through the sidecar (spread over
both regions behind it), then listed with boto3, whole, page by page
(max-uploads 1, continuing from NextKeyMarker and NextUploadIdMarker) and
with a delimiter: the same uploads, each once, the same common prefixes.
Garage lists uploads in upload-id order; S3 documents key order, which the
sidecar follows and the test asserts."""

from __future__ import annotations

import pytest

# Relative key → category through the sidecar (acme: EU and US).
UPLOADS = [
    ("a.bin", "ticket_data"),
    ("a.bin", "ticket_data"),
    ("b.bin", "call_recordings"),
    ("dir/c.bin", "ticket_data"),
    ("dir/d.bin", "call_recordings"),
    ("e.bin", "call_recordings"),
]


@pytest.fixture
def both(s3, backends, uid):
    side = (s3("acme"), "acme", f"{uid}/")
    client, bucket = backends["eu"]
    direct = (client, bucket, f"uploads-{uid}/")
    made = []
    for c, b, root in (side, direct):
        for rel, category in UPLOADS:
            up = c.create_multipart_upload(Bucket=b, Key=root + rel,
                                           Metadata={"residency-category": category})
            made.append((c, b, root + rel, up["UploadId"]))
    yield side, direct
    for c, b, key, upload_id in made:
        c.abort_multipart_upload(Bucket=b, Key=key, UploadId=upload_id)


def walk(side, **kw):
    """Every page's (keys, prefixes) and every (key, upload id) listed."""
    client, bucket, root = side
    pages, seen, args = [], [], dict(Bucket=bucket, Prefix=root, **kw)
    for _ in range(20):
        page = client.list_multipart_uploads(**args)
        ups = page.get("Uploads", [])
        pages.append((
            [u["Key"][len(root):] for u in ups],
            [p["Prefix"][len(root):] for p in page.get("CommonPrefixes", [])],
            page["IsTruncated"],
        ))
        seen += [(u["Key"], u["UploadId"]) for u in ups]
        if not page["IsTruncated"]:
            return pages, seen
        args.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page.get("NextUploadIdMarker", ""))
    raise AssertionError("more than 20 pages")


@pytest.mark.parametrize("case", [dict(), dict(MaxUploads=1), dict(MaxUploads=4), dict(Delimiter="/")],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_list_multipart_uploads_pages_answer_as_garage(both, case):
    side, direct = both
    (through, seen), (plain, _) = walk(side, **case), walk(direct, **case)
    # Garage lists uploads in the order of their ids, not their keys; S3
    # documents key order (a key's uploads by initiation). So: the same
    # uploads and common prefixes, and the sidecar's in key order.
    keys = [k for p in through for k in p[0]]
    assert keys == sorted(k for p in plain for k in p[0])
    assert sorted(x for p in through for x in p[1]) == sorted(x for p in plain for x in p[1])
    assert len(seen) == len(set(seen)), "each upload once"
    if "Delimiter" not in case:
        assert len(seen) == len(UPLOADS)
    else:
        assert [x for p in through for x in p[1]] == ["dir/"]
    if "MaxUploads" in case:
        assert all(len(p[0]) + len(p[1]) <= case["MaxUploads"] for p in through)
        assert len(through) == -(-len(UPLOADS) // case["MaxUploads"])
    assert [p[2] for p in through] == [True] * (len(through) - 1) + [False]


def test_list_parts_pages_answer_as_garage(s3, backends, uid):
    """Five parts listed by pages of two (PartNumberMarker from
    NextPartNumberMarker), directly on Garage and through the sidecar."""
    side = (s3("acme"), "acme", f"tickets/{uid}/parts.bin")
    client, bucket = backends["eu"]
    direct = (client, bucket, f"parts-{uid}.bin")
    walks = []
    for c, b, key in (side, direct):
        up = c.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
        try:
            for n in range(1, 6):
                c.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=n, Body=bytes([n]) * (n * 10))
            pages, marker = [], 0
            for _ in range(10):
                page = c.list_parts(Bucket=b, Key=key, UploadId=up, MaxParts=2, PartNumberMarker=marker)
                pages.append((
                    [(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", [])],
                    page["IsTruncated"],
                    page.get("MaxParts"),
                ))
                if not page["IsTruncated"]:
                    break
                marker = page["NextPartNumberMarker"]
            walks.append(pages)
        finally:
            c.abort_multipart_upload(Bucket=b, Key=key, UploadId=up)
    assert walks[0] == walks[1]
    assert [n for page in walks[0] for n, *_ in page[0]] == [1, 2, 3, 4, 5]


def test_upload_part_copy_answers_as_garage(s3, backends, placement, uid):
    """A multipart upload assembled from ranges of another object (and one
    failed copy-source condition), on Garage directly and through the
    sidecar, where the source is in the EU and the upload's key in the US:
    the same part ETags, the same object, and through the sidecar the bytes
    only where the upload's key is placed."""
    import hashlib
    import os

    from botocore.exceptions import ClientError

    from helpers import error_code, http_status

    data = os.urandom(5 * 1024 * 1024 + 100)
    side = (s3("acme"), "acme", f"tickets/{uid}/src.bin", f"talk/recordings/{uid}/dst.bin")
    client, bucket = backends["eu"]
    direct = (client, bucket, f"copy-src-{uid}.bin", f"copy-dst-{uid}.bin")
    results = []
    for c, b, src, dst in (side, direct):
        c.put_object(Bucket=b, Key=src, Body=data)
        up = c.create_multipart_upload(Bucket=b, Key=dst)["UploadId"]
        source = {"Bucket": b, "Key": src}
        etags, answers = [], []
        try:
            for n, rng in [(1, f"bytes=0-{5 * 1024 * 1024 - 1}"), (2, f"bytes={5 * 1024 * 1024}-{len(data) - 1}")]:
                r = c.upload_part_copy(Bucket=b, Key=dst, UploadId=up, PartNumber=n,
                                       CopySource=source, CopySourceRange=rng)
                etags.append(r["CopyPartResult"]["ETag"])
            for kw in ({"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
                       {"CopySourceRange": f"bytes=0-{len(data) + 10}"}):
                try:
                    c.upload_part_copy(Bucket=b, Key=dst, UploadId=up, PartNumber=3, CopySource=source, **kw)
                    answers.append((200, ""))
                except ClientError as e:
                    answers.append((http_status(e), error_code(e)))
            done = c.complete_multipart_upload(
                Bucket=b, Key=dst, UploadId=up,
                MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
            )
        except Exception:
            c.abort_multipart_upload(Bucket=b, Key=dst, UploadId=up)
            raise
        got = c.get_object(Bucket=b, Key=dst)["Body"].read()
        if c is side[0]:
            assert placement("acme", dst) == ["us"]
        for k in (src, dst):
            c.delete_object(Bucket=b, Key=k)
        results.append((etags, answers, done["ETag"], hashlib.sha256(got).hexdigest()))
    assert results[0] == results[1]
    assert results[0][3] == hashlib.sha256(data).hexdigest()
    assert results[0][1][0] == (412, "PreconditionFailed")
