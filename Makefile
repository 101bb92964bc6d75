# tglink — every set-up step lives here, so a fresh clone needs only `make run` / `make test`.

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
VENV_STAMP  := $(VENV)/.installed
MOTO_PORT   ?= 5000
ARCH        ?= arm64

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MOTO_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: help run test lint build moto venv fmt clean

help:
	@echo "make run    - serve every function locally on SQLite + a local key (.data/)"
	@echo "make test   - unit, conformance (SQLite and DynamoDB/KMS on moto) and end-to-end tests"
	@echo "make lint   - cargo fmt --check and clippy -D warnings"
	@echo "make build  - cargo lambda build --release (ARCH=arm64|x86_64)"
	@echo "make moto   - start moto_server by hand on 127.0.0.1:$(MOTO_PORT)"

# The pinned Python tools (moto_server, cargo-lambda, cfn-lint), reinstalled when the pins change.
venv: $(VENV_STAMP)
$(VENV_STAMP): infra/requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	touch $@

run:
	cargo run --quiet -p local-api

test: venv
	cargo build --quiet -p local-api
	cargo test --workspace --all-targets --no-fail-fast

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build: venv
	cargo lambda build --release --$(ARCH)

moto: venv
	$(MOTO_PYTHON) infra/moto_server_serialized.py -H 127.0.0.1 -p $(MOTO_PORT)

clean:
	cargo clean
	rm -rf $(VENV) .data
