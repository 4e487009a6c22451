#!/usr/bin/env bash
# `residency scan` against the bare LIST rate of the same buckets, and its
# peak memory (docs/performance.md, "The compliance scan").
#
#   scripts/bench-scan.sh [--objects N] [--reps R] [--config FILE]
#
# Without --config: N objects (default 1,000,000) are written directly into
# two local directory regions under a temporary folder (a directory backend
# filled directly: a million PUTs through Garage take too long here), then
# `list` (every key, paged as the scan pages) and `scan` (Scanner::run) run
# alternately R times (default 3), each in its own process under
# /usr/bin/time for its peak RSS; then the same from each region's S3
# Inventory report (`scan --inventory`, written from a LIST first). With --config FILE (a sidecar
# configuration, e.g. over the Garage pair of `residency-testkit up`) the
# regions are its backends and N objects are PUT first (default 100,000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OBJECTS=""
REPS=3
CONFIG=""
while (($#)); do
    case "$1" in
        --objects) OBJECTS="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --config) CONFIG="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v /usr/bin/time >/dev/null 2>&1 || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

BIN="$(cargo bench -p residency-scan --bench scan --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="scan" and m.get("executable"): print(m["executable"])' | tail -n1)"
[[ -x "$BIN" ]] || { echo "could not build the scan bench" >&2; exit 1; }

if [[ -n "$CONFIG" ]]; then
    TARGET="$CONFIG"
    "$BIN" fill "$CONFIG" "${OBJECTS:-100000}"
else
    DATA="$(mktemp -d "${TMPDIR:-/tmp}/residency-bench-scan.XXXXXX")"
    trap 'rm -rf "$DATA"' EXIT
    TARGET="$DATA"
    "$BIN" fill "$DATA" "${OBJECTS:-1000000}"
fi

MODES="list scan"
if [[ -z "$CONFIG" ]]; then
    # Each region's S3 Inventory (gzipped CSV), read by `scan --inventory`.
    "$BIN" inventory "$DATA"
    MODES="list scan scan-inventory"
fi
OUT="$(mktemp)"
for ((i = 1; i <= REPS; i++)); do
    for mode in $MODES; do
        /usr/bin/time -f "rss_kib %M" "$BIN" "$mode" "$TARGET" >>"$OUT" 2>&1
    done
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
rates = {"list": [], "scan": [], "scan-inventory": []}
rss = {"list": [], "scan": [], "scan-inventory": []}; last = None
for line in open(sys.argv[1]):
    m = re.match(r"(list|scan|scan-inventory): (\d+) keys in [\d.]+ s: (\d+) keys/s", line)
    if m:
        last = m.group(1); rates[last].append(int(m.group(3)))
    m = re.match(r"rss_kib (\d+)", line)
    if m and last:
        rss[last].append(int(m.group(1)) / 1024)
ratios = [s / l for s, l in zip(rates["scan"], rates["list"])]
print(f"{'rep':>4} {'LIST keys/s':>12} {'scan keys/s':>12} {'ratio':>6} {'scan RSS MiB':>13}")
for i, (l, s, r, m) in enumerate(zip(rates["list"], rates["scan"], ratios, rss["scan"]), 1):
    print(f"{i:>4} {l:>12} {s:>12} {r:>6.2f} {m:>13.1f}")
print(f"median ratio {statistics.median(ratios):.2f}; scan peak RSS max {max(rss['scan']):.1f} MiB "
      f"(bare LIST {max(rss['list']):.1f} MiB)")
if rates["scan-inventory"]:
    inv = [s / l for s, l in zip(rates["scan-inventory"], rates["list"])]
    print(f"scan --inventory (gzipped CSV, no LIST but a LIST per finding): keys/s "
          f"{', '.join(str(r) for r in rates['scan-inventory'])}; median ratio to the bare LIST "
          f"{statistics.median(inv):.2f}; peak RSS max {max(rss['scan-inventory']):.1f} MiB")
PY
rm -f "$OUT"
