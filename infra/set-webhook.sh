#!/usr/bin/env bash
# Registers the bot's webhook with Telegram: setWebhook with the webhook URL, the
# secret_token Telegram will send in X-Telegram-Bot-Api-Secret-Token, and
# allowed_updates=["message"] (the only updates the webhook acts on); then prints
# getWebhookInfo.
#
#   make set-webhook URL=https://<api-id>.execute-api.<region>.amazonaws.com/api/telegram/webhook
#
# TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET come from the environment when set, otherwise
# from SSM Parameter Store (/tglink/$STAGE/…, STAGE defaults to prod) through
# infra/ssm_secrets.py run by $PYTHON. The token is part of the Bot API URL: it is handed to
# curl in a config on stdin, never on the command line, and never printed.
set -euo pipefail

die() {
    echo "set-webhook: $*" >&2
    exit 2
}

url=${1:-}
[[ -n $url ]] || die "usage: $0 <https webhook URL>   (make set-webhook URL=…)"
stage=${STAGE:-prod}
python=${PYTHON:-python3}
api_base=${TELEGRAM_API_BASE:-https://api.telegram.org}
here=$(cd "$(dirname "$0")" && pwd)

secret_value() {
    local name=$1
    if [[ -n ${!name:-} ]]; then
        printf '%s' "${!name}"
    else
        "$python" "$here/ssm_secrets.py" get --stage "$stage" "$name"
    fi
}

# Telegram accepts HTTPS webhooks on ports 443, 80, 88 and 8443.
[[ $url =~ ^https://[A-Za-z0-9.-]+(:(443|80|88|8443))?(/[A-Za-z0-9._~/-]*)?$ ]] ||
    die "URL must be https://<host>[:443|80|88|8443]/<path> (got: $url)"
token=$(secret_value TELEGRAM_BOT_TOKEN) || die "no TELEGRAM_BOT_TOKEN"
secret=$(secret_value TELEGRAM_WEBHOOK_SECRET) || die "no TELEGRAM_WEBHOOK_SECRET"
[[ $token =~ ^[0-9]{5,}:[A-Za-z0-9_-]{30,}$ ]] || die "TELEGRAM_BOT_TOKEN is malformed"
[[ $secret =~ ^[A-Za-z0-9_-]{1,256}$ ]] || die "TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z a-z 0-9 _ -"

# Every value was checked above to contain no quote or backslash, so this is valid JSON.
body="{\"url\":\"$url\",\"secret_token\":\"$secret\",\"allowed_updates\":[\"message\"]}"

bot_api() {
    local method=$1 data=${2:-}
    {
        printf 'url = "%s/bot%s/%s"\n' "$api_base" "$token" "$method"
        if [[ -n $data ]]; then
            printf 'header = "Content-Type: application/json"\n'
            printf 'data = "%s"\n' "${data//\"/\\\"}"
        fi
    } | curl --silent --show-error --fail-with-body --max-time 20 --config -
    echo
}

bot_api setWebhook "$body"
bot_api getWebhookInfo
