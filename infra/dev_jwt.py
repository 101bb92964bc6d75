#!/usr/bin/env python3
"""Signs an HS256 app JWT for trying tglink out (your application issues the real ones).

    APP_JWT_SECRET=… infra/dev_jwt.py --sub alice --iss my-app --aud tglink [--roles tglink:admin]
    infra/dev_jwt.py --env-file tests/events/dev.env --sub dev-admin --roles tglink:admin --exp 4102444800

The secret, issuer and audience come from the options, else from the environment
(APP_JWT_SECRET, APP_JWT_ISSUER, APP_JWT_AUDIENCE), else from --env-file. Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def read_env_file(path):
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sub", required=True, help="the app user id")
    p.add_argument("--iss")
    p.add_argument("--aud")
    p.add_argument("--email")
    p.add_argument("--roles", nargs="*", default=[], help="e.g. tglink:admin (the default APP_JWT_ADMIN_ROLE)")
    p.add_argument("--ttl", type=int, default=3600, help="seconds of validity (default 3600)")
    p.add_argument("--exp", type=int, help="absolute expiry (Unix seconds) instead of --ttl")
    p.add_argument("--env-file", help="KEY=VALUE file with APP_JWT_* (e.g. tests/events/dev.env)")
    args = p.parse_args()
    env = read_env_file(args.env_file) if args.env_file else {}
    env.update({k: v for k, v in os.environ.items() if k.startswith("APP_JWT_")})
    secret = env.get("APP_JWT_SECRET")
    iss = args.iss or env.get("APP_JWT_ISSUER")
    aud = args.aud or env.get("APP_JWT_AUDIENCE")
    if not secret or len(secret.encode()) < 32:
        sys.exit("dev_jwt: APP_JWT_SECRET (at least 32 bytes) is required")
    if not iss or not aud:
        sys.exit("dev_jwt: the issuer and audience are required (--iss/--aud or APP_JWT_ISSUER/APP_JWT_AUDIENCE)")
    now = int(time.time())
    claims = {"sub": args.sub, "iss": iss, "aud": aud, "exp": args.exp or now + args.ttl, "iat": now}
    if args.email:
        claims["email"] = args.email
    if args.roles:
        claims["roles"] = args.roles
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    print(f"{head}.{body}.{sig}")


if __name__ == "__main__":
    main()
