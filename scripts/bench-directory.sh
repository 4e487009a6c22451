# Sourced by scripts/bench.sh --directory (not run on its own): the sidecar
# on a PostgreSQL tenant directory of $TENANTS generated tenants.
#
#   1. residency-bench seed-directory: $TENANTS tenants, one key each, the
#      secrets sealed under a fresh RESIDENCY_DIRECTORY_KEY (bulk COPY);
#   2. one sidecar (`tenants = "postgresql://..."`, [directory] defaults:
#      cache of 10,000 entries, 60 s max_staleness; durable audit on, as in
#      production), regions = the Garage pair;
#   3. its RSS at rest (started, nothing asked yet);
#   4. 4 KiB PUTs at 64 clients: target `zipf` (each request to a tenant
#      drawn from Zipf($TENANTS, 1.1), in its bucket, signed with its key)
#      and target `one-tenant` (the same on tenant z0000000 only),
#      alternating, $REPS repetitions; peak RSS sampled during each cell;
#   5. RSS after the load, and the report (baseline: one-tenant).
[[ -n "${RESIDENCY_TEST_PG_URL:-}" ]] || { echo "the testkit did not start PostgreSQL" >&2; exit 1; }
RESIDENCY_DIRECTORY_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
export RESIDENCY_DIRECTORY_KEY

log "seeding the directory: $TENANTS tenants"
"$BENCH" seed-directory --url "$RESIDENCY_TEST_PG_URL" --tenants "$TENANTS"

log "starting the sidecar on the directory"
SIDECAR_TENANTS="$RESIDENCY_TEST_PG_URL" start_sidecar sidecar-directory 19180 s3
DIR_PID=$SIDECAR_PID
sleep 3
rss_mib() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
REST_RSS="$(rss_mib "$DIR_PID" VmRSS)"
echo "    sidecar pid $DIR_PID: VmRSS at rest $REST_RSS MiB ($TENANTS tenants in PostgreSQL)"
curl -s "http://127.0.0.1:19181/readyz" | sed 's/^/    readyz: /'

log "measuring: 4 KiB PUT c64, zipf over $TENANTS tenants vs one tenant, ${DURATION}s per cell, $REPS rep(s)"
for ((rep = 0; rep < REPS; rep++)); do
    order=(one-tenant zipf)
    ((rep % 2 == 1)) && order=(zipf one-tenant)
    for t in "${order[@]}"; do
        n=1
        [[ $t == zipf ]] && n=$TENANTS
        "$BENCH" run --endpoint http://127.0.0.1:19180 --bucket unused --prefix tickets/bench/ \
            --tenants "$n" --zipf 1.1 --pid "$DIR_PID" --target "$t" --workload "4KiB PUT c64" \
            --op put --size 4KiB --clients 64 --duration "$DURATION" --warmup "$WARMUP" \
            --json "$CELLS" || echo "    cell $t failed" >&2
    done
done
AFTER_RSS="$(rss_mib "$DIR_PID" VmRSS)"
HWM="$(rss_mib "$DIR_PID" VmHWM)"
echo "    sidecar VmRSS after the load: $AFTER_RSS MiB, VmHWM (peak over the run): $HWM MiB"
curl -s "http://127.0.0.1:19181/metrics" | grep -E '^residency_directory_(cache|errors|staleness)' | sed 's/^/    /' || true

log "report ($OUT)"
"$BENCH" report "$CELLS" --out "$OUT" --baseline one-tenant --sidecar zipf
{
    echo
    echo "### Sidecar memory, $TENANTS tenants in PostgreSQL"
    echo "| at rest (VmRSS) | after the load (VmRSS) | peak (VmHWM) |"
    echo "|---|---|---|"
    echo "| $REST_RSS MiB | $AFTER_RSS MiB | $HWM MiB |"
} | tee -a "$OUT/report.md"

# ------------------------------------------------------------------ the file
# The tenants file after the same change, for comparison ($FILE_TENANTS
# tenants in today's format, one key each): `residency check` (time, peak
# RSS), a sidecar on it (null backends) at rest and after one reload
# (SIGHUP: the whole file is parsed again), and `residency tenants import`
# of the same file into an empty database (time).
FILE_TENANTS="${BENCH_FILE_TENANTS:-100000}"
log "the tenants file: $FILE_TENANTS tenants"
python3 - "$FILE_TENANTS" >"$TMP/tenants-$FILE_TENANTS.toml" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    loc = "eu" if i % 2 == 0 else "us"
    out.write(f'[[tenants]]\nid = "f{i:07}"\nlocality = "{loc}"\n[[tenants.keys]]\n'
              f'access_key = "FAK{i:07}"\nsecret_key = "file-bench-secret-{i:07}"\n')
PY
FILE_SIZE_MIB="$(du -m "$TMP/tenants-$FILE_TENANTS.toml" | cut -f1)"
cat >"$TMP/file-source.toml" <<EOC
listen = "127.0.0.1:19190"
admin = "127.0.0.1:19191"
policy = "$ROOT/config/hosting-policy.toml"
tenants = "$TMP/tenants-$FILE_TENANTS.toml"
upload_id_secret = "bench-upload-id-secret"
[regions.eu]
kind = "null"
[regions.us]
kind = "null"
EOC
read -r CHECK_S CHECK_KIB < <(/usr/bin/time -f "%e %M" "$BIN/residency" check --policy "$ROOT/config/hosting-policy.toml" --tenants "$TMP/tenants-$FILE_TENANTS.toml" 2>&1 >/dev/null | tail -n1)
echo "    residency check: ${CHECK_S} s, peak RSS $((CHECK_KIB / 1024)) MiB"
(cd "$TMP" && exec env RESIDENCY_LOG=info "$BIN/residency" serve --config "$TMP/file-source.toml") >"$TMP/file-source.log" 2>&1 &
FILE_PID=$!
PIDS+=("$FILE_PID")
wait_http "http://127.0.0.1:19191/healthz" 1200
sleep 2
FILE_REST="$(rss_mib "$FILE_PID" VmRSS)"
t0=$(date +%s.%N)
kill -HUP "$FILE_PID"
for ((i = 0; i < 1200; i++)); do
    grep -q "configuration reloaded" "$TMP/file-source.log" && break
    sleep 0.05
done
RELOAD_S="$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")"
sleep 2
FILE_AFTER="$(rss_mib "$FILE_PID" VmRSS)"
FILE_HWM="$(rss_mib "$FILE_PID" VmHWM)"
kill "$FILE_PID"; wait "$FILE_PID" 2>/dev/null || true
t0=$(date +%s.%N)
"$BIN/residency" tenants import "$TMP/tenants-$FILE_TENANTS.toml" --directory "${RESIDENCY_TEST_PG_URL}" | tail -n1 | sed 's/^/    import: /'
IMPORT_S="$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")"
{
    echo
    echo "### The tenants file, $FILE_TENANTS tenants ($FILE_SIZE_MIB MiB, one key each)"
    echo "| residency check | serve RSS at rest | after one reload (VmRSS / VmHWM) | any single change (SIGHUP → reloaded) | tenants import into PostgreSQL |"
    echo "|---|---|---|---|---|"
    echo "| ${CHECK_S} s, $((CHECK_KIB / 1024)) MiB peak | $FILE_REST MiB | $FILE_AFTER / $FILE_HWM MiB | whole file re-parsed, ${RELOAD_S} s | ${IMPORT_S} s |"
} | tee -a "$OUT/report.md"
echo
echo "results: $OUT (cells.jsonl, report.md)"
