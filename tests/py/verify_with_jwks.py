#!/usr/bin/env python3
"""Verifies a tglink access token the way a host app would, with PyJWT and nothing else.

Usage: verify_with_jwks.py ISSUER AUDIENCE TOKEN

Fetches ISSUER/.well-known/openid-configuration, takes its jwks_uri, picks the key named by
the token's kid from that JWKS, and verifies the token (ES256 only, typ at+jwt, iss, aud, exp,
iat). Prints the verified claims and the kid as one JSON object; exits 1 on any refusal.
"""

import json
import sys
import urllib.request

import jwt


def main() -> int:
    issuer, audience, token = sys.argv[1], sys.argv[2], sys.argv[3]
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration") as response:
        metadata = json.load(response)
    if metadata["issuer"] != issuer:
        print("issuer mismatch in the discovery document", file=sys.stderr)
        return 1
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        print("not an access token", file=sys.stderr)
        return 1
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    try:
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as error:
        print(f"refused: {type(error).__name__}", file=sys.stderr)
        return 1
    print(json.dumps({"kid": header["kid"], "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
