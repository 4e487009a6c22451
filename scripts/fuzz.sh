#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for FUZZ_SECS seconds (default 60).
#
#   scripts/fuzz.sh                  # every target
#   FUZZ_SECS=600 scripts/fuzz.sh decide
#
# Needs a nightly toolchain (libFuzzer + AddressSanitizer); installs cargo-fuzz
# from crates.io when it is missing. Without nightly it says so and stops
# (exit 3): rustup cannot fetch toolchains on machines that reach only the
# package registries. Crashes land in fuzz/artifacts/<target>/; fix them, then
# copy the input to fuzz/regressions/<target>/ (replayed by every run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZ_SECS="${FUZZ_SECS:-60}"
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then TARGETS=(config decide request_parsing); fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); cargo fuzz needs one" >&2
    exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# A target dir of its own: sanitizer builds share nothing with the workspace's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
    echo "==> $t: replaying fuzz/regressions/$t"
    if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
        cargo +nightly fuzz run "$t" "fuzz/regressions/$t"/* -- -runs=1 || status=1
    fi
    echo "==> $t: fuzzing for ${FUZZ_SECS}s"
    # Seeds: the shipped configs for the config target.
    if [[ "$t" == config ]]; then cp config/*.toml "fuzz/corpus/$t/" 2>/dev/null || true; fi
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$FUZZ_SECS" -rss_limit_mb=4096 || status=1
done
exit "$status"
