"""moto_server whose backend operations are serialized, like DynamoDB's per-item atomicity.

moto's own `moto_server` handles requests on threads without a lock around its in-memory
backends, so two concurrent conditional writes to one item can both pass their condition (we
saw 3 of 64 concurrent `UpdateItem`s "win"). Real DynamoDB evaluates a condition and applies
the write atomically, and runs transactions serializably. This launcher serves moto's same WSGI
application with the same request handler, but holds one lock while the application handles a
request, so the emulator is linearizable. Connections are still accepted concurrently.

It changes no DynamoDB semantics: a wrong or missing condition still lets every writer win.

It adds one DynamoDB rule moto lacks: `TransactWriteItems` idempotency by `ClientRequestToken`
(the SDK sets one per operation and keeps it across its retries). Real DynamoDB answers a
repeated call with the same token, within 10 minutes of the first success, with that success,
without applying the transaction again; the same token with a different request is refused
with `IdempotentParameterMismatchException`. moto applies the repeat again, so a response lost
after the commit and retried by the SDK looks like a failed condition: the fault tests would
report the emulator, not tglink. Failed calls are not remembered (DynamoDB lets a token whose
call failed be used again).

Usage: python infra/moto_server_serialized.py -H 127.0.0.1 -p 5000
"""

import argparse
import io
import json
import os
import signal
import sys
import threading
import time

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


IDEMPOTENCY_WINDOW_SECS = 600
TRANSACT_WRITE = "DynamoDB_20120810.TransactWriteItems"


def transact_write_idempotency(app, clock=time.monotonic):
    """`TransactWriteItems` answered once per `ClientRequestToken` (see the module docs).

    Must run inside the serializing lock: the check, the call and the caching are one step.
    """
    committed = {}  # token -> (at, request without the token, status, headers, body)

    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET") != TRANSACT_WRITE:
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            return app(environ, start_response)
        token = request.pop("ClientRequestToken", None)
        if not token:
            return app(environ, start_response)
        now = clock()
        for old in [t for t, c in committed.items() if now - c[0] >= IDEMPOTENCY_WINDOW_SECS]:
            del committed[old]
        if token in committed:
            _, first, status, headers, body = committed[token]
            if first != request:
                status = "400 Bad Request"
                body = [json.dumps({
                    "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                    "message": "The request uses the same client token as a previous, but non-identical request.",
                }).encode()]
                headers = [("Content-Type", "application/x-amz-json-1.0"),
                           ("Content-Length", str(len(body[0])))]
            start_response(status, headers)
            return body
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, list(headers)
            return start_response(status, headers, exc_info)

        body = list(app(environ, capture))
        if seen.get("status", "").startswith("200"):
            committed[token] = (now, request, seen["status"], seen["headers"], body)
        return body

    return wrapped


def serialized(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        with lock:
            # moto's responses are fully built lists; materialize to be safe, inside the lock.
            return list(app(environ, start_response))

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        serialized(transact_write_idempotency(app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
