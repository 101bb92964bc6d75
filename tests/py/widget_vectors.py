"""Login Widget test vectors, computed independently of tglink's Rust code.

Telegram's "Checking authorization" (core.telegram.org/widgets/login):
secret_key = SHA256(bot_token); data_check_string = every field but `hash`, sorted by key,
"key=value" joined by "\n"; hash = hex(HMAC-SHA256(secret_key, data_check_string)).

Run `python3 tests/py/widget_vectors.py`; its output is pasted into
shared/src/telegram/login_widget.rs (PY_VALID, PY_EXTRA).
"""

import hashlib
import hmac
from urllib.parse import urlencode

TOKEN = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8"


def sign(fields):
    secret = hashlib.sha256(TOKEN.encode()).digest()
    dcs = "\n".join(f"{k}={v}" for k, v in sorted(fields))
    digest = hmac.new(secret, dcs.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields + [("hash", digest)])


print(
    "PY_VALID:",
    sign(
        [
            ("id", "279058397"),
            ("first_name", "Vladislav"),
            ("last_name", "Kibenko"),
            ("username", "vdkfrost"),
            ("photo_url", "https://t.me/i/userpic/320/a.jpg"),
            ("auth_date", "1700000000"),
        ]
    ),
)
print(
    "PY_EXTRA:",
    sign(
        [
            ("id", "42"),
            ("first_name", "Ann Lee"),
            ("auth_date", "1700000000"),
            ("new_field", "x&y"),
        ]
    ),
)
