# One entry point for people and CI alike: `make test` sets up what it needs and runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= ./.fencelock

FUZZ_SECONDS ?= 20
DEMO_PORT ?= 8380

matrix_python := .venv-python-test/bin/python

.PHONY: cluster sim-test sim-cluster test setup rust-test rust-lint rust-targets fuzz python-test node-test web-test web-build matrix serve demo bench bench-quick bench-cluster bench-core bench-python bench-node bench-web help

help:
	@echo "make serve        - install the Python package in $(VENV) and run the server on 127.0.0.1:7380 (data in $(DATA_DIR))"
	@echo "make cluster      - 3 etcd members and 3 replicated nodes on loopback (127.0.0.1:7381-7383, data in ./.fencelock-cluster)"
	@echo "make test         - set up everything and run every test (what CI runs)"
	@echo "make sim          - the deterministic simulation over SEEDS seeds (default 100000) on every core"
	@echo "make sim-cluster  - the deterministic simulation of the cluster over SEEDS seeds"
	@echo "make bench        - every server and redis-server under bench/loadgen, side by side: bench/RESULTS.md and plots (~6 min)"
	@echo "make bench-quick  - the same scripts in a short pass (QUICK=1, under 2 min, numbers not judged)"
	@echo "make bench-cluster - a 3-node cluster beside etcd's lock recipe on the same etcd: bench/cluster/RESULTS.md (~2 min)"
	@echo "make bench-core   - core benchmarks (criterion)"
	@echo "make bench-python - the TCP server against redis-server under redis-benchmark"
	@echo "make node-test    - build, pack and install the npm package, then run its tests"
	@echo "make matrix       - every server x every client over the shared scenarios (after python-test, node-test)"
	@echo "make bench-node   - the Node server against redis-server under redis-benchmark, and the in-process engine"
	@echo "make web-test     - build the wasm modules and the browser package, run its vectors under Node and its tests in headless Chromium"
	@echo "make demo         - build the browser package and serve its demo on 127.0.0.1:$(DEMO_PORT)"
	@echo "make bench-web    - lock round trips from a page through the SharedWorker beside navigator.locks.request"

# Every part below in order, stopping at the first failure, then a one-screen summary
# (tests/run-all.sh; PARTS="rust-test matrix" runs a subset).
test:
	@bash tests/run-all.sh

setup:
	@echo "==> setup: rustup targets and components"
	rustup component add clippy rustfmt rust-src >/dev/null 2>&1 || true
	rustup target add wasm32-unknown-unknown thumbv6m-none-eabi
	@# redis-cli is an independent client in the Python tests; redis-server and
	@# redis-benchmark are the peers of the benchmark (Debian's redis-tools / redis-server).
	command -v redis-cli >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null; }

rust-lint:
	@echo "==> cargo fmt --check / clippy"
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

rust-test:
	@echo "==> cargo test (core: unit, shared vectors, model property test, doc examples)"
	$(CARGO) test -p fencelock-core

# The deterministic simulation (tests/sim): its fixed seeds, the planted bugs, then a sweep of
# seeds 0 to SIM_SWEEP-1 (about 400 simulated hours at the default; every run must pass and
# decide every lock history), and of the cluster's seeds 0 to SIM_CLUSTER_SWEEP-1 (about 36
# simulated hours). `make sim` and `make sim-cluster` run many more.
SIM_SWEEP ?= 10000
SIM_CLUSTER_SWEEP ?= 1000
sim-test:
	@echo "==> deterministic simulation: the fixed seeds, the planted bugs found, replay"
	$(CARGO) test -p fencelock-sim
	@echo "==> deterministic simulation: seeds 0 to $$(($(SIM_SWEEP) - 1))"
	$(CARGO) run -q -p fencelock-sim --profile sim -- --seeds $(SIM_SWEEP) --jobs $$(nproc) --strict
	@echo "==> deterministic simulation of the cluster: seeds 0 to $$(($(SIM_CLUSTER_SWEEP) - 1))"
	$(CARGO) run -q -p fencelock-sim --profile sim -- --cluster --seeds $(SIM_CLUSTER_SWEEP) --jobs $$(nproc)

rust-targets:
	@echo "==> core builds without std for targets without 64-bit atomics, and for wasm"
	$(CARGO) build -p fencelock-core --no-default-features --target thumbv6m-none-eabi
	$(CARGO) build -p fencelock-core --no-default-features --target wasm32-unknown-unknown

# libFuzzer over the protocol server, the engine and the client, bounded in time. cargo-fuzz's sanitizer
# flags are unstable options; RUSTC_BOOTSTRAP lets the stable toolchain here accept them.
fuzz:
	@echo "==> cargo fuzz: $(FUZZ_SECONDS) s each on the protocol server, the engine and the client"
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --version 0.13.2
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz protocol_server -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY|Test unit written" ; test $${PIPESTATUS[0]} -eq 0
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz engine_ops -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY|Test unit written" ; test $${PIPESTATUS[0]} -eq 0
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz client_ops -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY|Test unit written" ; test $${PIPESTATUS[0]} -eq 0

python-test:
	@echo "==> Python package: build the wheel, install it with no Rust on PATH, mypy, pytest"
	bash python/scripts/test.sh

node-test:
	@echo "==> Node package: npm ci, napi build, npm pack, install the tarball with no Rust on PATH, node --test"
	bash node/scripts/test.sh

# Every server x every client over the scenarios of tests/matrix/scenarios, and the data-dir
# interchange; uses the venv python-test built and the addon node-test built.
matrix:
	@echo "==> cross-language matrix: every server x every client, one scenario suite"
	@test -x $(matrix_python) || bash python/scripts/test.sh --co -q >/dev/null
	@test -f node/fencelock.linux-x64-gnu.node || (cd node && npm ci --no-audit --no-fund --ignore-scripts && npm run build)
	$(matrix_python) tests/matrix/run.py

web-test:
	@echo "==> Browser package: wasm-bindgen + wasm-opt build, import/size check, tsc, vectors under Node, headless Chromium"
	bash web/scripts/test.sh

# The demo and the benchmark need the built package (npm ci and the wasm build) first.
web-build:
	cd web && npm ci --no-audit --no-fund --loglevel=error && bash scripts/build.sh

demo: web-build
	@echo "==> fencelock-web demo: http://127.0.0.1:$(DEMO_PORT)/demo/index.html"
	cd web && npx serve --no-clipboard -l tcp://127.0.0.1:$(DEMO_PORT) .

bench-web: web-build
	cd web && node bench/run.mjs

serve:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet ./python
	$(VENV)/bin/fencelock serve --host 127.0.0.1 --port 7380 --data-dir $(DATA_DIR)

# 3 etcd members and 3 cluster nodes on loopback (docs/CLUSTER.md); data in ./.fencelock-cluster.
cluster:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet './python[cluster]'
	FENCELOCK=$(VENV)/bin/fencelock bash python/scripts/cluster.sh

bench-python:
	bash bench/python/run.sh

bench-node:
	bash bench/node/run.sh

# Real lock cycles over TCP against every server and redis-server (bench/run.sh, bench/loadgen).
bench:
	bash bench/run.sh

bench-quick:
	QUICK=1 bash bench/run.sh

# A 3-node cluster beside etcd's own lock recipe on the same etcd (bench/cluster/RESULTS.md).
bench-cluster:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet './python[cluster]'
	$(VENV)/bin/python bench/cluster/bench.py

bench-core:
	$(CARGO) bench -p fencelock-core --bench engine --bench protocol

# The safety run (tests/safety/README.md): servers killed and restarted, clients paused, a fenced
# PostgreSQL store, history checks. SEED=n replays a run's choices.
.PHONY: safety safety-short
safety:
	@echo "==> safety run (long): each TCP server killed and restarted under paused clients"
	bash tests/safety/run.sh long

safety-short:
	@echo "==> safety run (short): checker tests, a fault round that must be caught, a short round per server"
	bash tests/safety/run.sh short

# The deterministic simulation (tests/sim/README.md): SEEDS seeds over every core; a failing seed
# prints its replay command and the last events.
SEEDS ?= 100000
.PHONY: sim
sim:
	@echo "==> deterministic simulation: $(SEEDS) seeds"
	$(CARGO) run -p fencelock-sim --profile sim -- --seeds $(SEEDS) --jobs $$(nproc)

sim-cluster:
	@echo "==> deterministic simulation of the cluster: $(SEEDS) seeds"
	$(CARGO) run -p fencelock-sim --profile sim -- --cluster --seeds $(SEEDS) --jobs $$(nproc)
