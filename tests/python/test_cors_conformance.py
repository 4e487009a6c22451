"""Per-bucket CORS, differentially, and a real browser upload.

PutBucketCors / GetBucketCors / DeleteBucketCors and the preflight (`OPTIONS`)
answers are compared between a Garage bucket and a bucket created through the
sidecar with the same rules: status, and the Access-Control-* headers a browser
reads. Then headless Chromium loads a page from another origin that uploads a
file through a presigned POST (a signed policy with `content-length-range`)
and reads it back with fetch: the sidecar answers the preflight and the CORS
headers, the file lands in the region the policy places it in, and a file
over the policy's size range is refused and stored nowhere.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, remove_bucket

RULES = {
    "CORSRules": [
        {
            "AllowedOrigins": ["http://app.example.test", "http://*.example.org"],
            "AllowedMethods": ["GET", "POST"],
            "AllowedHeaders": ["x-amz-*", "content-type"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        }
    ]
}

READ = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
        "access-control-expose-headers", "access-control-max-age")


def options(endpoint, bucket, origin, method, headers=None):
    req = urllib.request.Request(f"{endpoint}/{bucket}/obj.txt", method="OPTIONS")
    req.add_header("Origin", origin)
    req.add_header("Access-Control-Request-Method", method)
    if headers:
        req.add_header("Access-Control-Request-Headers", headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, h = r.status, r.headers
    except urllib.error.HTTPError as e:
        status, h = e.code, e.headers
    return status, {k: (h.get(k) or "").replace(" ", "").lower() for k in READ}


@pytest.fixture
def cors_buckets(s3, backends, garage, sidecar, uid):
    garage_client, _ = backends["us"]
    acme = s3("acme")
    g, s = f"cors-g-{uid[:12]}", f"cors-s-{uid[:12]}"
    garage_client.create_bucket(Bucket=g)
    acme.create_bucket(Bucket=s)
    yield [(garage_client, g, garage["us"]["endpoint"]), (acme, s, sidecar.endpoint)]
    remove_bucket(garage_client, g)
    remove_bucket(acme, s)


PREFLIGHTS = [
    ("http://app.example.test", "POST", None),
    ("http://app.example.test", "GET", "x-amz-date,content-type"),
    ("http://sub.example.org", "GET", None),
    ("http://evil.example.test", "POST", None),
    ("http://app.example.test", "DELETE", None),
    ("http://app.example.test", "POST", "authorization"),
]


def test_cors_configuration_and_preflights_answer_as_garage_does(cors_buckets):
    # Before any rule: both refuse a preflight; GetBucketCors is NoSuchCORSConfiguration.
    # S3 documents 403 ("CORS is not enabled for this bucket") for a bucket
    # without rules; Garage allows every origin then (its departure, asserted
    # so that a change is noticed). The sidecar answers S3's 403.
    before = [options(ep, b, "http://app.example.test", "POST") for _, b, ep in cors_buckets]
    assert before[0][0] == 200 and before[0][1]["access-control-allow-origin"] == "*", before
    assert before[1][0] == 403, before
    for c, b, ep in cors_buckets:
        with pytest.raises(ClientError) as e:
            c.get_bucket_cors(Bucket=b)
        assert error_code(e.value) == "NoSuchCORSConfiguration"
    for c, b, _ in cors_buckets:
        c.put_bucket_cors(Bucket=b, CORSConfiguration=RULES)
    got = [c.get_bucket_cors(Bucket=b)["CORSRules"] for c, b, _ in cors_buckets]
    for rules in got:
        assert rules[0]["AllowedOrigins"] == RULES["CORSRules"][0]["AllowedOrigins"]
        assert sorted(rules[0]["AllowedMethods"]) == ["GET", "POST"]
        assert rules[0]["MaxAgeSeconds"] == 600
    # The preflights: S3's documented answer through the sidecar (200 with
    # the rule's headers when a rule allows origin, method and headers, else
    # 403). Garage answers every preflight 200 with "*" for origin, methods
    # and headers whatever the rules (its departure; asserted so that a
    # change is noticed): the differential part is the configuration
    # itself (above and below) and the request's own CORS headers.
    for case, want in zip(PREFLIGHTS, (200, 200, 200, 403, 403, 403)):
        g, s = (options(ep, b, *case) for _, b, ep in cors_buckets)
        assert g[0] == 200 and g[1]["access-control-allow-origin"] == "*", (case, g)
        assert s[0] == want, (case, s)
        if want == 200:
            assert s[1]["access-control-allow-origin"] == case[0], (case, s)
            assert set(s[1]["access-control-allow-methods"].split(",")) == {"get", "post"}, (case, s)
            assert s[1]["access-control-max-age"] == "600", (case, s)
            assert s[1]["access-control-expose-headers"] == "etag", (case, s)
            if case[2]:
                assert s[1]["access-control-allow-headers"] == case[2], (case, s)
    # A GET with Origin gets the allow-origin header on both.
    for c, b, ep in cors_buckets:
        c.put_object(Bucket=b, Key="tickets/1.json", Body=b"{}")
        url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "tickets/1.json"}, ExpiresIn=300)
        req = urllib.request.Request(url, headers={"Origin": "http://app.example.test"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == "http://app.example.test", (ep, dict(r.headers))
    for c, b, _ in cors_buckets:
        c.delete_bucket_cors(Bucket=b)
        with pytest.raises(ClientError) as e:
            c.get_bucket_cors(Bucket=b)
        assert error_code(e.value) == "NoSuchCORSConfiguration"


def test_cors_is_refused_on_a_configured_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3("acme").put_bucket_cors(Bucket="acme", CORSConfiguration=RULES)
    assert error_code(e.value) == "NotImplemented" and "CreateBucket" in str(e.value)


PAGE = """<!doctype html><html><body><script>
const cfg = %s;
async function run() {
  const out = {};
  for (const [name, size] of [["ok", 12], ["big", 5000]]) {
    const fd = new FormData();
    for (const [k, v] of Object.entries(cfg.post.fields)) fd.append(k, v);
    fd.append("file", new Blob(["x".repeat(size)], {type: "application/json"}), "f.json");
    try {
      const r = await fetch(cfg.post.url, {method: "POST", body: fd});
      out[name] = r.status;
    } catch (e) { out[name] = "error: " + e; }
  }
  try {
    const g = await fetch(cfg.get);
    out.get = g.status;
    out.body = await g.text();
    out.etag = g.headers.get("ETag");
  } catch (e) { out.get = "error: " + e; }
  await fetch("/report?" + new URLSearchParams({r: JSON.stringify(out)}));
}
run();
</script></body></html>"""


def chromium_binary():
    b = os.environ.get("RESIDENCY_CHROMIUM") or shutil.which("chromium")
    if not b:
        pytest.fail("Chromium not found: scripts/test.sh installs it (RESIDENCY_CHROMIUM)", pytrace=False)
    return b


def test_a_browser_uploads_through_a_presigned_post_with_cors(s3, backends, uid):
    acme = s3("acme")
    bucket = f"browser-{uid[:12]}"
    acme.create_bucket(Bucket=bucket)
    reports: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        page = b""

        def do_GET(self):
            if self.path.startswith("/report?"):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                reports.append(json.loads(q["r"][0]))
                body = b"ok"
            else:
                body = Handler.page
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = f"tickets/{uid}/browser.json"
    profile = tempfile.mkdtemp(prefix="residency-chromium-")
    proc = None
    try:
        acme.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": [origin], "AllowedMethods": ["GET", "POST"], "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"]}]})
        post = acme.generate_presigned_post(
            bucket, key, Fields={"Content-Type": "application/json"},
            Conditions=[{"Content-Type": "application/json"}, ["content-length-range", 1, 1000]],
            ExpiresIn=300)
        get = acme.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
        Handler.page = (PAGE % json.dumps({"post": post, "get": get})).encode()
        proc = subprocess.Popen(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0", f"{origin}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not reports and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert reports, "the page reported nothing within 60 s"
        r = reports[0]
        # The upload within the policy's range: 204 (no success_action_status);
        # the one over it: 400 EntityTooLarge, stored nowhere.
        assert r["ok"] == 204, r
        assert r["big"] == 400, r
        assert r["get"] == 200 and r["body"] == "x" * 12, r
        assert r["etag"], r  # exposed by the rule
        eu, eu_bucket = backends["eu"]
        us, us_bucket = backends["us"]
        stored = f"acme/~bucket/{bucket}/{key}"
        assert eu.get_object(Bucket=eu_bucket, Key=stored)["Body"].read() == b"x" * 12
        with pytest.raises(ClientError):
            us.head_object(Bucket=us_bucket, Key=stored)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
        try:
            acme.delete_object(Bucket=bucket, Key=key)
        except ClientError:
            pass
        acme.delete_bucket(Bucket=bucket)
