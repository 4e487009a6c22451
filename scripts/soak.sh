#!/usr/bin/env bash
# Soak: SOAK_SECS (default 300) of mixed S3 load through the sidecar
# (`residency serve`) in front of a real Garage pair, sampling the sidecar's
# RSS, open file descriptors and the load's error count every SOAK_EVERY (5) s
# into a CSV, then saying whether they stayed flat.
#
#   scripts/soak.sh                 # 5 minutes; CSV in .tmp/soak/soak.csv
#   SOAK_SECS=60 scripts/soak.sh    # a quick one
#
# Load (boto3 from .venv, SOAK_THREADS threads, default 8): puts of small
# objects for EU and US tenants/categories, gets, heads, lists, deletes, a
# multipart upload now and then, writes the policy denies (403 expected),
# requests with a wrong secret (403 expected). "errors" counts only answers
# that were not the expected ones.
#
# Needs: target/debug/{residency,residency-testkit} (built here), garage (see
# scripts/install-tools.sh), .venv with boto3 (scripts/test.sh makes it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
SOAK_SECS="${SOAK_SECS:-300}"
SOAK_EVERY="${SOAK_EVERY:-5}"
SOAK_THREADS="${SOAK_THREADS:-8}"
OUT="${SOAK_DIR:-$ROOT/.tmp/soak}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/*.log "$OUT"/load.json

cargo build -q -p residency -p residency-testkit

TESTKIT_PID="" SIDECAR_PID="" LOAD_PID=""
cleanup() {
    for p in "$LOAD_PID" "$SIDECAR_PID" "$TESTKIT_PID"; do
        if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

"$TARGET_DIR/debug/residency-testkit" up --env-file "$OUT/garage.env" >"$OUT/testkit.out" 2>"$OUT/testkit.err" &
TESTKIT_PID=$!
for _ in $(seq 1 600); do
    grep -q ready "$OUT/testkit.out" 2>/dev/null && break
    kill -0 "$TESTKIT_PID" 2>/dev/null || { cat "$OUT/testkit.err" >&2; exit 1; }
    sleep 0.2
done
# shellcheck disable=SC1091
source "$OUT/garage.env"

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(port); ADMIN_PORT=$(port)
cat >"$OUT/residency.toml" <<TOML
listen = "127.0.0.1:$S3_PORT"
admin = "127.0.0.1:$ADMIN_PORT"
policy = "$ROOT/config/hosting-policy.toml"
tenants = "$ROOT/config/tenants.example.toml"
upload_id_secret = "soak-upload-id-secret"
[regions.eu]
kind = "s3"
endpoint = "$RESIDENCY_TEST_EU_ENDPOINT"
bucket = "$RESIDENCY_TEST_EU_BUCKET"
region = "$RESIDENCY_TEST_EU_REGION"
access_key_env = "RESIDENCY_TEST_EU_ACCESS_KEY"
secret_key_env = "RESIDENCY_TEST_EU_SECRET_KEY"
[regions.us]
kind = "s3"
endpoint = "$RESIDENCY_TEST_US_ENDPOINT"
bucket = "$RESIDENCY_TEST_US_BUCKET"
region = "$RESIDENCY_TEST_US_REGION"
access_key_env = "RESIDENCY_TEST_US_ACCESS_KEY"
secret_key_env = "RESIDENCY_TEST_US_SECRET_KEY"
[audit]
enabled = true
flush_secs = 2
TOML
export RESIDENCY_TEST_EU_ACCESS_KEY RESIDENCY_TEST_EU_SECRET_KEY RESIDENCY_TEST_US_ACCESS_KEY RESIDENCY_TEST_US_SECRET_KEY
"$TARGET_DIR/debug/residency" serve --config "$OUT/residency.toml" >"$OUT/sidecar.out" 2>"$OUT/sidecar.log" &
SIDECAR_PID=$!
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$SIDECAR_PID" 2>/dev/null || { tail -20 "$OUT/sidecar.log" >&2; exit 1; }
    sleep 0.2
done

"$PY" - "$S3_PORT" "$SOAK_SECS" "$SOAK_THREADS" "$OUT/load.json" >"$OUT/load.log" 2>&1 <<'PYEOF' &
import json, os, random, sys, threading, time
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

port, secs, threads, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
KEYS = {
    "acme": ("ACMEEXAMPLEKEY", "acme-example-secret-key-change-me"),
    "globex": ("GLOBEXEXAMPLEKEY", "globex-example-secret-key-change-me"),
    "initech": ("INITECHEXAMPLEKEY", "initech-example-secret-key-change-me"),
    "eurobank": ("EUROBANKEXAMPLEKEY", "eurobank-example-secret-key-change-me"),
}
# (tenant, key prefix): all allowed writes, EU and US bound.
WRITES = [("acme", "tickets"), ("globex", "chat"), ("eurobank", "tickets"),
          ("acme", "insights"), ("globex", "tickets"), ("initech", "tickets")]
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
             connect_timeout=5, read_timeout=60, retries={"max_attempts": 1},
             max_pool_connections=4)
def client(tenant, secret=None, session=None):
    ak, sk = KEYS[tenant]
    # One session per thread: boto3's default session is not thread-safe.
    return session.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=secret or sk, config=cfg)
stats = {"ops": 0, "errors": 0, "expected_refusals": 0}
lock = threading.Lock()
last_error = [""]
def count(k, msg=""):
    with lock:
        stats[k] += 1
        if msg: last_error[0] = msg
deadline = time.time() + secs
def worker(n):
    rnd = random.Random(n)
    session = boto3.session.Session()
    clients = {t: client(t, session=session) for t in KEYS}
    bad = client("acme", secret="wrong", session=session)
    mine = []
    i = 0
    while time.time() < deadline:
        i += 1
        tenant, prefix = rnd.choice(WRITES)
        c = clients[tenant]
        key = f"{prefix}/soak/{n}/{i % 200}"
        try:
            r = rnd.random()
            if r < 0.40:
                c.put_object(Bucket=tenant, Key=key, Body=os.urandom(rnd.randint(10, 4096)))
                mine.append((tenant, key))
            elif r < 0.60 and mine:
                t, k = rnd.choice(mine); clients[t].get_object(Bucket=t, Key=k)["Body"].read()
            elif r < 0.70 and mine:
                t, k = rnd.choice(mine); clients[t].head_object(Bucket=t, Key=k)
            elif r < 0.78:
                c.list_objects_v2(Bucket=tenant, Prefix=f"{prefix}/soak/{n}/", MaxKeys=50)
            elif r < 0.85 and mine:
                t, k = mine[rnd.randrange(len(mine))]
                mine = [x for x in mine if x != (t, k)]
                clients[t].delete_object(Bucket=t, Key=k)
            elif r < 0.88:
                up = c.create_multipart_upload(Bucket=tenant, Key=key + ".mp")
                p = c.upload_part(Bucket=tenant, Key=key + ".mp", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * 1024)
                c.complete_multipart_upload(Bucket=tenant, Key=key + ".mp", UploadId=up["UploadId"],
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
            elif r < 0.94:
                # eurobank (strict EU, no insights feature): denied.
                try:
                    clients["eurobank"].put_object(Bucket="eurobank", Key=f"insights/soak/{n}/{i}", Body=b"x")
                    count("errors", "a denied write was accepted")
                except ClientError as e:
                    if e.response["Error"]["Code"] == "AccessDenied": count("expected_refusals")
                    else:
                        count("errors", repr(e))
                        print("unexpected (denied write):", repr(e)[:300], flush=True)
            else:
                try:
                    bad.list_objects_v2(Bucket="acme")
                    count("errors", "a wrong secret was accepted")
                except ClientError as e:
                    if e.response["Error"]["Code"] == "SignatureDoesNotMatch": count("expected_refusals")
                    else: count("errors", repr(e))
            count("ops")
        except Exception as e:  # anything else is an error
            count("errors", repr(e)[:300])
            print("unexpected:", tenant, key, repr(e)[:300], flush=True)
def report():
    while time.time() < deadline + 2:
        with lock:
            snap = dict(stats, last_error=last_error[0])
        with open(out + ".tmp", "w") as f: json.dump(snap, f)
        os.replace(out + ".tmp", out)
        time.sleep(1)
ts = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
r = threading.Thread(target=report, daemon=True); r.start()
for t in ts: t.start()
for t in ts: t.join()
time.sleep(1.5)
print(json.dumps(stats))
PYEOF
LOAD_PID=$!

CSV="$OUT/soak.csv"
echo "elapsed_s,rss_kib,fds,threads,ops,errors,expected_refusals" >"$CSV"
START=$(date +%s)
while kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep "$SOAK_EVERY"
    [[ -d /proc/$SIDECAR_PID ]] || { echo "the sidecar died" >&2; tail -20 "$OUT/sidecar.log" >&2; exit 1; }
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SIDECAR_PID/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$SIDECAR_PID/status")
    fds=$(find "/proc/$SIDECAR_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    read -r ops errs refused < <("$PY" -c 'import json,sys
try: d=json.load(open(sys.argv[1]))
except Exception: d={}
print(d.get("ops",0), d.get("errors",0), d.get("expected_refusals",0))' "$OUT/load.json")
    echo "$(( $(date +%s) - START )),$rss,$fds,$thr,$ops,$errs,$refused" >>"$CSV"
done
wait "$LOAD_PID" || true
LOAD_PID=""
cat "$OUT/load.log"

# Flat: after the first minute's warm-up (or the first quarter of a shorter
# run), RSS grows by at most 20 % or 16 MiB (the larger), open fds by at most 32; no
# unexpected errors.
"$PY" - "$CSV" <<'PYEOF'
import csv, sys
rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
if len(rows) < 4:
    sys.exit("too few samples")
warm = [r for r in rows if r["elapsed_s"] >= min(60, rows[-1]["elapsed_s"] // 4)]
base, last = warm[0], rows[-1]
rss_max = max(r["rss_kib"] for r in warm); fd_max = max(r["fds"] for r in warm)
fd_min = min(r["fds"] for r in warm)
print(f"samples: {len(rows)} over {last['elapsed_s']} s; ops {last['ops']} ({last['ops'] / max(last['elapsed_s'], 1):.0f}/s), "
      f"unexpected errors {last['errors']}, expected refusals {last['expected_refusals']}")
print(f"RSS KiB: first {rows[0]['rss_kib']}, after warm-up {base['rss_kib']}, max {rss_max}, last {last['rss_kib']}")
print(f"open fds: first {rows[0]['fds']}, after warm-up {base['fds']}, min {fd_min}, max {fd_max}, last {last['fds']}")
print(f"threads: first {rows[0]['threads']}, last {last['threads']}")
grow = last["rss_kib"] - base["rss_kib"]
flat_rss = grow <= max(base["rss_kib"] * 0.2, 0) or grow <= 16 * 1024
flat_fds = fd_max - base["fds"] <= 32
ok = flat_rss and flat_fds and last["errors"] == 0
print("RSS flat" if flat_rss else "RSS GREW", "/", "fds flat" if flat_fds else "fds GREW", "/",
      "no unexpected errors" if last["errors"] == 0 else f"{last['errors']} UNEXPECTED ERRORS")
sys.exit(0 if ok else 1)
PYEOF
