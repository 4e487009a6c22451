#!/usr/bin/env bash
# THE test command of Residency (README and .ci/run call it).
#
# Installs what is missing (rustfmt/clippy, Garage, PostgreSQL, Chromium, a Python venv with boto3,
# awscli, pytest: see scripts/install-tools.sh), then runs, in order:
#   fmt      cargo fmt --all -- --check; scripts/import-circles.py (no import
#            circle between a crate's source files)
#   clippy   cargo clippy --all-targets -- -D warnings   (default members: the
#            cedar bench crate is left out on purpose)
#   test     cargo test --all-targets, then cargo test --doc
#            (Rust integration tests start their own Garage servers and PostgreSQL
#            clusters via residency-testkit)
#   python   if tests/python exists: a Garage pair from `residency-testkit up`, its
#            RESIDENCY_TEST_* variables sourced, then pytest -q tests/python
#   deploy   scripts/validate-deploy.sh: Kustomize overlays render and validate
#            against the Kubernetes schemas, dashboard and alert rules parse,
#            systemd unit verifies, the Dockerfile builds what `release` builds
#   release  (opt-in: RESIDENCY_STEPS=...,release) cargo build --release --locked
#            -p residency, what the container image builds. Not in the default
#            run: CI builds one profile (debug) to stay within its time budget.
# Every step runs even when an earlier one failed (RESIDENCY_FAIL_FAST=1 stops at
# the first failure); the exit status is non-zero if any step failed.
#
# Environment: RESIDENCY_TOOLS, GARAGE_BIN, RESIDENCY_PG_BIN, RESIDENCY_CHROMIUM, PYTHON (see install-tools.sh);
# RESIDENCY_STEPS=fmt,clippy,test,doc,python (default: all) selects steps;
# RESIDENCY_PY_TESTS=DIR (default: tests/python) is the pytest directory;
# RESIDENCY_NEXTEST=1 runs the Rust tests with cargo-nextest when it is installed;
# extra arguments are passed to pytest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
TMP_DIR="$ROOT/.tmp"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
STEPS=",${RESIDENCY_STEPS:-fmt,clippy,test,doc,python,deploy},"
PY_TESTS="${RESIDENCY_PY_TESTS:-tests/python}"
mkdir -p "$TMP_DIR"

PASSED=()
FAILED=()
TESTKIT_PID=""
START_TIME="$(date +%s)"

section() {
    printf '\n==> [%s, +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - START_TIME))" "$*"
}

summary() {
    local rc=$?
    stop_testkit
    printf '\n==> summary (%ss total)\n' "$(($(date +%s) - START_TIME))"
    local s
    for s in "${PASSED[@]+"${PASSED[@]}"}"; do printf '    ok    %s\n' "$s"; done
    for s in "${FAILED[@]+"${FAILED[@]}"}"; do printf '    FAIL  %s\n' "$s"; done
    if ((rc == 0)) && ((${#FAILED[@]} > 0)); then rc=1; fi
    if ((rc == 0)); then echo "==> all passed"; else echo "==> FAILED (exit $rc)"; fi
    exit "$rc"
}
trap summary EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wanted() { [[ "$STEPS" == *",$1,"* ]]; }

# step NAME CMD...: runs CMD under a timed header and records the outcome.
# (CMD runs in an `if`, where `set -e` does not apply: compound steps below
# check their commands explicitly.)
step() {
    local name="$1" t0 rc
    shift
    section "$name"
    t0="$(date +%s)"
    if "$@"; then
        PASSED+=("$name ($(($(date +%s) - t0))s)")
    else
        rc=$?
        FAILED+=("$name (exit $rc, $(($(date +%s) - t0))s)")
        if [[ "${RESIDENCY_FAIL_FAST:-0}" == 1 ]]; then exit 1; fi
    fi
}

stop_testkit() {
    [[ -n "$TESTKIT_PID" ]] || return 0
    if kill -0 "$TESTKIT_PID" 2>/dev/null; then
        kill -TERM "$TESTKIT_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$TESTKIT_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$TESTKIT_PID" 2>/dev/null || true
    fi
    wait "$TESTKIT_PID" 2>/dev/null || true
    TESTKIT_PID=""
}

# ---------------------------------------------------------------- tools
# shellcheck source=scripts/install-tools.sh
source "$ROOT/scripts/install-tools.sh"

install_tools() {
    ensure_rust_components || return 1
    ensure_garage || return 1
    ensure_postgres || return 1
    ensure_chromium || return 1
    if wanted python && [[ -d "$PY_TESTS" ]]; then
        ensure_venv || return 1
    else
        echo "    no $PY_TESTS to run: Python venv not needed"
    fi
}
section "install tools"
install_tools || { FAILED+=("install tools"); exit 1; }
PASSED+=("install tools")

# ---------------------------------------------------------------- checks
if wanted fmt; then step "cargo fmt --check" cargo fmt --all -- --check; fi
if wanted fmt; then step "no import circle between source files" python3 "$ROOT/scripts/import-circles.py"; fi
if wanted clippy; then step "cargo clippy" cargo clippy --all-targets -- -D warnings; fi

rust_tests() {
    if [[ "${RESIDENCY_NEXTEST:-0}" == 1 ]] && cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --all-targets --no-fail-fast || return 1
    else
        cargo test --all-targets --no-fail-fast || return 1
    fi
}
if wanted test; then step "cargo test (unit + integration)" rust_tests; fi
if wanted doc; then step "cargo test --doc" cargo test --doc; fi

# ---------------------------------------------------------------- python / CLI e2e
python_e2e() {
    local env_file="$TMP_DIR/garage.env" out="$TMP_DIR/testkit.out" err="$TMP_DIR/testkit.err"
    cargo build -q --bins || return 1
    rm -f "$env_file"
    "$TARGET_DIR/debug/residency-testkit" up --env-file "$env_file" >"$out" 2>"$err" &
    TESTKIT_PID=$!
    local waited=0
    until grep -qx ready "$out" 2>/dev/null; do
        if ! kill -0 "$TESTKIT_PID" 2>/dev/null; then
            echo "residency-testkit exited before it was ready:" >&2
            cat "$err" >&2
            TESTKIT_PID=""
            return 1
        fi
        if ((waited >= 1200)); then
            echo "residency-testkit not ready after 120s:" >&2
            cat "$err" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    cat "$err"
    (
        # shellcheck disable=SC1090
        source "$env_file"
        export PATH="$RESIDENCY_VENV/bin:$TARGET_DIR/debug:$PATH"
        export RESIDENCY_BIN="$TARGET_DIR/debug/residency"
        export AWS_EC2_METADATA_DISABLED=true
        cd "$ROOT"
        "$RESIDENCY_VENV/bin/python" -m pytest -q "$PY_TESTS" "$@"
    )
    local rc=$?
    stop_testkit
    return "$rc"
}
if ! wanted python; then
    :
elif [[ -d "$PY_TESTS" ]]; then
    step "python/CLI end-to-end (pytest $PY_TESTS)" python_e2e "$@"
else
    section "python/CLI end-to-end: skipped (no $PY_TESTS)"
fi

# ---------------------------------------------------------------- deploy + release build
if wanted deploy; then step "deploy manifests (scripts/validate-deploy.sh)" "$ROOT/scripts/validate-deploy.sh"; fi
if wanted release; then step "release build" cargo build --release --locked -p residency; fi
