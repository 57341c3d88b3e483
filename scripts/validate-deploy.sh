#!/usr/bin/env bash
# Offline validation of every deployment file: no Docker engine, no cluster, no network except
# the npm registry (for the Kubernetes schema package, installed into a git-ignored cache).
#
#   scripts/validate-deploy.sh          # all checks; exit 1 if any fails
#
# Needs what scripts/install-deps.sh installs (docker-compose, prometheus's promtool, python3 with PyYAML)
# plus the machine's node and npm. Uses `kubectl kustomize`, when kubectl is present, as a second
# opinion on the kustomize builds. Cache folder: $MOE_DEPLOY_CACHE (default build-deploy/).
# Last line: `deploy: N checks passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
CACHE=${MOE_DEPLOY_CACHE:-$REPO/build-deploy}
mkdir -p "$CACHE"
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
passed=0
failed=0
failures=()
start=$SECONDS

# check NAME CMD...: one check; on failure its output is printed, indented.
check() {
  local name=$1
  shift
  if "$@" >"$LOG/out" 2>&1; then
    passed=$((passed + 1))
    echo "ok    $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name"
    sed 's/^/        /' "$LOG/out"
  fi
}
# counted NAME CMD...: a command that prints `...: N checks passed, M failed`; its counts are
# added to ours. No such line, or a non-zero exit with M = 0, counts as one failure.
counted() {
  local name=$1
  shift
  "$@" >"$LOG/out" 2>&1
  local rc=$?
  local line p f
  line=$(grep -E '[0-9]+ checks passed, [0-9]+ failed' "$LOG/out" | tail -1)
  if [ -n "$line" ]; then
    p=$(sed -E 's/.* ([0-9]+) checks passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) checks passed, ([0-9]+) failed.*/\2/' <<<"$line")
  else
    p=0
    f=0
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -eq 0 ]; then
    echo "ok    $name ($p checks)"
    grep -E '^  (ok|skip) ' "$LOG/out" | sed 's/^/    /'
  else
    failures+=("$name")
    echo "FAIL  $name ($p passed, $f failed)"
    sed 's/^/        /' "$LOG/out"
  fi
}
have() { command -v "$1" >/dev/null 2>&1; }
need() {
  local missing=()
  for t in "$@"; do have "$t" || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]} (scripts/install-deps.sh installs docker-compose, prometheus (promtool), python3; node and npm come with the machine)"
    return 1
  fi
}

echo "== tools"
check "tools: docker-compose promtool python3 node npm" need docker-compose promtool python3 node npm

echo "== docker"
for f in deploy/docker/Dockerfile deploy/docker/Dockerfile.cuda; do
  check "$f: multi-stage, CI build commands, runtime packages, non-root USER, EXPOSE, HEALTHCHECK" \
    python3 deploy/docker/check_dockerfile.py "$f"
done
if have hadolint; then
  check "hadolint deploy/docker/Dockerfile*" hadolint deploy/docker/Dockerfile deploy/docker/Dockerfile.cuda
else
  echo "skip  hadolint (not packaged for Debian 12; structural checks above instead)"
fi

echo "== compose"
check "docker-compose config -q" docker-compose -f docker-compose.yml config -q
check "docker-compose --profile convert config -q" docker-compose -f docker-compose.yml --profile convert config -q
compose_conventions() {
  docker-compose -f docker-compose.yml --profile convert config >"$LOG/compose.yml" &&
    python3 deploy/docker/check_compose.py <"$LOG/compose.yml"
}
check "docker-compose: services, profile, healthcheck, loopback ports, hardening, mounted files, grafana" compose_conventions

echo "== prometheus"
check "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
check "promtool check config deploy/prometheus/prometheus-k8s.yml" promtool check config deploy/prometheus/prometheus-k8s.yml
check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
# The metric names the server exports (server/metrics.h). The ctest deploy.metrics_names checks the
# same files against a live server's /metrics; this list is the offline stand-in.
KNOWN_METRICS="moe_adapter_requests_total moe_adapter_tensors_total moe_adapter_bytes_total
  moe_adapter_stream_duration_seconds_bucket moe_adapter_stream_duration_seconds_sum moe_adapter_stream_duration_seconds_count
  moe_adapter_conversion_duration_seconds_bucket moe_adapter_conversion_duration_seconds_sum moe_adapter_conversion_duration_seconds_count
  moe_adapter_active_streams moe_adapter_buffered_bytes moe_adapter_memory_budget_bytes moe_adapter_build_info
  moe_adapter_shm_regions moe_adapter_shm_region_bytes moe_adapter_shm_registrations_total"
known_metrics() {
  local bad=0 m
  for m in $(grep -ohE 'moe_adapter_[a-z0-9_]+' deploy/prometheus/*.yml deploy/grafana/dashboards/*.json | sort -u); do
    if ! grep -qw "$m" <<<"$KNOWN_METRICS"; then
      echo "unknown metric $m (not one the server exports)"
      bad=1
    fi
  done
  return $bad
}
check "alert rules and dashboards use only metrics the server exports" known_metrics

echo "== grafana"
check "deploy/grafana: dashboard JSON, panels, queries parse (promtool), known metrics, provisioning" \
  python3 deploy/grafana/check_dashboard.py --known "$KNOWN_METRICS"

echo "== kubernetes"
npm_install() {
  local dir=$CACHE/node want have_sum
  mkdir -p "$dir"
  want=$(cat deploy/k8s/validate/package.json deploy/k8s/validate/package-lock.json | sha256sum | cut -d' ' -f1)
  have_sum=$(cat "$dir/.installed" 2>/dev/null || true)
  if [ "$want" = "$have_sum" ] && [ -d "$dir/node_modules/kubernetes-models" ]; then
    echo "cached in $dir"
    return 0
  fi
  cp deploy/k8s/validate/package.json deploy/k8s/validate/package-lock.json "$dir/" &&
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error &&
    echo "$want" >"$dir/.installed"
}
check "npm ci kubernetes-models, yaml (into ${CACHE#"$REPO"/}/node)" npm_install
export NODE_PATH=$CACHE/node/node_modules
# --kubectl: also compare with `kubectl kustomize` where kubectl exists (skipped, and said so, where not).
counted "kubernetes manifests: kustomize builds, schemas, unknown fields, conventions" \
  node deploy/k8s/validate/validate.cjs --kubectl
counted "kubernetes validator rejects known-bad manifests" node deploy/k8s/validate/selftest.cjs

echo "== docs"
doc_paths() {
  local bad=0 p
  [ -f docs/deploy.md ] || { echo "docs/deploy.md missing"; return 1; }
  for p in $(grep -oE '(^|[^A-Za-z0-9_./-])(deploy|scripts)/[A-Za-z0-9_./-]+[A-Za-z0-9_]' docs/deploy.md |
    sed -E 's#^[^ds]##' | sort -u); do
    [ -e "$p" ] || { echo "docs/deploy.md names $p, which does not exist"; bad=1; }
  done
  return $bad
}
check "docs/deploy.md names only files that exist" doc_paths

echo "took $((SECONDS - start)) s"
echo "deploy: ${passed} checks passed, ${failed} failed"
if [ "$failed" -ne 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
  exit 1
fi
