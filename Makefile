# tglink — every set-up step lives here, so a fresh clone needs only `make run` / `make test`.

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
VENV_STAMP  := $(VENV)/.installed
MOTO_PORT   ?= 5000
ARCH        ?= arm64
# Every crate under functions/ is a Lambda function (crate = binary = function name).
FUNCTIONS   := $(patsubst functions/%/Cargo.toml,%,$(wildcard functions/*/Cargo.toml))
RUST_TARGET_arm64  := aarch64-unknown-linux-gnu
RUST_TARGET_x86_64 := x86_64-unknown-linux-gnu
# Release build settings decided by measurement (not exported: debug and test builds keep theirs).
include infra/release.env

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MOTO_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: help run test lint build bench bench-opt-level moto venv fmt clean

help:
	@echo "make run    - serve every function locally on SQLite + a local key (.data/)"
	@echo "make test   - unit, conformance (SQLite and DynamoDB/KMS on moto) and end-to-end tests"
	@echo "make lint   - cargo fmt --check and clippy -D warnings"
	@echo "make build  - cargo lambda build --release of every function (ARCH=arm64|x86_64)"
	@echo "make bench  - cold start, sizes, AWS calls, hot paths, memory, load -> BENCHMARKS.md"
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
	rustup target add $(RUST_TARGET_$(ARCH))
	AWS_LC_SYS_NO_JITTER_ENTROPY=$(AWS_LC_SYS_NO_JITTER_ENTROPY) \
		cargo lambda build --release --$(subst _,-,$(ARCH)) $(addprefix -p ,$(FUNCTIONS))

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
	rm -rf $(VENV) .data
