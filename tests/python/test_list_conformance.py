"""Listings, differentially: each case runs with boto3 against a Garage bucket
directly and through the sidecar (the tenant's virtual bucket, its keys spread
over both regions), and the answers must be the same: keys, sizes, ETags,
common prefixes, markers, truncation. Where Garage lacks the operation
(ListObjectVersions), the sidecar's answer is checked against S3's documented
answer for an unversioned bucket.

Keys include a space, a `+` and a `%`: botocore asks for `encoding-type=url`
on every listing and decodes the answer, so a listing that does not encode
them comes back with other keys.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, http_status

# Relative key → the category it is written with through the sidecar (acme:
# ticket_data in the EU, call_recordings in the US: one listing merges both).
KEYS = {
    "a.txt": "ticket_data",
    "b b.txt": "call_recordings",
    "c+d.txt": "ticket_data",
    "dir1/x.json": "call_recordings",
    "dir1/y.json": "ticket_data",
    "dir2/sub/w.json": "ticket_data",
    "dir2/z.json": "call_recordings",
    "e%.txt": "ticket_data",
    "zz.txt": "call_recordings",
}


@pytest.fixture
def pair(s3, backends, placement, uid):
    """(sidecar, direct): each a (client, bucket, root) with the same keys
    under root; placement checked; everything deleted afterwards."""
    side = (s3("acme"), "acme", f"{uid}/")
    client, bucket = backends["eu"]
    direct = (client, bucket, f"conformance-{uid}/")
    for rel, category in KEYS.items():
        body = rel.encode() * 3
        side[0].put_object(Bucket="acme", Key=side[2] + rel, Body=body,
                           Metadata={"residency-category": category})
        client.put_object(Bucket=bucket, Key=direct[2] + rel, Body=body)
    assert placement("acme", side[2] + "a.txt") == ["eu"]
    assert placement("acme", side[2] + "b b.txt") == ["us"]
    yield side, direct
    for c, b, root in (side, direct):
        for rel in KEYS:
            c.delete_object(Bucket=b, Key=root + rel)


def strip(value, root: str):
    if isinstance(value, str):
        assert value.startswith(root) or value == "", (value, root)
        return value[len(root):]
    return value


def v1_view(page: dict, root: str) -> dict:
    """What a client reads of a ListObjects answer, relative to root."""
    return {
        "Contents": [(strip(o["Key"], root), o["Size"], o["ETag"], o.get("StorageClass"))
                     for o in page.get("Contents", [])],
        "CommonPrefixes": [strip(p["Prefix"], root) for p in page.get("CommonPrefixes", [])],
        "IsTruncated": page["IsTruncated"],
        "NextMarker": strip(page["NextMarker"], root) if "NextMarker" in page else None,
        "Marker": strip(page.get("Marker", ""), root) if page.get("Marker") else "",
        # botocore does not decode a v1 answer's Prefix (it does its keys,
        # markers and common prefixes).
        "Prefix": strip(unquote(page.get("Prefix", "")), root) if page.get("Prefix") else "",
        "Delimiter": page.get("Delimiter"),
        "MaxKeys": page["MaxKeys"],
    }


def v1_walk(side, rel_prefix: str = "", marker: str | None = None, **kw) -> list[dict]:
    """Every page of a ListObjects walk, continuing as a client does: from
    NextMarker when given, else from the last key."""
    client, bucket, root = side
    pages = []
    m = root + marker if marker is not None else None
    for _ in range(20):
        args = dict(Bucket=bucket, Prefix=root + rel_prefix, **kw)
        if m:
            args["Marker"] = m
        page = client.list_objects(**args)
        pages.append(v1_view(page, root))
        if not page["IsTruncated"] or kw.get("MaxKeys") == 0:
            return pages
        m = page.get("NextMarker") or page["Contents"][-1]["Key"]
    raise AssertionError("more than 20 pages")


def flat(pages: list[dict]) -> list[str]:
    """Keys and common prefixes of a walk, in the order they came."""
    return [x for p in pages for x in [k for k, *_ in p["Contents"]] + p["CommonPrefixes"]]


@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(MaxKeys=3),
        dict(Delimiter="/"),
        dict(Delimiter="/", MaxKeys=2),
        dict(Delimiter="/", marker="dir1/"),
        dict(Delimiter="/", marker="c+d.txt", MaxKeys=2),
        dict(rel_prefix="dir2/", Delimiter="/"),
        dict(rel_prefix="dir", MaxKeys=1),
        dict(rel_prefix="nothing-here/"),
        dict(MaxKeys=0),
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "plain",
)
def test_list_objects_v1_answers_as_garage(pair, case):
    side, direct = pair
    through, plain = v1_walk(side, **case), v1_walk(direct, **case)
    if case.get("MaxKeys") == 0:
        # Garage answers max-keys=0 as 1 (a key, MaxKeys 1); S3 returns at
        # most MaxKeys keys: none.
        assert [(p["Contents"], p["CommonPrefixes"], p["MaxKeys"]) for p in through] == [([], [], 0)]
        assert plain[0]["MaxKeys"] == 1, "Garage now answers max-keys=0 as S3: compare directly"
        return
    if len(plain) == 1 and "marker" not in case:
        # One page: the same answer, field for field.
        assert through == plain
        return
    # Paged, Garage departs from S3's documented answer in three ways, and
    # the sidecar follows S3: (1) Garage sends NextMarker without a
    # delimiter (S3: "returned only if you have the delimiter request
    # parameter specified"; the client continues from the last key); (2)
    # with a delimiter, Garage's NextMarker is the last key rolled up into a
    # common prefix, so the next page repeats that prefix (S3's NextMarker
    # is the prefix itself, and a walk lists each prefix once); (3) a
    # marker that is a common prefix lists it again (S3 starts after every
    # key it rolls up). So: the same keys and prefixes, each once, after
    # the marker, and each page as S3 documents it.
    marker = case.get("marker", "")
    expected = []
    for x in flat(plain):
        if x not in expected and x > marker:
            expected.append(x)
    assert sorted(flat(through)) == sorted(expected)
    assert len(flat(through)) == len(set(flat(through))), "each key and prefix once"
    for p in through:
        assert p["Marker"] in [marker] + [q["NextMarker"] for q in through] + [
            k for q in through for k, *_ in q["Contents"]
        ]
        if "Delimiter" in case and p["IsTruncated"]:
            last = max([k for k, *_ in p["Contents"]] + p["CommonPrefixes"])
            assert p["NextMarker"] == last, p
        else:
            assert p["NextMarker"] is None, p
        if case.get("MaxKeys"):
            assert len(p["Contents"]) + len(p["CommonPrefixes"]) <= case["MaxKeys"]
    # The pages Garage answers as S3 does are the same.
    assert through[0]["Contents"] == plain[0]["Contents"]
    assert through[0]["CommonPrefixes"] == [p for p in plain[0]["CommonPrefixes"] if p > marker]


@pytest.mark.parametrize(
    "case",
    [dict(), dict(Delimiter="/"), dict(StartAfter="c+d.txt", MaxKeys=2), dict(Delimiter="/", MaxKeys=1)],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "plain",
)
def test_list_objects_v2_pages_answer_as_garage(pair, case):
    side, direct = pair

    def walk(s):
        client, bucket, root = s
        args = dict(case)
        if "StartAfter" in args:
            args["StartAfter"] = root + args["StartAfter"]
        out = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root, **args):
            out.append((
                [(strip(o["Key"], root), o["Size"], o["ETag"]) for o in page.get("Contents", [])],
                [strip(p["Prefix"], root) for p in page.get("CommonPrefixes", [])],
                page["KeyCount"],
                page["IsTruncated"],
            ))
        return out

    assert walk(side) == walk(direct)


def test_list_object_versions_answers_as_s3_for_an_unversioned_bucket(pair):
    side, direct = pair
    client, bucket, root = direct
    # Garage does not implement ListObjectVersions: S3's documented answer
    # for an unversioned bucket is each object as its `null` version.
    try:
        client.list_object_versions(Bucket=bucket, Prefix=root)
        garage_lists_versions = True
    except ClientError as e:
        garage_lists_versions = False
        assert http_status(e) in (400, 501), e.response
    c, b, root = side
    versions, prefixes, pages = [], [], 0
    args = dict(Bucket=b, Prefix=root, MaxKeys=4)
    while True:
        page = c.list_object_versions(**args)
        pages += 1
        assert "DeleteMarkers" not in page
        for v in page.get("Versions", []):
            assert v["VersionId"] == "null" and v["IsLatest"] is True, v
            versions.append((strip(v["Key"], root), v["Size"]))
        if not page["IsTruncated"]:
            break
        assert page["NextVersionIdMarker"] == "null"
        args.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
    assert versions == [(k, len(k.encode()) * 3) for k in sorted(KEYS)]
    assert pages == 3
    # With a delimiter: the common prefixes, as a listing has them.
    page = c.list_object_versions(Bucket=b, Prefix=root, Delimiter="/")
    prefixes = [strip(p["Prefix"], root) for p in page.get("CommonPrefixes", [])]
    assert prefixes == ["dir1/", "dir2/"]
    if garage_lists_versions:
        page = client.list_object_versions(Bucket=bucket, Prefix=direct[2])
        assert len(page.get("Versions", [])) == len(KEYS)
    # A cleanup as tools do it: each listed version deleted by its id.
    listed = c.list_object_versions(Bucket=b, Prefix=root)["Versions"]
    gone = c.delete_objects(
        Bucket=b, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listed]}
    )
    assert len(gone.get("Deleted", [])) == len(KEYS), gone
    assert c.list_objects_v2(Bucket=b, Prefix=root)["KeyCount"] == 0


def test_list_objects_v1_of_another_tenants_bucket_is_refused(s3, uid):
    with pytest.raises(ClientError) as info:
        s3("globex").list_objects(Bucket="acme", Prefix=f"{uid}/")
    assert (error_code(info.value), http_status(info.value)) == ("AccessDenied", 403)


# ------------------------------------------------ what would leave the region


@pytest.mark.parametrize(
    "call, what",
    [
        (lambda c: c.put_bucket_replication(Bucket="acme", ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/replication",
            "Rules": [{"Status": "Enabled", "Prefix": "", "Destination": {"Bucket": "arn:aws:s3:::elsewhere"}}],
        }), "bucket replication"),
        (lambda c: c.put_bucket_website(Bucket="acme", WebsiteConfiguration={
            "IndexDocument": {"Suffix": "index.html"}}), "website hosting"),
        (lambda c: c.put_bucket_inventory_configuration(Bucket="acme", Id="daily", InventoryConfiguration={
            "Destination": {"S3BucketDestination": {"Bucket": "arn:aws:s3:::elsewhere", "Format": "CSV"}},
            "IsEnabled": True, "Id": "daily", "IncludedObjectVersions": "Current",
            "Schedule": {"Frequency": "Daily"}}), "inventory reports"),
    ],
    ids=["replication", "website", "inventory"],
)
def test_what_would_copy_data_out_of_its_region_is_refused_with_the_reason(s3, call, what):
    with pytest.raises(ClientError) as info:
        call(s3("acme"))
    e = info.value
    assert (error_code(e), http_status(e)) == ("MethodNotAllowed", 405), e.response
    assert what in e.response["Error"]["Message"]
    assert "region" in e.response["Error"]["Message"]


def test_a_bucket_without_replication_or_website_answers_as_s3(s3):
    c = s3("acme")
    with pytest.raises(ClientError) as info:
        c.get_bucket_replication(Bucket="acme")
    assert (error_code(info.value), http_status(info.value)) == ("ReplicationConfigurationNotFoundError", 404)
    with pytest.raises(ClientError) as info:
        c.get_bucket_website(Bucket="acme")
    assert (error_code(info.value), http_status(info.value)) == ("NoSuchWebsiteConfiguration", 404)
    # Another tenant's bucket: refused before anything else.
    with pytest.raises(ClientError) as info:
        s3("globex").put_bucket_website(Bucket="acme", WebsiteConfiguration={"IndexDocument": {"Suffix": "i.html"}})
    assert error_code(info.value) == "AccessDenied"
