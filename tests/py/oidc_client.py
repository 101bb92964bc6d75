#!/usr/bin/env python3
"""A host app's side of "Log in with Telegram" through tglink, with Authlib (an independent,
widely used OpenID Connect client library) and nothing of tglink's.

Usage:
  oidc_client.py begin  ISSUER CLIENT_ID REDIRECT_URI [SECRET]
      Reads ISSUER/.well-known/openid-configuration and prints, as one JSON object, the
      authorization URL Authlib builds (response_type=code, scope "openid profile", a fresh
      state, nonce and PKCE S256 code_verifier) and the state, nonce and code_verifier the app
      keeps in its session.
  oidc_client.py finish ISSUER CLIENT_ID REDIRECT_URI STATE NONCE CODE_VERIFIER CALLBACK_URL [SECRET]
      Given the URL the browser came back to, checks `state` and `iss` (RFC 9207), redeems the
      code at the discovered token endpoint (client_secret_basic with SECRET, else a public
      client) with the code_verifier, and validates the ID token with Authlib's own OpenID
      Connect checks (signature from the discovered JWKS, iss, aud, azp, exp, iat, nonce,
      at_hash, auth_time). Prints {"claims": ..., "token": ...}.

Exit status 1 with one line on stderr for every refusal (an OAuth error, a failed check).
"""

import json
import sys
import time
import urllib.parse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


def discover(issuer):
    metadata = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    if metadata.get("issuer") != issuer:
        raise SystemExit("refused: issuer mismatch in the discovery document")
    return metadata


def session(client_id, redirect_uri, secret, **kwargs):
    return OAuth2Session(
        client_id=client_id,
        client_secret=secret,
        redirect_uri=redirect_uri,
        scope="openid profile",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        **kwargs,
    )


def begin(issuer, client_id, redirect_uri, secret=None):
    metadata = discover(issuer)
    from authlib.common.security import generate_token

    nonce = generate_token(24)
    code_verifier = generate_token(48)
    client = session(client_id, redirect_uri, secret)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], nonce=nonce, code_verifier=code_verifier
    )
    print(json.dumps({"url": url, "state": state, "nonce": nonce, "code_verifier": code_verifier}))
    return 0


def finish(issuer, client_id, redirect_uri, state, nonce, code_verifier, callback_url, secret=None):
    metadata = discover(issuer)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback_url).query))
    if "error" in query:
        print(f"refused: authorization error {query['error']}", file=sys.stderr)
        return 1
    if query.get("iss") != issuer:
        print("refused: iss of the authorization response is not the issuer", file=sys.stderr)
        return 1
    client = session(client_id, redirect_uri, secret, state=state)
    try:
        token = client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback_url,
            code_verifier=code_verifier,
        )
    except Exception as error:  # authlib raises OAuthError subclasses with .error
        print(f"refused: token endpoint {getattr(error, 'error', type(error).__name__)}", file=sys.stderr)
        return 1
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    try:
        claims = jwt.decode(
            token["id_token"],
            jwks,
            claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": issuer}},
            claims_params={
                "nonce": nonce,
                "client_id": client_id,
                "access_token": token["access_token"],
            },
        )
        claims.validate(now=int(time.time()), leeway=30)
    except Exception as error:
        print(f"refused: id_token {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if claims.header.get("alg") not in metadata["id_token_signing_alg_values_supported"]:
        print("refused: id_token alg not advertised", file=sys.stderr)
        return 1
    # OpenID Connect UserInfo with the access token (Authlib's session sends it as a Bearer header).
    answer = client.get(metadata["userinfo_endpoint"], timeout=10)
    if answer.status_code != 200:
        print(f"refused: userinfo {answer.status_code}", file=sys.stderr)
        return 1
    userinfo = answer.json()
    if userinfo.get("sub") != claims["sub"]:
        print("refused: userinfo sub is not the id_token's", file=sys.stderr)
        return 1
    print(json.dumps({
        "claims": dict(claims),
        "header": dict(claims.header),
        "token": dict(token),
        "userinfo": userinfo,
    }))
    return 0


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "begin":
        return begin(*sys.argv[2:])
    if len(sys.argv) >= 9 and sys.argv[1] == "finish":
        return finish(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
