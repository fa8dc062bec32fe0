# One entry point for people and CI alike: `make test` sets up what it needs and runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo

.PHONY: test setup rust-test rust-lint rust-targets bench help

help:
	@echo "make test    - set up toolchain targets and run every test (what CI runs)"
	@echo "make bench   - run the core benchmarks (criterion)"

test: setup rust-lint rust-test rust-targets

setup:
	@echo "==> setup: rustup targets and components"
	rustup component add clippy rustfmt >/dev/null 2>&1 || true
	rustup target add wasm32-unknown-unknown thumbv6m-none-eabi

rust-lint:
	@echo "==> cargo fmt --check / clippy"
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -p fencelock-core --all-targets -- -D warnings

rust-test:
	@echo "==> cargo test (core: unit, shared vectors, model property test, doc examples)"
	$(CARGO) test -p fencelock-core

rust-targets:
	@echo "==> core builds without std for targets without 64-bit atomics, and for wasm"
	$(CARGO) build -p fencelock-core --no-default-features --target thumbv6m-none-eabi
	$(CARGO) build -p fencelock-core --no-default-features --target wasm32-unknown-unknown

bench:
	$(CARGO) bench -p fencelock-core --bench engine --bench protocol
