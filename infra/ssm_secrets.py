#!/usr/bin/env python3
"""tglink's service secrets in SSM Parameter Store (SecureString, /tglink/<stage>/<NAME>).

    make put-secrets STAGE=prod                 # asks for each secret, input hidden
    infra/ssm_secrets.py put --stage prod --non-interactive --generate-missing
    infra/ssm_secrets.py get --stage prod TELEGRAM_WEBHOOK_SECRET
    infra/ssm_secrets.py names

`put` takes each value from the environment variable of the same name, or asks for it (an
empty answer skips it). With --generate-missing, TELEGRAM_WEBHOOK_SECRET and
REGISTRATION_CALLBACK_SECRET are generated when neither given nor already stored. Values are
never printed. Uses boto3 with the usual AWS configuration (AWS_PROFILE, AWS_REGION /
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL); the functions read the same names at cold start
(TGLINK_SSM_PREFIX=/tglink/<stage>/).
"""

import argparse
import getpass
import os
import re
import secrets
import sys

# The same list, in the same order, as tglink_shared::config::SECRET_VARS (a test compares them).
SECRET_NAMES = [
    "APP_JWT_SECRET",
    "APP_JWT_PUBLIC_KEY",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_API_HASH",
    "REGISTRATION_CALLBACK_SECRET",
    "TGLINK_FORWARD_SECRET",
    "TELEGRAM_OIDC_CLIENT_SECRET",
    "TGLINK_OIDC_CLIENTS",
]

GENERATED = ["TELEGRAM_WEBHOOK_SECRET", "REGISTRATION_CALLBACK_SECRET"]

# The JWT key is one of the two: storing one removes the other.
EXCLUSIVE = {"APP_JWT_SECRET": "APP_JWT_PUBLIC_KEY", "APP_JWT_PUBLIC_KEY": "APP_JWT_SECRET"}

CHECKS = {
    "APP_JWT_SECRET": (lambda v: len(v.encode()) >= 32, "at least 32 bytes"),
    "APP_JWT_PUBLIC_KEY": (lambda v: "-----BEGIN PUBLIC KEY-----" in v, "a PEM public key"),
    "TELEGRAM_BOT_TOKEN": (
        lambda v: re.fullmatch(r"[0-9]{5,}:[A-Za-z0-9_-]{30,}", v) is not None,
        "<digits>:<secret> as issued by @BotFather",
    ),
    "TELEGRAM_WEBHOOK_SECRET": (
        lambda v: re.fullmatch(r"[A-Za-z0-9_-]{1,256}", v) is not None,
        "1-256 of A-Z a-z 0-9 _ -",
    ),
    "TELEGRAM_API_HASH": (lambda v: len(v) > 0, "the api_hash from my.telegram.org"),
    "REGISTRATION_CALLBACK_SECRET": (lambda v: len(v.encode()) >= 32, "at least 32 bytes"),
    "TGLINK_FORWARD_SECRET": (
        lambda v: re.fullmatch(r"[A-Za-z0-9_-]{16,256}", v) is not None,
        "16-256 of A-Z a-z 0-9 _ - (only with TgLinkForwardUrl)",
    ),
    "TELEGRAM_OIDC_CLIENT_SECRET": (
        lambda v: re.fullmatch(r"[\x21-\x7e]{8,512}", v) is not None,
        "the bot's OpenID Connect client secret from @BotFather (8-512 printable, no spaces)",
    ),
    "TGLINK_OIDC_CLIENTS": (
        lambda v: v.lstrip().startswith("["),
        "a JSON array of registered OpenID clients (docs/oidc.md)",
    ),
}


def fail(message):
    print(f"ssm_secrets: {message}", file=sys.stderr)
    sys.exit(2)


def prefix_of(args):
    prefix = args.prefix or f"/tglink/{args.stage}/"
    if not (prefix.startswith("/") and prefix.endswith("/")):
        fail("the prefix must start and end with '/' (e.g. /tglink/prod/)")
    return prefix


def client():
    import boto3  # imported here so that `names` works without boto3

    return boto3.client("ssm")


def exists(ssm, name):
    try:
        ssm.get_parameter(Name=name, WithDecryption=False)
        return True
    except ssm.exceptions.ParameterNotFound:
        return False


def interactive(args):
    return not args.non_interactive and sys.stdin.isatty()


def put(args):
    prefix = prefix_of(args)
    ssm = client()
    values = {}
    for name in SECRET_NAMES:
        value = os.environ.get(name, "").strip()
        # A PEM key has several lines: it comes from the environment only
        # (APP_JWT_PUBLIC_KEY="$(cat key.pem)"); it is not asked for.
        if not value and name != "APP_JWT_PUBLIC_KEY" and interactive(args):
            value = getpass.getpass(f"{name} ({CHECKS[name][1]}; empty = skip): ").strip()
        if value:
            values[name] = value
    if values.get("APP_JWT_SECRET") and values.get("APP_JWT_PUBLIC_KEY"):
        fail("set exactly one of APP_JWT_SECRET and APP_JWT_PUBLIC_KEY")
    for name, value in values.items():
        ok, hint = CHECKS[name]
        if not ok(value):
            fail(f"{name} is malformed: expected {hint}")
    if args.generate_missing:
        for name in GENERATED:
            if name not in values and not exists(ssm, prefix + name):
                values[name] = secrets.token_urlsafe(32)
                print(f"generated {name}")
    if not values:
        fail("nothing to write: set the secrets as environment variables or answer the prompts")
    for name in SECRET_NAMES:
        if name not in values:
            continue
        request = {
            "Name": prefix + name,
            "Value": values[name],
            "Type": "SecureString",
            "Overwrite": True,
            "Description": f"tglink service secret {name}",
        }
        if args.key_id:
            request["KeyId"] = args.key_id
        ssm.put_parameter(**request)
        print(f"wrote {prefix}{name}")
        other = EXCLUSIVE.get(name)
        if other and other not in values and exists(ssm, prefix + other):
            ssm.delete_parameter(Name=prefix + other)
            print(f"deleted {prefix}{other} (the JWT key is one of the two)")


def get(args):
    if args.name not in SECRET_NAMES:
        fail(f"{args.name} is not a tglink secret (see `names`)")
    ssm = client()
    try:
        found = ssm.get_parameter(Name=prefix_of(args) + args.name, WithDecryption=True)
    except ssm.exceptions.ParameterNotFound:
        fail(f"{prefix_of(args)}{args.name} is not set (make put-secrets)")
    sys.stdout.write(found["Parameter"]["Value"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("put", "get"):
        p = sub.add_parser(name)
        where = p.add_mutually_exclusive_group()
        where.add_argument("--stage", default="prod", help="parameters under /tglink/<stage>/")
        where.add_argument("--prefix", help="parameters under this prefix instead")
        if name == "put":
            p.add_argument("--non-interactive", action="store_true", help="never prompt")
            p.add_argument(
                "--generate-missing",
                action="store_true",
                help="generate the webhook and callback secrets when not given or stored",
            )
            p.add_argument("--key-id", help="KMS key for the SecureStrings (default aws/ssm)")
        else:
            p.add_argument("name")
    sub.add_parser("names", help="print the secret names, one per line")
    args = parser.parse_args()
    if args.command == "names":
        print("\n".join(SECRET_NAMES))
    elif args.command == "put":
        put(args)
    else:
        get(args)


if __name__ == "__main__":
    main()
