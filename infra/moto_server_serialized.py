"""moto_server whose backend operations are serialized, like DynamoDB's per-item atomicity.

moto's own `moto_server` handles requests on threads without a lock around its in-memory
backends, so two concurrent conditional writes to one item can both pass their condition (we
saw 3 of 64 concurrent `UpdateItem`s "win"). Real DynamoDB evaluates a condition and applies
the write atomically, and runs transactions serializably. This launcher serves moto's same WSGI
application with the same request handler, but holds one lock while the application handles a
request, so the emulator is linearizable. Connections are still accepted concurrently.

It changes no DynamoDB semantics: a wrong or missing condition still lets every writer win.

Usage: python infra/moto_server_serialized.py -H 127.0.0.1 -p 5000
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


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
        serialized(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
