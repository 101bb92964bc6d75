#!/usr/bin/env bash
# Builds one function's release binary at several opt-levels (the rest of [profile.release]
# unchanged: lto, codegen-units=1, strip, panic=abort), zips it as `bootstrap` the way Lambda
# deploys it, and prints the sizes. Usage: infra/measure-opt-level.sh [function] [levels...]
set -euo pipefail
cd "$(dirname "$0")/.."
fn=${1:-connect-link}
shift || true
levels=${*:-s z 2 3}
out=${MEASURE_DIR:-target/opt-level}
mkdir -p "$out"
printf '%-10s %12s %12s\n' opt-level binary zip
for level in $levels; do
  dir="$out/o$level"
  CARGO_PROFILE_RELEASE_OPT_LEVEL=$level cargo build --quiet --release -p "$fn" --target-dir "$dir" >&2
  bin="$dir/release/$fn"
  stage=$(mktemp -d)
  cp "$bin" "$stage/bootstrap"
  (cd "$stage" && python3 -c "import zipfile; z=zipfile.ZipFile('bootstrap.zip','w',zipfile.ZIP_DEFLATED); z.write('bootstrap'); z.close()")
  printf '%-10s %12d %12d\n' "$level" "$(stat -c %s "$bin")" "$(stat -c %s "$stage/bootstrap.zip")"
  rm -rf "$stage"
done
