#!/usr/bin/env python3
"""A fake of Telegram's OpenID Connect provider (oauth.telegram.org) on loopback, for tests.

Usage: fake_telegram_oidc.py --client-id ID --client-secret SECRET [--port 0]

Prints one line, "fake telegram oidc listening on http://127.0.0.1:PORT", then serves until
its stdin closes (the test process that started it ended) or it is killed. The issuer is that
URL. id_tokens are signed with PyJWT (a real JOSE library) using keys made at start.

Telegram's side (what tglink talks to):
  GET  /.well-known/openid-configuration   discovery
  GET  /.well-known/jwks.json              the public keys (RSA, P-256, Ed25519, secp256k1)
  GET  /auth                               auto-approves: 302 to redirect_uri with code+state
                                           (the user is the one set by /control/user, or the
                                           `tg_user_id` query parameter)
  POST /token                              client_secret_basic, one-time codes (60 s), the
                                           redirect_uri of the authorization, PKCE S256

The tests' side:
  POST /control/user       {"id", "first_name"?, "name"?, "username"?, "picture"?,
                            "phone_number"?, "is_bot"?}: who signs in from now on
  POST /control/misbehave  {"next": MODE}: the next id_token is bad in one way. MODE is one of
                           wrong_aud, wrong_iss, expired, future_iat, wrong_nonce, no_nonce,
                           alg_none, unknown_kid, hs256_public_key, bad_signature, bot_account,
                           no_id_claim, no_id_token
  POST /control/alg        {"alg": "RS256"|"ES256"|"EdDSA"}: the signing algorithm from now on
  POST /control/rotate     {"drop_old"?: bool}: a new RSA key (new kid) signs from now on; the
                           JWKS serves it (and the old one unless drop_old)
  POST /control/outage     {"target": "discovery"|"jwks"|"token", "mode": "ok"|"down"|"hang"}
  POST /control/deny       {"error": "access_denied"}: the next /auth redirects with an error
  POST /control/mint       {"nonce", "misbehave"?, "claims"?}: an id_token now, without the
                           flow -> {"id_token"}
  GET  /control/stats      requests counted per endpoint, and the last /auth query
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

CODE_TTL_SECS = 60
ID_TOKEN_TTL_SECS = 3600
HANG_SECS = 20


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class State:
    def __init__(self, client_id: str, client_secret: str):
        self.lock = threading.Lock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.issuer = ""
        self.rsa_keys = [("rsa-1", new_rsa())]  # newest last; the newest signs RS256
        self.ec_key = ("ec-1", ec.generate_private_key(ec.SECP256R1()))
        self.ed_key = ("ed-1", ed25519.Ed25519PrivateKey.generate())
        self.k1_key = ("es256k-1", ec.generate_private_key(ec.SECP256K1()))
        self.ghost_key = ("ghost", new_rsa())  # never published
        self.alg = "RS256"
        self.user = {"id": 424242, "first_name": "Ada", "username": "ada"}
        self.misbehave = None
        self.deny = None
        self.outage = {"discovery": "ok", "jwks": "ok", "token": "ok"}
        self.codes = {}
        self.counts = {"discovery": 0, "jwks": 0, "auth": 0, "token": 0}
        self.last_auth = None

    def jwks(self):
        keys = []
        for kid, key in self.rsa_keys:
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        kid, key = self.ec_key
        keys.append(
            {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig",
             "alg": "ES256"})
        kid, key = self.ed_key
        keys.append(
            {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig",
             "alg": "EdDSA"})
        kid, key = self.k1_key
        keys.append(
            {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig",
             "alg": "ES256K"})
        return {"keys": keys}

    def discovery(self):
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "ES256K"],
            "scopes_supported": ["openid", "profile", "phone", "telegram:bot_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
            "claims_supported": ["aud", "exp", "iat", "iss", "sub", "id", "name",
                                 "preferred_username", "picture", "phone_number", "nonce"],
        }

    def id_token(self, user, nonce, scope, misbehave):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            # Telegram's `sub` is its subject for this client, not the user id.
            "sub": hashlib.sha256(f"{self.client_id}:{user['id']}".encode()).hexdigest()[:32],
            "iat": now,
            "exp": now + ID_TOKEN_TTL_SECS,
            "id": user["id"],
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if user.get("name") or user.get("first_name"):
            claims["name"] = user.get("name") or user.get("first_name")
        if user.get("username"):
            claims["preferred_username"] = user["username"]
        if user.get("picture"):
            claims["picture"] = user["picture"]
        if user.get("phone_number") and "phone" in (scope or "").split():
            claims["phone_number"] = user["phone_number"]
        if user.get("is_bot"):
            claims["is_bot"] = True
        alg = self.alg
        kid, key = {
            "RS256": self.rsa_keys[-1],
            "ES256": self.ec_key,
            "EdDSA": self.ed_key,
        }[alg]
        if misbehave == "wrong_aud":
            claims["aud"] = str(int(self.client_id) + 1) if self.client_id.isdigit() else "other"
        elif misbehave == "wrong_iss":
            claims["iss"] = "https://evil.example"
        elif misbehave == "expired":
            claims["iat"] = now - 7200
            claims["exp"] = now - 3600
        elif misbehave == "future_iat":
            claims["iat"] = now + 3600
            claims["exp"] = now + 7200
        elif misbehave == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif misbehave == "no_nonce":
            claims.pop("nonce", None)
        elif misbehave == "bot_account":
            claims["is_bot"] = True
        elif misbehave == "no_id_claim":
            claims.pop("id", None)
        elif misbehave == "unknown_kid":
            kid, key = self.ghost_key
            alg = "RS256"
        elif misbehave == "alg_none":
            header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
            payload = b64url(json.dumps(claims).encode())
            return f"{header}.{payload}."
        elif misbehave == "hs256_public_key":
            # The classic key-confusion forgery: HMAC keyed with the published RSA key (PEM),
            # named by the RSA key's kid. PyJWT refuses to make it, so it is made by hand.
            kid, key = self.rsa_keys[-1]
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
            payload = b64url(json.dumps(claims).encode())
            mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            return f"{header}.{payload}.{b64url(mac)}"
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})
        if misbehave == "bad_signature":
            header, payload, sig = token.split(".")
            claims["id"] = 1  # another user, the signature kept
            token = f"{header}.{b64url(json.dumps(claims).encode())}.{sig}"
        return token

    def take_misbehave(self):
        mode, self.misbehave = self.misbehave, None
        return mode


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def send_json(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def redirect(self, url):
            self.send_response(302)
            self.send_header("Location", url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def outage(self, target):
            """Counts the request; True if it was answered with the outage."""
            with state.lock:
                state.counts[target] += 1
                mode = state.outage[target]
            if mode == "down":
                self.send_json(503, {"error": "temporarily_unavailable"})
                return True
            if mode == "hang":
                time.sleep(HANG_SECS)
                self.close_connection = True
                return True
            return False

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            if url.path == "/.well-known/openid-configuration":
                if not self.outage("discovery"):
                    self.send_json(200, state.discovery())
            elif url.path == "/.well-known/jwks.json":
                if not self.outage("jwks"):
                    with state.lock:
                        self.send_json(200, state.jwks())
            elif url.path == "/auth":
                self.authorize(query)
            elif url.path == "/control/stats":
                with state.lock:
                    self.send_json(200, {**state.counts, "last_auth": state.last_auth})
            else:
                self.send_json(404, {"error": "not_found"})

        def authorize(self, q):
            with state.lock:
                state.counts["auth"] += 1
                state.last_auth = q
                deny, state.deny = state.deny, None
                user = dict(state.user)
            redirect_uri = q.get("redirect_uri", "")
            if q.get("client_id") != state.client_id or not redirect_uri.startswith(
                    ("http://", "https://")):
                self.send_json(400, {"error": "invalid_request"})
                return

            def back(params):
                sep = "&" if "?" in redirect_uri else "?"
                self.redirect(redirect_uri + sep + urllib.parse.urlencode(params))

            state_param = {"state": q["state"]} if "state" in q else {}
            if deny:
                back({"error": deny, **state_param})
                return
            if (q.get("response_type") != "code"
                    or "openid" not in q.get("scope", "").split()
                    or q.get("code_challenge_method") != "S256"
                    or not q.get("code_challenge")):
                back({"error": "invalid_request", **state_param})
                return
            if q.get("tg_user_id"):
                user = {"id": int(q["tg_user_id"]), "first_name": "User"}
            code = secrets.token_urlsafe(24)
            with state.lock:
                state.codes[code] = {
                    "redirect_uri": redirect_uri,
                    "challenge": q["code_challenge"],
                    "nonce": q.get("nonce"),
                    "scope": q.get("scope"),
                    "user": user,
                    "expires": time.time() + CODE_TTL_SECS,
                    "used": False,
                }
            back({"code": code, **state_param})

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            raw = self.body()
            if url.path == "/token":
                self.token(raw)
                return
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                self.send_json(400, {"error": "bad json"})
                return
            with state.lock:
                if url.path == "/control/user":
                    state.user = data
                elif url.path == "/control/misbehave":
                    state.misbehave = data.get("next")
                elif url.path == "/control/alg":
                    state.alg = data["alg"]
                elif url.path == "/control/rotate":
                    new = (f"rsa-{len(state.rsa_keys) + 1}-{secrets.token_hex(4)}", new_rsa())
                    state.rsa_keys = [new] if data.get("drop_old") else state.rsa_keys + [new]
                elif url.path == "/control/outage":
                    state.outage[data["target"]] = data["mode"]
                elif url.path == "/control/deny":
                    state.deny = data.get("error", "access_denied")
                elif url.path == "/control/mint":
                    token = state.id_token(
                        {**state.user, **data.get("user", {})}, data.get("nonce"),
                        data.get("scope", "openid profile"), data.get("misbehave"))
                    self.send_json(200, {"id_token": token})
                    return
                else:
                    self.send_json(404, {"error": "not_found"})
                    return
            self.send_json(200, {"ok": True})

        def token(self, raw):
            if self.outage("token"):
                return
            form = dict(urllib.parse.parse_qsl(raw.decode(errors="replace"),
                                               keep_blank_values=True))
            auth = self.headers.get("Authorization", "")
            client_ok = False
            if auth.startswith("Basic "):
                try:
                    ident, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    client_ok = (urllib.parse.unquote_plus(ident) == state.client_id
                                 and hmac.compare_digest(urllib.parse.unquote_plus(secret),
                                                         state.client_secret))
                except ValueError:
                    client_ok = False
            if not client_ok:
                self.send_json(401, {"error": "invalid_client"},
                               {"WWW-Authenticate": 'Basic realm="telegram"'})
                return
            if form.get("grant_type") != "authorization_code":
                self.send_json(400, {"error": "unsupported_grant_type"})
                return
            with state.lock:
                entry = state.codes.get(form.get("code", ""))
                fresh = entry is not None and not entry["used"] and entry["expires"] > time.time()
                if entry is not None:
                    entry["used"] = True
            verifier = form.get("code_verifier", "")
            if (not fresh
                    or form.get("redirect_uri") != entry["redirect_uri"]
                    or b64url(hashlib.sha256(verifier.encode()).digest()) != entry["challenge"]):
                self.send_json(400, {"error": "invalid_grant"})
                return
            with state.lock:
                mode = state.take_misbehave()
                body = {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                        "expires_in": 3600, "scope": entry["scope"]}
                if mode != "no_id_token":
                    body["id_token"] = state.id_token(entry["user"], entry["nonce"],
                                                      entry["scope"], mode)
            self.send_json(200, body)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    state = State(args.client_id, args.client_secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    state.issuer = f"http://127.0.0.1:{server.server_address[1]}"

    def watch_stdin():
        # The parent holds our stdin: when it exits, stdin closes and so do we.
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"fake telegram oidc listening on {state.issuer}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
