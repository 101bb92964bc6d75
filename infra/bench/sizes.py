#!/usr/bin/env python3
"""Artifact sizes for make bench: the arm64 deployment zips cargo lambda built, and the x86_64
release binaries zipped the same way (deflate, `bootstrap` at the root, mode 0755).

Usage: sizes.py <out.json> <x86_64 release dir> <arm64 lambda dir> <function>...
"""

import json
import os
import sys
import tempfile
import zipfile


def zip_size(binary):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bootstrap.zip")
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(binary, "rb") as f, zipfile.ZipFile(path, "w") as z:
            z.writestr(info, f.read())
        return os.path.getsize(path)


def main():
    out, x86_dir, arm_dir, functions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    result = {"functions": {}}
    for fn in functions:
        row = {}
        binary = os.path.join(x86_dir, fn)
        if os.path.exists(binary):
            row["x86_64"] = {"binary": os.path.getsize(binary), "zip": zip_size(binary)}
        arm_zip = os.path.join(arm_dir, fn, "bootstrap.zip")
        if os.path.exists(arm_zip):
            with zipfile.ZipFile(arm_zip) as z:
                inner = z.getinfo("bootstrap").file_size
            row["arm64"] = {"binary": inner, "zip": os.path.getsize(arm_zip)}
        result["functions"][fn] = row
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    for fn, row in result["functions"].items():
        sizes = ", ".join(f"{arch} {v['zip']} bytes zipped" for arch, v in row.items())
        print(f"sizes: {fn}: {sizes}", file=sys.stderr)


if __name__ == "__main__":
    main()
