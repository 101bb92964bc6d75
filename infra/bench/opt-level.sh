#!/usr/bin/env bash
# make bench-opt-level: the measurement behind `opt-level` in [profile.release].
#
# Builds every function's arm64 deployment zip (`cargo lambda build --release --arm64
# --output-format zip`, the release settings of infra/release.env) once per opt-level, the
# rest of [profile.release] unchanged (lto, codegen-units = 1, strip, panic = abort), records
# the sizes in infra/bench/results/opt-level.json (which BENCHMARKS.md and the README quote),
# and deletes each level's build (they are large). One full build per level: long.
#
# Usage: infra/bench/opt-level.sh [levels...]   (default: s z 2 3)
# The level [profile.release] already uses is taken from make bench's arm64 build
# ($CARGO_TARGET_DIR/lambda-arm64) when it exists, instead of being built again.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
levels=${*:-s z 2 3}
# shellcheck source=../release.env
source infra/release.env
export AWS_LC_SYS_NO_JITTER_ENTROPY
current=$(sed -n '/^\[profile\.release\]/,/^\[/{s/^opt-level *= *"\{0,1\}\([^"]*\)"\{0,1\}.*/\1/p}' Cargo.toml)
functions=()
for dir in functions/*/; do
  [ -f "$dir/Cargo.toml" ] && functions+=("$(basename "$dir")")
done
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
rustup target add aarch64-unknown-linux-gnu

results=$(mktemp -d)
for level in $levels; do
  if [ "$level" = "$current" ] && [ -d "$target/lambda-arm64" ]; then
    echo "opt-level $level: [profile.release] as is, from make bench's build ($target/lambda-arm64)"
    lambda_dir=$target/lambda-arm64
  else
    echo "opt-level $level: building (arm64)"
    dir=$target/opt-level-$level
    lambda_dir=$dir/lambda
    CARGO_TARGET_DIR=$dir CARGO_PROFILE_RELEASE_OPT_LEVEL=$level \
      cargo lambda build --quiet --release --arm64 --output-format zip --lambda-dir "$lambda_dir" "${packages[@]}"
  fi
  python3 infra/bench/sizes.py "$results/$level.json" /nonexistent "$lambda_dir" "${functions[@]}"
  if [ "$lambda_dir" != "$target/lambda-arm64" ]; then
    rm -rf "$target/opt-level-$level"
  fi
done

mkdir -p infra/bench/results
python3 - "$results" "$current" "$(git rev-parse --short HEAD)" $levels > infra/bench/results/opt-level.json <<'EOF'
import json, sys
from datetime import datetime, timezone
results, current, commit, levels = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rows = []
for level in levels:
    with open(f"{results}/{level}.json", encoding="utf-8") as f:
        sizes = json.load(f)["functions"]
    rows.append({"level": level, "functions": {fn: v["arm64"] for fn, v in sizes.items() if "arm64" in v}})
json.dump({
    "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    "commit": commit,
    "target": "aarch64-unknown-linux-gnu",
    "profile_opt_level": current,
    "levels": rows,
}, sys.stdout, indent=2)
EOF
rm -rf "$results"
echo "wrote infra/bench/results/opt-level.json"
