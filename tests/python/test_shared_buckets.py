"""Addressing modes for existing multi-tenant applications: buckets shared by
tenants (`[[shared_buckets]]` in the session sidecar's config, see
conftest.py), the tenant named by the first key segment (`attachments`, default
category `attachments`) or by the signed header `x-residency-tenant`
(`uploads`). Each tenant's objects land in its own namespace
(`<tenant>/~bucket/<bucket>/...`) in the region the policy gives it; the
key-segment mode answers every key with the tenant in it, so that the
application sees the layout it always had. The listing of a tenant's
segment is compared with the same keys listed directly from a Garage bucket.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, http_status


def with_tenant(client, tenant):
    """Registers a hook adding a (signed) x-residency-tenant header; returns the unregister."""

    def add(params, **_):
        params["headers"]["x-residency-tenant"] = tenant

    client.meta.events.register("before-call.s3", add)
    return lambda: client.meta.events.unregister("before-call.s3", add)


def stored(backends, region, key):
    client, bucket = backends[region]
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return None


def test_tenant_from_the_first_key_segment(s3, backends, uid):
    app = s3("appserver")  # a service key for acme, globex, initech
    a_key, g_key = f"acme/{uid}/inbox/1.png", f"globex/{uid}/inbox/1.png"
    app.put_object(Bucket="attachments", Key=a_key, Body=b"acme-png", ContentType="image/png")
    app.put_object(Bucket="attachments", Key=g_key, Body=b"globex-png", ContentType="image/png")
    try:
        # Each tenant's region (attachments: EU or US, the tenant's locality),
        # in its own namespace, without the tenant segment; the bucket's
        # default category stored with it.
        h = stored(backends, "eu", f"acme/~bucket/attachments/{uid}/inbox/1.png")
        assert h is not None and h["Metadata"]["residency-category"] == "attachments"
        assert stored(backends, "us", f"acme/~bucket/attachments/{uid}/inbox/1.png") is None
        assert stored(backends, "us", f"globex/~bucket/attachments/{uid}/inbox/1.png") is not None
        assert app.get_object(Bucket="attachments", Key=a_key)["Body"].read() == b"acme-png"
        assert app.head_object(Bucket="attachments", Key=g_key)["ContentLength"] == len(b"globex-png")

        # Listing one tenant's segment answers its keys as written.
        r = app.list_objects_v2(Bucket="attachments", Prefix=f"acme/{uid}/")
        assert [o["Key"] for o in r["Contents"]] == [a_key]
        r = app.list_objects_v2(Bucket="attachments", Prefix="acme/", Delimiter="/")
        assert f"acme/{uid}/" in [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        r = app.list_objects(Bucket="attachments", Prefix=f"acme/{uid}/", Delimiter="/")
        assert [p["Prefix"] for p in r["CommonPrefixes"]] == [f"acme/{uid}/inbox/"]
        # A listing that names no tenant is refused with how to name one.
        with pytest.raises(ClientError) as e:
            app.list_objects_v2(Bucket="attachments")
        assert error_code(e.value) == "InvalidArgument" and "first segment" in str(e.value)

        # A tenant key acts for its own segment only.
        acme = s3("acme")
        assert acme.get_object(Bucket="attachments", Key=a_key)["Body"].read() == b"acme-png"
        with pytest.raises(ClientError) as e:
            acme.get_object(Bucket="attachments", Key=g_key)
        assert error_code(e.value) == "AccessDenied"
        with pytest.raises(ClientError) as e:
            acme.list_objects_v2(Bucket="attachments", Prefix="globex/")
        assert error_code(e.value) == "AccessDenied"
        # A key with no tenant segment, or an unknown tenant, is refused.
        for bad in ("loose.png", "nosuchtenant/x.png"):
            with pytest.raises(ClientError) as e:
                app.put_object(Bucket="attachments", Key=bad, Body=b"x")
            assert http_status(e.value) in (400, 403), (bad, e.value)

        # Copy within one tenant's segment; not across tenants.
        app.copy_object(Bucket="attachments", Key=f"acme/{uid}/inbox/2.png",
                        CopySource={"Bucket": "attachments", "Key": a_key})
        assert stored(backends, "eu", f"acme/~bucket/attachments/{uid}/inbox/2.png") is not None
        with pytest.raises(ClientError) as e:
            app.copy_object(Bucket="attachments", Key=f"acme/{uid}/inbox/3.png",
                            CopySource={"Bucket": "attachments", "Key": g_key})
        assert error_code(e.value) == "AccessDenied"

        # Multipart: the key answered as the client wrote it.
        up = app.create_multipart_upload(Bucket="attachments", Key=f"acme/{uid}/big.bin")
        assert up["Key"] == f"acme/{uid}/big.bin"
        ups = app.list_multipart_uploads(Bucket="attachments", Prefix=f"acme/{uid}/")
        assert [u["Key"] for u in ups["Uploads"]] == [f"acme/{uid}/big.bin"]
        parts = app.list_parts(Bucket="attachments", Key=f"acme/{uid}/big.bin", UploadId=up["UploadId"])
        assert parts["Key"] == f"acme/{uid}/big.bin"
        app.abort_multipart_upload(Bucket="attachments", Key=f"acme/{uid}/big.bin", UploadId=up["UploadId"])
    finally:
        for k in (a_key, f"acme/{uid}/inbox/2.png", g_key):
            app.delete_object(Bucket="attachments", Key=k)
    assert stored(backends, "eu", f"acme/~bucket/attachments/{uid}/inbox/1.png") is None


def test_tenant_from_a_signed_header(s3, backends, uid):
    app = s3("appserver")
    key = f"{uid}/form.pdf"
    with pytest.raises(ClientError) as e:
        app.put_object(Bucket="uploads", Key=key, Body=b"x", ContentType="application/pdf",
                       Metadata={"residency-category": "attachments"})
    assert error_code(e.value) == "InvalidArgument" and "x-residency-tenant" in str(e.value)
    undo = with_tenant(app, "globex")
    try:
        app.put_object(Bucket="uploads", Key=key, Body=b"globex-pdf",
                       Metadata={"residency-category": "attachments"})
        assert stored(backends, "us", f"globex/~bucket/uploads/{key}") is not None
        assert app.get_object(Bucket="uploads", Key=key)["Body"].read() == b"globex-pdf"
        assert [o["Key"] for o in app.list_objects_v2(Bucket="uploads", Prefix=f"{uid}/")["Contents"]] == [key]
    finally:
        undo()
    # Another tenant's namespace is another object: acme has none there.
    undo = with_tenant(app, "acme")
    try:
        with pytest.raises(ClientError) as e:
            app.get_object(Bucket="uploads", Key=key)
        assert error_code(e.value) == "NoSuchKey"
    finally:
        undo()
    # A tenant key cannot name another tenant.
    acme = s3("acme")
    undo = with_tenant(acme, "globex")
    try:
        with pytest.raises(ClientError) as e:
            acme.get_object(Bucket="uploads", Key=key)
        assert error_code(e.value) == "AccessDenied"
    finally:
        undo()
    undo = with_tenant(app, "globex")
    try:
        app.delete_object(Bucket="uploads", Key=key)
    finally:
        undo()


def test_a_shared_buckets_name_is_taken_and_it_is_not_deleted(s3):
    acme = s3("acme")
    with pytest.raises(ClientError) as e:
        acme.create_bucket(Bucket="attachments")
    assert error_code(e.value) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as e:
        acme.delete_bucket(Bucket="attachments")
    assert error_code(e.value) == "MethodNotAllowed"
    acme.head_bucket(Bucket="attachments")
    assert "attachments" in [b["Name"] for b in acme.list_buckets()["Buckets"]]


def test_a_tenants_segment_lists_as_garage_lists_the_same_keys(s3, backends, uid):
    """Differential: the same keys under `acme/<uid>/` written to a Garage
    bucket and to the shared bucket; paged v2 listings and a v1 listing with
    a delimiter answer the same keys, prefixes and truncation."""
    app = s3("appserver")
    garage, gbucket = backends["us"]
    base = f"acme/{uid}/"
    keys = [f"{base}{p}" for p in ("a.png", "b/1.png", "b/2.png", "c.png", "d/x/1.png", "e.png")]
    for k in keys:
        garage.put_object(Bucket=gbucket, Key=k, Body=b"k")
        app.put_object(Bucket="attachments", Key=k, Body=b"k")
    try:
        def pages(client, bucket, **kw):
            out, token = [], None
            while True:
                args = dict(Bucket=bucket, Prefix=base, MaxKeys=2, **kw)
                if token:
                    args["ContinuationToken"] = token
                r = client.list_objects_v2(**args)
                out.append(([o["Key"] for o in r.get("Contents", [])],
                            [p["Prefix"] for p in r.get("CommonPrefixes", [])], r["IsTruncated"]))
                token = r.get("NextContinuationToken")
                if not token:
                    return out

        assert pages(garage, gbucket) == pages(app, "attachments")
        assert pages(garage, gbucket, Delimiter="/") == pages(app, "attachments", Delimiter="/")
        assert pages(garage, gbucket, StartAfter=f"{base}b/1.png") == pages(app, "attachments", StartAfter=f"{base}b/1.png")
        v1 = [
            (lambda r: ([o["Key"] for o in r.get("Contents", [])], [p["Prefix"] for p in r.get("CommonPrefixes", [])]))(
                c.list_objects(Bucket=b, Prefix=base, Delimiter="/"))
            for c, b in ((garage, gbucket), (app, "attachments"))
        ]
        assert v1[0] == v1[1]
    finally:
        for k in keys:
            garage.delete_object(Bucket=gbucket, Key=k)
            app.delete_object(Bucket="attachments", Key=k)
