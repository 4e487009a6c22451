"""Buckets a tenant creates (CreateBucket, HeadBucket, ListBuckets,
GetBucketLocation, DeleteBucket), differentially: each case runs against Garage
directly and through the sidecar with boto3, and both must answer the same
(status, S3 error code, what a client reads), except where a documented
residency rule makes the sidecar stricter or Garage departs from S3's
documentation (then the test asserts S3's answer and says why; every
difference is listed in docs/s3-compatibility.md).

Then what only the sidecar does: a created bucket's objects land in the region
the policy places each key in, under `<tenant>/~bucket/<bucket>/` (the
tenant's configured bucket keeps its keys where they were), a bucket's
default category, LocationConstraint checked against the tenant's policy,
names unique across tenants, a service key naming the tenant, and the aws
CLI's `s3 mb` / `s3 rb` round trip.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from helpers import TENANT_KEYS, error_code, http_status, remove_bucket


def answer(f, *args, **kwargs):
    """(status, error code, result without metadata) of one boto3 call."""
    try:
        r = f(*args, **kwargs)
        status = r.pop("ResponseMetadata")["HTTPStatusCode"]
        return (status, "", r)
    except ClientError as e:
        return (http_status(e), error_code(e), None)


@pytest.fixture
def sides(s3, backends, uid):
    """[(name, client, bucket name to create)] for Garage (us) and the sidecar (acme)."""
    garage, _ = backends["us"]
    out = [("garage", garage, f"conf-g-{uid[:12]}"), ("sidecar", s3("acme"), f"conf-s-{uid[:12]}")]
    yield out
    for _, c, b in out:
        remove_bucket(c, b)


def both(sides, call):
    """call(client, bucket) on each side → {side: (status, code, result)}."""
    return {name: call(c, b) for name, c, b in sides}


def test_bucket_lifecycle_is_answered_as_garage_answers(sides):
    # Each step: the same status and error code on both sides.
    steps = [
        ("create", lambda c, b: answer(c.create_bucket, Bucket=b)),
        ("create again (own)", lambda c, b: answer(c.create_bucket, Bucket=b)),
        ("head", lambda c, b: answer(c.head_bucket, Bucket=b)),
        ("put", lambda c, b: answer(c.put_object, Bucket=b, Key="tickets/1.json", Body=b"{}")),
        ("list", lambda c, b: answer(c.list_objects_v2, Bucket=b)),
        ("delete non-empty", lambda c, b: answer(c.delete_bucket, Bucket=b)),
        ("open an upload", lambda c, b: answer(c.create_multipart_upload, Bucket=b, Key="tickets/2.json")),
        ("delete object", lambda c, b: answer(c.delete_object, Bucket=b, Key="tickets/1.json")),
        ("delete empty (an upload open)", lambda c, b: answer(c.delete_bucket, Bucket=b)),
        ("head deleted", lambda c, b: answer(c.head_bucket, Bucket=b)),
        ("list deleted", lambda c, b: answer(c.list_objects_v2, Bucket=b)),
        ("put into deleted", lambda c, b: answer(c.put_object, Bucket=b, Key="tickets/3.json", Body=b"{}")),
        ("delete deleted", lambda c, b: answer(c.delete_bucket, Bucket=b)),
    ]
    expected = {
        "create": (200, ""),
        "create again (own)": (409, "BucketAlreadyOwnedByYou"),
        "head": (200, ""),
        "put": (200, ""),
        "list": (200, ""),
        "delete non-empty": (409, "BucketNotEmpty"),
        "open an upload": (200, ""),
        "delete object": (204, ""),
        "delete empty (an upload open)": (204, ""),
        "head deleted": (404, "404"),
        "list deleted": (404, "NoSuchBucket"),
        "put into deleted": (404, "NoSuchBucket"),
        "delete deleted": (404, "NoSuchBucket"),
    }
    for name, step in steps:
        got = both(sides, step)
        g, s = got["garage"], got["sidecar"]
        assert (g[0], g[1]) == (s[0], s[1]) == expected[name], (name, g[:2], s[:2])
        if name == "list":
            assert [o["Key"] for o in g[2]["Contents"]] == [o["Key"] for o in s[2]["Contents"]] == ["tickets/1.json"]
            assert g[2]["Contents"][0]["ETag"] == s[2]["Contents"][0]["ETag"]


def test_list_buckets_and_location_of_a_created_bucket(sides):
    for _, c, b in sides:
        c.create_bucket(Bucket=b)
    for name, c, b in sides:
        names = [x["Name"] for x in c.list_buckets()["Buckets"]]
        assert b in names, (name, names)
    # S3 lists buckets by name; Garage lists them in its own order.
    names = [x["Name"] for x in sides[1][1].list_buckets()["Buckets"]]
    assert names == sorted(names)
    # GetBucketLocation: S3 documents an empty LocationConstraint for
    # us-east-1; Garage (region us-east-1 here) answers "us-east-1". The
    # sidecar answers the tenant's home region (acme: the EU, eu-west-1).
    g = sides[0][1].get_bucket_location(Bucket=sides[0][2])
    assert g["LocationConstraint"] == "us-east-1"  # Garage's departure, asserted so that it is noticed if it changes
    s = sides[1][1].get_bucket_location(Bucket=sides[1][2])
    assert s["LocationConstraint"] == "eu-west-1"


def test_invalid_bucket_names_are_refused(sides):
    # S3 documents 400 InvalidBucketName; Garage answers 400 InvalidRequest.
    garage = sides[0][1]
    for bad in ("ab", "a" * 64, "-starts-with-dash"):
        g = answer(garage.create_bucket, Bucket=bad)
        s = answer(sides[1][1].create_bucket, Bucket=bad)
        assert g[0] == s[0] == 400, (bad, g, s)
        assert s[1] == "InvalidBucketName", (bad, s)
    # Two adjacent periods: S3's naming rules forbid them, Garage creates
    # the bucket (its departure; removed again here).
    bad = f"two..{sides[0][2]}"
    g = answer(garage.create_bucket, Bucket=bad)
    if g[0] == 200:
        garage.delete_bucket(Bucket=bad)
    s = answer(sides[1][1].create_bucket, Bucket=bad)
    assert (s[0], s[1]) == (400, "InvalidBucketName"), s


def test_objects_of_a_created_bucket_land_where_the_policy_places_them(s3, backends, uid):
    acme = s3("acme")
    b = f"files-{uid[:12]}"
    acme.create_bucket(Bucket=b)
    try:
        acme.put_object(Bucket=b, Key="tickets/1.json", Body=b"ticket")  # ticket data: acme's EU
        acme.put_object(Bucket=b, Key="talk/recordings/1.wav", Body=b"rec")  # call recordings: US only
        acme.put_object(Bucket="acme", Key=f"tickets/{uid}/same.json", Body=b"configured")

        def holds(region, key):
            client, bucket = backends[region]
            try:
                return client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError:
                return None

        assert holds("eu", f"acme/~bucket/{b}/tickets/1.json") == b"ticket"
        assert holds("us", f"acme/~bucket/{b}/tickets/1.json") is None
        assert holds("us", f"acme/~bucket/{b}/talk/recordings/1.wav") == b"rec"
        assert holds("eu", f"acme/~bucket/{b}/talk/recordings/1.wav") is None
        # The configured bucket's keys stay where they always were, and its
        # listing does not show the created bucket's objects.
        assert holds("eu", f"acme/tickets/{uid}/same.json") == b"configured"
        keys = [o["Key"] for o in acme.list_objects_v2(Bucket="acme", Prefix="").get("Contents", [])]
        assert not any(k.startswith("~bucket/") for k in keys), keys
        top = acme.list_objects_v2(Bucket="acme", Delimiter="/").get("CommonPrefixes", [])
        assert "~bucket/" not in [p["Prefix"] for p in top]
        # ... and a key under the namespace is refused there, as is a read.
        with pytest.raises(ClientError) as e:
            acme.put_object(Bucket="acme", Key=f"~bucket/{b}/tickets/1.json", Body=b"sneak")
        assert error_code(e.value) == "InvalidArgument"
        with pytest.raises(ClientError) as e:
            acme.get_object(Bucket="acme", Key=f"~bucket/{b}/tickets/1.json")
        assert error_code(e.value) == "InvalidArgument"
        # The created bucket lists its own keys only.
        keys = sorted(o["Key"] for o in acme.list_objects_v2(Bucket=b)["Contents"])
        assert keys == ["talk/recordings/1.wav", "tickets/1.json"]
        # Another tenant cannot read it, nor take its name.
        globex = s3("globex")
        with pytest.raises(ClientError) as e:
            globex.get_object(Bucket=b, Key="tickets/1.json")
        assert error_code(e.value) == "AccessDenied"
        with pytest.raises(ClientError) as e:
            globex.create_bucket(Bucket=b)
        assert error_code(e.value) == "BucketAlreadyExists"
        # A configured bucket's name is taken too.
        with pytest.raises(ClientError) as e:
            globex.create_bucket(Bucket="acme")
        assert error_code(e.value) == "BucketAlreadyExists"
    finally:
        for k in ("tickets/1.json", "talk/recordings/1.wav"):
            acme.delete_object(Bucket=b, Key=k)
        acme.delete_object(Bucket="acme", Key=f"tickets/{uid}/same.json")
        acme.delete_bucket(Bucket=b)


def test_a_default_category_classifies_what_no_key_rule_does(s3, backends, uid):
    acme = s3("acme")
    b = f"recordings-{uid[:12]}"

    def with_header(name, value):
        def add(params, **_):
            params["headers"][name] = value

        return add

    # An unknown category is refused, nothing created.
    ev = acme.meta.events
    hook = with_header("x-residency-default-category", "voicemail")
    ev.register("before-call.s3.CreateBucket", hook)
    try:
        with pytest.raises(ClientError) as e:
            acme.create_bucket(Bucket=b)
        assert error_code(e.value) == "InvalidArgument"
        assert "voicemail" in str(e.value)
    finally:
        ev.unregister("before-call.s3.CreateBucket", hook)
    with pytest.raises(ClientError):
        acme.head_bucket(Bucket=b)

    hook = with_header("x-residency-default-category", "call_recordings")
    ev.register("before-call.s3.CreateBucket", hook)
    try:
        acme.create_bucket(Bucket=b)
    finally:
        ev.unregister("before-call.s3.CreateBucket", hook)
    try:
        # No key rule matches: the bucket's category (US only) places it.
        acme.put_object(Bucket=b, Key="2026/12/call-1.bin", Body=b"audio")
        us, us_bucket = backends["us"]
        head = us.head_object(Bucket=us_bucket, Key=f"acme/~bucket/{b}/2026/12/call-1.bin")
        assert head["Metadata"].get("residency-category") == "call_recordings"
        # A key rule still wins (chat content: EEA only).
        acme.put_object(Bucket=b, Key="chat/1.json", Body=b"{}")
        eu, eu_bucket = backends["eu"]
        eu.head_object(Bucket=eu_bucket, Key=f"acme/~bucket/{b}/chat/1.json")
        # The same unclassified key in the configured bucket is denied.
        with pytest.raises(ClientError) as e:
            acme.put_object(Bucket="acme", Key=f"2026/12/{uid}.bin", Body=b"audio")
        assert error_code(e.value) == "AccessDenied"
    finally:
        for k in ("2026/12/call-1.bin", "chat/1.json"):
            acme.delete_object(Bucket=b, Key=k)
        acme.delete_bucket(Bucket=b)


def test_location_constraint_must_be_the_tenants_home_region(s3, uid):
    acme = s3("acme")  # locality: eu
    b = f"loc-{uid[:12]}"
    with pytest.raises(ClientError) as e:
        acme.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert (http_status(e.value), error_code(e.value)) == (400, "InvalidLocationConstraint")
    assert "eu" in str(e.value)
    with pytest.raises(ClientError) as e:
        acme.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "mars-1"})
    assert error_code(e.value) == "InvalidLocationConstraint"
    with pytest.raises(ClientError):
        acme.head_bucket(Bucket=b)
    acme.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    try:
        assert acme.get_bucket_location(Bucket=b)["LocationConstraint"] == "eu-west-1"
    finally:
        acme.delete_bucket(Bucket=b)


def test_a_service_key_names_the_tenant_of_a_new_bucket(s3, sidecar_client, uid):
    app = s3("appserver")  # acts for acme, globex, initech
    b = f"svc-{uid[:12]}"
    with pytest.raises(ClientError) as e:
        app.create_bucket(Bucket=b)
    assert error_code(e.value) == "InvalidArgument"
    assert "x-residency-tenant" in str(e.value)

    def tenant(name):
        def add(params, **_):
            params["headers"]["x-residency-tenant"] = name

        return add

    ev = app.meta.events
    hook = tenant("eurobank")  # not one of the key's tenants
    ev.register("before-call.s3.CreateBucket", hook)
    try:
        with pytest.raises(ClientError) as e:
            app.create_bucket(Bucket=b)
        assert error_code(e.value) == "AccessDenied"
    finally:
        ev.unregister("before-call.s3.CreateBucket", hook)
    hook = tenant("globex")
    ev.register("before-call.s3.CreateBucket", hook)
    try:
        app.create_bucket(Bucket=b)
    finally:
        ev.unregister("before-call.s3.CreateBucket", hook)
    try:
        globex = s3("globex")
        assert b in [x["Name"] for x in globex.list_buckets()["Buckets"]]
        assert b not in [x["Name"] for x in s3("acme").list_buckets()["Buckets"]]
        globex.put_object(Bucket=b, Key="tickets/1.json", Body=b"{}")
        assert app.get_object(Bucket=b, Key="tickets/1.json")["Body"].read() == b"{}"
        globex.delete_object(Bucket=b, Key="tickets/1.json")
    finally:
        globex.delete_bucket(Bucket=b)


def test_configured_bucket_cannot_be_deleted(s3):
    with pytest.raises(ClientError) as e:
        s3("acme").delete_bucket(Bucket="acme")
    assert (http_status(e.value), error_code(e.value)) == (405, "MethodNotAllowed")
    s3("acme").head_bucket(Bucket="acme")


def test_aws_cli_mb_cp_rb_round_trip(sidecar, tmp_path, uid):
    ak, sk = TENANT_KEYS["acme"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ak, AWS_SECRET_ACCESS_KEY=sk, AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_PROFILE", None)
    b = f"cli-{uid[:12]}"

    def aws(*args, ok=True):
        r = subprocess.run(
            ["aws", "--endpoint-url", sidecar.endpoint, "s3", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    src = tmp_path / "readme.md"
    src.write_text("hello")
    aws("mb", f"s3://{b}")
    assert b in aws("ls").stdout
    aws("cp", str(src), f"s3://{b}/tickets/readme.md")
    assert "tickets/readme.md" in aws("ls", "--recursive", f"s3://{b}").stdout
    r = aws("rb", f"s3://{b}", ok=False)
    assert r.returncode != 0 and "BucketNotEmpty" in r.stderr, r.stderr
    aws("rb", "--force", f"s3://{b}")
    assert b not in aws("ls").stdout
