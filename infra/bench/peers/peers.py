"""Peer libraries on tglink's hot-path inputs (written by the hot-paths benchmark): Telegram
initData validation with aiogram, HS256 JWT verification with PyJWT.

Usage: python peers.py <inputs.json> <out.json>
"""

import json
import platform
import sys
import time
from importlib.metadata import version

import jwt
from aiogram.utils.web_app import check_webapp_signature, safe_parse_webapp_init_data


def measure(fn, per_batch=2000, batches=30, warmup=5000):
    """Median time per call over `batches` batches of `per_batch` calls, after a warm-up."""
    for _ in range(warmup):
        fn()
    per_op = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(per_batch):
            fn()
        per_op.append((time.perf_counter_ns() - start) / per_batch)
    per_op.sort()
    return {
        "ns_per_op": per_op[len(per_op) // 2],
        "min_ns_per_op": per_op[0],
        "iterations": per_batch * batches,
    }


def main():
    inputs_path, out_path = sys.argv[1:3]
    with open(inputs_path, encoding="utf-8") as f:
        inputs = json.load(f)
    runtime = f"python {platform.python_version()}"
    token, init_data = inputs["bot_token"], inputs["init_data"]
    # Sanity: the peer accepts the very string tglink validates (and refuses a tampered one).
    assert check_webapp_signature(token, init_data)
    assert not check_webapp_signature(token, init_data.replace("vdkfrost", "vdkfrosx"))
    safe_parse_webapp_init_data(token, init_data)
    results = [
        {
            "hot_path": "initdata_hmac",
            "library": "aiogram",
            "version": version("aiogram"),
            "runtime": runtime,
            "call": "check_webapp_signature(token, init_data)",
            **measure(lambda: check_webapp_signature(token, init_data)),
        },
        {
            "hot_path": "initdata_hmac",
            "library": "aiogram",
            "version": version("aiogram"),
            "runtime": runtime,
            "call": "safe_parse_webapp_init_data(token, init_data)",
            "parses": True,
            **measure(lambda: safe_parse_webapp_init_data(token, init_data)),
        },
    ]
    options = {"require": ["exp", "iss", "aud", "sub"]}

    def verify():
        return jwt.decode(
            inputs["jwt"],
            inputs["jwt_secret"],
            algorithms=["HS256"],
            audience=inputs["audience"],
            issuer=inputs["issuer"],
            options=options,
        )

    verify()
    results.append(
        {
            "hot_path": "jwt_hs256",
            "library": "PyJWT",
            "version": version("PyJWT"),
            "runtime": runtime,
            "call": "jwt.decode(token, secret, algorithms=[HS256], audience, issuer)",
            **measure(verify),
        }
    )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    for r in results:
        print(f"peers: {r['library']} {r['call']}: {r['ns_per_op']:.0f} ns/op", file=sys.stderr)


if __name__ == "__main__":
    main()
