#!/usr/bin/env bash
# make bench-opt-level: the measurement behind the opt-levels of [profile.release].
#
# For each level it builds every function's arm64 deployment zip (`cargo lambda build
# --release --arm64 --output-format zip`, with the settings of infra/release.env) and, unless
# OPT_LEVEL_HOT_PATHS=0, the x86_64 hot-path benchmarks, whose initData and JWT figures it
# records next to the sizes. A level is either `profile` ([profile.release] of Cargo.toml as
# it is, with its per-package levels) or an opt-level applied to every crate (the profile and
# each of its package overrides, through a cargo config file: Cargo.toml is not touched).
# Results: infra/bench/results/opt-level.json (BENCHMARKS.md and the README quote it). Each
# level's build is deleted once measured (they are large). One full build per level: long.
#
# Usage: infra/bench/opt-level.sh [levels...]   (default: profile s z 2 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
levels=${*:-profile s z 2 3}
hot=${OPT_LEVEL_HOT_PATHS:-1}
# shellcheck source=../release.env
source infra/release.env
export AWS_LC_SYS_NO_JITTER_ENTROPY
functions=()
for dir in functions/*/; do
  [ -f "$dir/Cargo.toml" ] && functions+=("$(basename "$dir")")
done
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
# The packages [profile.release] gives their own level: a uniform level must override them too.
overridden=$(sed -n 's/^\[profile\.release\.package\.\(.*\)\]$/\1/p' Cargo.toml)
rustup target add aarch64-unknown-linux-gnu

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
for level in $levels; do
  dir=$target/opt-level-$level
  # Cargo reads config files from the directory it runs in: a uniform level is a config file
  # there, and the workspace is given by --manifest-path.
  workdir=$results/cwd-$level
  mkdir -p "$workdir/.cargo"
  if [ "$level" != profile ]; then
    {
      printf '[profile.release]\nopt-level = "%s"\n' "$level"
      for package in $overridden; do
        printf '[profile.release.package.%s]\nopt-level = "%s"\n' "$package" "$level"
      done
    } > "$workdir/.cargo/config.toml"
  fi
  echo "opt-level $level: arm64 zips"
  (cd "$workdir" && CARGO_TARGET_DIR=$dir cargo lambda build --quiet --release --arm64 \
    --output-format zip --lambda-dir "$dir/lambda" --manifest-path "$root/Cargo.toml" "${packages[@]}")
  python3 infra/bench/sizes.py "$results/$level.json" /nonexistent "$dir/lambda" "${functions[@]}"
  if [ "$hot" = 1 ]; then
    echo "opt-level $level: hot paths (x86_64)"
    (cd "$workdir" && CARGO_TARGET_DIR=$dir cargo build --quiet --release \
      --manifest-path "$root/Cargo.toml" -p hot-paths)
    CRITERION_HOME=$results/criterion-$level "$dir/release/hot-paths" --bench \
      --warm-up-time 1 --measurement-time 3 'initdata/hmac_validate|jwt/hs256_verify' > /dev/null
    cp -r "$results/criterion-$level" "$results/$level-criterion"
  fi
  rm -rf "$dir"
done

mkdir -p infra/bench/results
python3 - "$results" "$(git rev-parse --short HEAD)" $levels > infra/bench/results/opt-level.json <<'EOF'
import json, os, sys
from datetime import datetime, timezone
results, commit, levels = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for level in levels:
    with open(f"{results}/{level}.json", encoding="utf-8") as f:
        sizes = json.load(f)["functions"]
    row = {"level": level, "functions": {fn: v["arm64"] for fn, v in sizes.items() if "arm64" in v}}
    for key, bench in [("initdata_ns", "initdata/hmac_validate"), ("jwt_ns", "jwt/hs256_verify")]:
        path = f"{results}/{level}-criterion/{bench}/new/estimates.json"
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                row[key] = json.load(f)["median"]["point_estimate"]
    rows.append(row)
json.dump({
    "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    "commit": commit,
    "target": "aarch64-unknown-linux-gnu (zips), x86_64 (hot paths)",
    "levels": rows,
}, sys.stdout, indent=2)
EOF
echo "wrote infra/bench/results/opt-level.json"
