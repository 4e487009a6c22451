#!/usr/bin/env bash
# Installs what Residency's tests need, each step only when it is missing:
#   - rustfmt and clippy (rustup components)
#   - Garage (S3 server used as the regional backends), into $RESIDENCY_TOOLS
#   - a Python venv (.venv) with boto3, awscli and pytest
#   - PostgreSQL server binaries (Debian's `postgresql` package, apt-get) for the
#     throw-away clusters residency-testkit starts
#   - Chromium (Debian's `chromium` package, apt-get): the browser tests open
#     `residency scan`'s HTML report headless and take a screenshot
#
# Run it directly to install everything, or source it (scripts/test.sh does) to get
# the functions: ensure_rust_components, ensure_garage, ensure_venv, ensure_postgres,
# ensure_chromium.
#
# Environment:
#   RESIDENCY_TOOLS   where tools are installed (default: $HOME/.cache/residency-tools);
#                     $RESIDENCY_TOOLS/bin is put on the PATH
#   GARAGE_BIN        use this garage binary instead of looking one up
#   GARAGE_VERSION    version installed when none is found (default: 2.5.0)
#   RESIDENCY_VENV    the venv directory (default: <repo>/.venv)
#   PYTHON            the interpreter that creates the venv (default: python3)
#   RESIDENCY_PG_BIN  a directory with initdb and postgres to use instead of looking
#                     them up (/usr/lib/postgresql/<newest>/bin, then the PATH)
#   RESIDENCY_CHROMIUM  a Chromium (or Chrome) binary to use instead of looking one
#                     up (chromium, chromium-browser, google-chrome on the PATH)

RESIDENCY_TOOLS="${RESIDENCY_TOOLS:-${HOME:-/root}/.cache/residency-tools}"
GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
RESIDENCY_VENV="${RESIDENCY_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv}"
RESIDENCY_PY_PACKAGES=(boto3 awscli pytest)
export RESIDENCY_TOOLS RESIDENCY_VENV

case ":$PATH:" in
    *":$RESIDENCY_TOOLS/bin:"*) ;;
    *) export PATH="$RESIDENCY_TOOLS/bin:$PATH" ;;
esac

_tools_log() { printf '    %s\n' "$*"; }

ensure_rust_components() {
    if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
        _tools_log "rustfmt, clippy: present"
        return 0
    fi
    command -v rustup >/dev/null 2>&1 || {
        echo "rustfmt/clippy missing and rustup not found: install them with your toolchain" >&2
        return 1
    }
    _tools_log "installing rustfmt, clippy (rustup component add)"
    rustup component add rustfmt clippy || return 1
}

# Sets and exports GARAGE_BIN.
ensure_garage() {
    if [[ -n "${GARAGE_BIN:-}" ]]; then
        [[ -x "$GARAGE_BIN" ]] || { echo "GARAGE_BIN=$GARAGE_BIN is not executable" >&2; return 1; }
    elif command -v garage >/dev/null 2>&1; then
        GARAGE_BIN="$(command -v garage)"
    else
        _tools_log "garage not found: cargo install garage --version $GARAGE_VERSION --locked" \
            "--root $RESIDENCY_TOOLS (one-off, ~10 min on 2 cores)"
        mkdir -p "$RESIDENCY_TOOLS" || return 1
        cargo install garage --version "$GARAGE_VERSION" --locked --root "$RESIDENCY_TOOLS" || return 1
        GARAGE_BIN="$RESIDENCY_TOOLS/bin/garage"
        [[ -x "$GARAGE_BIN" ]] || { echo "cargo install did not produce $GARAGE_BIN" >&2; return 1; }
    fi
    export GARAGE_BIN
    _tools_log "garage: $GARAGE_BIN ($("$GARAGE_BIN" --version 2>/dev/null | head -n1))"
}

# Sets and exports RESIDENCY_PG_BIN (what residency-testkit's PostgresCluster runs).
_pg_bin() {
    local d
    if [[ -n "${RESIDENCY_PG_BIN:-}" ]]; then
        [[ -x "$RESIDENCY_PG_BIN/initdb" && -x "$RESIDENCY_PG_BIN/postgres" ]] && echo "$RESIDENCY_PG_BIN"
        return
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$d/initdb" && -x "$d/postgres" ]] && { echo "$d"; return; }
    done
    if command -v initdb >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v initdb)")")"
        [[ -x "$d/postgres" ]] && echo "$d"
    fi
}

ensure_postgres() {
    local dir
    dir="$(_pg_bin)"
    if [[ -z "$dir" ]]; then
        if [[ -n "${RESIDENCY_PG_BIN:-}" ]]; then
            echo "RESIDENCY_PG_BIN=$RESIDENCY_PG_BIN holds no initdb and postgres" >&2
            return 1
        fi
        command -v apt-get >/dev/null 2>&1 || {
            echo "PostgreSQL missing and apt-get not found: install PostgreSQL's server binaries" \
                "and set RESIDENCY_PG_BIN to their directory" >&2
            return 1
        }
        _tools_log "PostgreSQL not found: apt-get install postgresql (the tests start" \
            "their own clusters from its binaries)"
        local sudo=""
        [[ "$(id -u)" == 0 ]] || sudo="sudo"
        $sudo apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null || return 1
        dir="$(_pg_bin)"
        [[ -n "$dir" ]] || { echo "apt-get installed no initdb/postgres" >&2; return 1; }
    fi
    RESIDENCY_PG_BIN="$dir"
    export RESIDENCY_PG_BIN
    _tools_log "postgresql: $RESIDENCY_PG_BIN ($("$RESIDENCY_PG_BIN/postgres" --version 2>/dev/null))"
}

_chromium_bin() {
    if [[ -n "${RESIDENCY_CHROMIUM:-}" ]]; then
        [[ -x "$RESIDENCY_CHROMIUM" ]] && echo "$RESIDENCY_CHROMIUM"
        return 0
    fi
    local b
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return 0
        fi
    done
}

ensure_chromium() {
    local bin
    bin="$(_chromium_bin)"
    if [[ -z "$bin" ]]; then
        if [[ -n "${RESIDENCY_CHROMIUM:-}" ]]; then
            echo "RESIDENCY_CHROMIUM=$RESIDENCY_CHROMIUM is not an executable" >&2
            return 1
        fi
        command -v apt-get >/dev/null 2>&1 || {
            echo "Chromium missing and apt-get not found: install Chromium and set" \
                "RESIDENCY_CHROMIUM to its binary" >&2
            return 1
        }
        _tools_log "Chromium not found: apt-get install chromium (headless, for the HTML report tests)"
        local sudo=""
        [[ "$(id -u)" == 0 ]] || sudo="sudo"
        $sudo apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            chromium >/dev/null || return 1
        bin="$(_chromium_bin)"
        [[ -n "$bin" ]] || { echo "apt-get installed no chromium binary" >&2; return 1; }
    fi
    RESIDENCY_CHROMIUM="$bin"
    export RESIDENCY_CHROMIUM
    _tools_log "chromium: $RESIDENCY_CHROMIUM ($("$RESIDENCY_CHROMIUM" --version 2>/dev/null | head -n1))"
}

_venv_complete() {
    [[ -x "$RESIDENCY_VENV/bin/python" && -x "$RESIDENCY_VENV/bin/aws" ]] &&
        "$RESIDENCY_VENV/bin/python" -c 'import boto3, pytest' >/dev/null 2>&1
}

ensure_venv() {
    local py="${PYTHON:-python3}"
    if _venv_complete; then
        _tools_log "venv $RESIDENCY_VENV: boto3, awscli, pytest present"
        return 0
    fi
    if [[ ! -x "$RESIDENCY_VENV/bin/python" ]]; then
        _tools_log "creating venv $RESIDENCY_VENV ($py)"
        if ! "$py" -m venv "$RESIDENCY_VENV" >/dev/null 2>&1; then
            # Debian without python3-venv: fall back to virtualenv from PyPI.
            rm -rf "$RESIDENCY_VENV"
            _tools_log "python3 -m venv failed; using virtualenv"
            "$py" -m pip install -q --user --disable-pip-version-check virtualenv || return 1
            "$py" -m virtualenv -q "$RESIDENCY_VENV" || return 1
        fi
    fi
    _tools_log "pip install ${RESIDENCY_PY_PACKAGES[*]}"
    "$RESIDENCY_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "${RESIDENCY_PY_PACKAGES[@]}" || return 1
    _venv_complete || { echo "venv $RESIDENCY_VENV is still incomplete" >&2; return 1; }
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    ensure_rust_components
    ensure_garage
    ensure_postgres
    ensure_chromium
    ensure_venv
fi
