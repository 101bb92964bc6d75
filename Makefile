# tglink — every set-up step lives here, so a fresh clone needs only `make run` / `make test`.

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
VENV_STAMP  := $(VENV)/.installed
MOTO_PORT   ?= 5000
STAGE       ?= prod
DEPLOY_VENV := .venv-deploy
# Every crate under functions/ is a Lambda function (crate = binary = function name).
FUNCTIONS   := $(patsubst functions/%/Cargo.toml,%,$(wildcard functions/*/Cargo.toml))
LAMBDA_DIR  ?= target/lambda
WATCH_PORT  ?= 9000
# Release build settings decided by measurement (not exported: debug and test builds keep theirs).
include infra/release.env

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MOTO_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: help run dev-jwt test lint build bench bench-opt-level moto venv fmt clean watch deploy deploy-venv put-secrets set-webhook

help:
	@echo "make run    - serve every function locally on SQLite + a local key (.data/)"
	@echo "make dev-jwt SUB=alice [ROLES=tglink:admin] - a dev JWT for the local API's secret"
	@echo "make test   - unit, conformance (SQLite and DynamoDB/KMS on moto) and end-to-end tests"
	@echo "make lint   - cargo fmt --check, clippy -D warnings, cfn-lint, OpenAPI validation"
	@echo "make build  - cargo lambda build --release: a bootstrap.zip per function, arm64 and x86_64"
	@echo "make watch  - cargo lambda watch on [::1]:$(WATCH_PORT) with tests/events/dev.env"
	@echo "make bench  - cold start, sizes, AWS calls, hot paths, memory, load -> BENCHMARKS.md"
	@echo "make moto   - start moto_server by hand on 127.0.0.1:$(MOTO_PORT)"
	@echo "make deploy - sam build + sam deploy (guided the first time, without samconfig.toml)"
	@echo "make put-secrets STAGE=prod - write the service secrets to SSM (SecureString)"
	@echo "make set-webhook URL=https://…/api/telegram/webhook [STAGE=prod] - Telegram setWebhook"

# The pinned Python tools (moto_server, cargo-lambda, cfn-lint), reinstalled when the pins change.
venv: $(VENV_STAMP)
$(VENV_STAMP): infra/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	touch $@

run:
	cargo run --quiet -p local-api

# A development JWT signed with the local API's generated secret (.data/dev-secrets.json).
dev-jwt:
	@cargo run --quiet -p local-api -- dev-jwt "$(or $(SUB),dev-user)" $(ROLES)

test: venv
	cargo build --quiet -p local-api
	cargo test --workspace --all-targets --no-fail-fast

lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cfn-lint template.yaml
	openapi-spec-validator openapi.yaml

fmt:
	cargo fmt --all

# A zip with a `bootstrap` per function and architecture:
# $(LAMBDA_DIR)/<arm64|x86_64>/<function>/bootstrap.zip
build: venv
	rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu
	AWS_LC_SYS_NO_JITTER_ENTROPY=$(AWS_LC_SYS_NO_JITTER_ENTROPY) \
	cargo lambda build --release --arm64 --output-format zip \
		--lambda-dir $(LAMBDA_DIR)/arm64 $(addprefix -p ,$(FUNCTIONS))
	AWS_LC_SYS_NO_JITTER_ENTROPY=$(AWS_LC_SYS_NO_JITTER_ENTROPY) \
	cargo lambda build --release --x86-64 --output-format zip \
		--lambda-dir $(LAMBDA_DIR)/x86_64 $(addprefix -p ,$(FUNCTIONS))
	@for zip in $(LAMBDA_DIR)/*/*/bootstrap.zip; do \
		printf '%8d bytes  %s\n' "$$(stat -c %s "$$zip")" "$$zip"; done

# Every function on the Lambda runtime emulator; invoke with
# cargo lambda invoke <function> --data-file tests/events/<function>/<event>.json
# dev.env uses SQLite: the functions are built with tglink-shared's `sqlite` feature here (the
# deployed builds leave it out).
watch: venv
	cargo lambda watch --invoke-address ::1 --invoke-port $(WATCH_PORT) \
		--features tglink-shared/sqlite --env-file tests/events/dev.env

# The SAM CLI is large (~350 MB): it has its own venv, installed only for deploying.
deploy-venv: $(DEPLOY_VENV)/.installed
$(DEPLOY_VENV)/.installed: infra/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-deploy.txt
	touch $@

# sam build runs `cargo lambda build --release` per function (Metadata: BuildMethod
# rust-cargolambda); the first deploy without samconfig.toml is guided and writes one
# (or copy infra/samconfig.example.toml to samconfig.toml and edit it).
deploy: venv deploy-venv
	$(DEPLOY_VENV)/bin/sam build
	if [ -f samconfig.toml ]; then $(DEPLOY_VENV)/bin/sam deploy; \
	else $(DEPLOY_VENV)/bin/sam deploy --guided; fi

put-secrets: deploy-venv
	$(DEPLOY_VENV)/bin/python infra/ssm_secrets.py put --stage $(STAGE) --generate-missing

set-webhook: deploy-venv
	@test -n "$(URL)" || { echo "usage: make set-webhook URL=https://…/api/telegram/webhook [STAGE=$(STAGE)]" >&2; exit 2; }
	STAGE=$(STAGE) PYTHON=$(DEPLOY_VENV)/bin/python infra/set-webhook.sh "$(URL)"

# Every benchmark, then BENCHMARKS.md (see infra/bench/run.sh for the knobs).
bench: venv
	infra/bench/run.sh

# The opt-level sweep behind [profile.release] (long: one full arm64 build per level).
bench-opt-level: venv
	infra/bench/opt-level.sh

moto: venv
	$(MOTO_PYTHON) infra/moto_server_serialized.py -H 127.0.0.1 -p $(MOTO_PORT)

clean:
	cargo clean
	rm -rf $(VENV) $(DEPLOY_VENV) .data .aws-sam
