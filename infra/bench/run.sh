#!/usr/bin/env bash
# make bench: builds what is measured, runs every benchmark, writes BENCHMARKS.md.
#
# Results go to $BENCH_OUT (default $CARGO_TARGET_DIR/bench, or target/bench); the report is
# generated from them by infra/bench/report.py. Knobs (environment):
#   BENCH_RUNS=15          cold-start runs per binary and configuration
#   BENCH_WARM=3           warm invocations per cold-start run
#   BENCH_LOAD_SECONDS=10  wrk run per route and backend
#   BENCH_LOAD_ROUTES="worker-credentials verify"
#   BENCH_VARIANT=1        build and measure the other AWS_LC_SYS_NO_JITTER_ENTROPY setting
#   BENCH_ARM64=1          build the arm64 deployment zips (the deployed architecture)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
out=${BENCH_OUT:-$target/bench}
runs=${BENCH_RUNS:-15}
warm=${BENCH_WARM:-3}
load_seconds=${BENCH_LOAD_SECONDS:-10}
load_routes=${BENCH_LOAD_ROUTES:-worker-credentials verify}
variant=${BENCH_VARIANT:-1}
arm64=${BENCH_ARM64:-1}

# Every crate under functions/ is a function (crate = binary = Lambda name).
functions=()
for dir in functions/*/; do
  [ -f "$dir/Cargo.toml" ] && functions+=("$(basename "$dir")")
done
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
echo "bench: functions: ${functions[*]}"

# The release settings (infra/release.env) and, for the comparison, the other jitter-entropy
# setting. Each setting builds into its own target directory; debug builds are left alone.
# shellcheck source=../release.env
source infra/release.env
release_value=${AWS_LC_SYS_NO_JITTER_ENTROPY:-0}
case "$release_value" in
  1|y*|on|t*) release_label="nojitter"; other_label="jitter"; other_value=0 ;;
  *)          release_label="jitter";   other_label="nojitter"; other_value=1 ;;
esac
unset AWS_LC_SYS_NO_JITTER_ENTROPY
release_dir=$target/variant-$release_label
other_dir=$target/variant-$other_label

rm -rf "$out"
mkdir -p "$out"
load_start=$(cut -d' ' -f1 /proc/loadavg)

step() {
  local name=$1
  shift
  echo "== bench: $name"
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf '{"name": "%s", "seconds": %s}\n' "$name" "$(awk "BEGIN { print $t1 - $t0 }")" >> "$out/steps.jsonl"
}

tools() {
  if ! command -v wrk >/dev/null; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq wrk
  fi
  command -v node >/dev/null || { echo "bench: node (and npm) are needed for the peer benchmarks" >&2; exit 1; }
  if [ "$arm64" = 1 ]; then
    rustup target add aarch64-unknown-linux-gnu
  fi
}

build_release() {
  AWS_LC_SYS_NO_JITTER_ENTROPY=$release_value CARGO_TARGET_DIR=$release_dir \
    cargo build --quiet --release "${packages[@]}" -p hello-lambda
}

build_variant() {
  AWS_LC_SYS_NO_JITTER_ENTROPY=$other_value CARGO_TARGET_DIR=$other_dir \
    cargo build --quiet --release "${packages[@]}" -p hello-lambda
}

build_arm64() {
  rm -rf "$target/lambda-arm64"
  AWS_LC_SYS_NO_JITTER_ENTROPY=$release_value \
    cargo lambda build --release --arm64 --output-format zip --lambda-dir "$target/lambda-arm64" "${packages[@]}"
}

build_tools() {
  # The load test's local API and the criterion benchmarks, release settings, in their own
  # invocation (so that their dependencies' features do not leak into the functions' build).
  AWS_LC_SYS_NO_JITTER_ENTROPY=$release_value CARGO_TARGET_DIR=$release_dir \
    cargo build --quiet --release -p local-api -p hot-paths
  # The harness itself is a dev build on the test harness's dependencies.
  cargo build --quiet -p bench-harness
}

sizes() {
  python3 infra/bench/sizes.py "$out/sizes.json" "$release_dir/release" "$target/lambda-arm64" "${functions[@]}"
}

aws_calls() {
  TGLINK_BENCH_OUT=$out cargo test --quiet -p tglink-tests --test e2e aws_calls::
}

coldstart() {
  local variants=()
  if [ "$variant" = 1 ]; then
    variants=(--variant "$other_label=$other_dir/release")
  fi
  "$target/debug/coldstart" --release "$release_label=$release_dir/release" "${variants[@]}" --ssm \
    --runs "$runs" --warm "$warm" --out "$out/coldstart.json"
}

hot_paths() {
  CRITERION_HOME=$out/criterion HOT_PATHS_INPUTS=$out/hot-path-inputs.json \
    "$release_dir/release/hot-paths" --bench > "$out/criterion.txt"
  tail -n 40 "$out/criterion.txt"
}

peers() {
  (cd infra/bench/peers && npm ci --silent --no-audit --no-fund)
  node infra/bench/peers/peers.mjs "$out/hot-path-inputs.json" "$out/peers-node.json"
  local venv=$target/bench-peers-venv
  if [ ! -f "$venv/.installed" ] || [ infra/bench/peers/requirements.txt -nt "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r infra/bench/peers/requirements.txt
    touch "$venv/.installed"
  fi
  "$venv/bin/python" infra/bench/peers/peers.py "$out/hot-path-inputs.json" "$out/peers-python.json"
}

load() {
  # shellcheck disable=SC2086
  "$target/debug/load" --local-api "$release_dir/release/local-api" --routes "$(echo $load_routes | tr ' ' ',')" \
    --duration "$load_seconds" --out "$out/load.json"
}

step tools tools
step build-release build_release
[ "$variant" = 1 ] && step build-variant build_variant
[ "$arm64" = 1 ] && step build-arm64 build_arm64
step build-tools build_tools
step sizes sizes
step aws-calls aws_calls
step coldstart coldstart
step hot-paths hot_paths
step peers peers
step load load

dirty=false
[ -n "$(git status --porcelain 2>/dev/null)" ] && dirty=true
cat > "$out/meta.json" <<EOF
{
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "dirty": $dirty,
  "rustc": "$(rustc --version)",
  "load_start": "$load_start",
  "load_end": "$(cut -d' ' -f1 /proc/loadavg)",
  "release_label": "$release_label",
  "release_setting": "AWS_LC_SYS_NO_JITTER_ENTROPY=$release_value",
  "other_label": "$other_label",
  "variant": $([ "$variant" = 1 ] && echo true || echo false),
  "functions": [$(printf '"%s",' "${functions[@]}" | sed 's/,$//')]
}
EOF
python3 infra/bench/report.py "$out" "$root" > BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md (raw results in $out)"
