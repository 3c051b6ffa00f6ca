# yunshi — the two commands: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
HTTP ?= 127.0.0.1:8080
DATA ?= data

.PHONY: run test deps-run deps-test build build-release test-rust test-browser bench-join bench-call bench-loss bench-bw bench-capacity bench-cascade fmt clippy

run: deps-run build-release
	@echo "yunshi: starting; open http://$(HTTP) once it says it is up (Ctrl-C stops it)"
	./target/release/yunshi --config conf/yunshi.toml --http $(HTTP) --data $(DATA)

test: deps-test test-rust test-browser
	@echo "make test: all suites passed"

deps-run:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

build:
	$(CARGO) build --locked

build-release:
	$(CARGO) build --release --locked

# Unit tests of every crate, then the end-to-end tests that start the real binary.
test-rust:
	$(CARGO) test --workspace --locked

# Headless Chromium against the real binary (debug build, built by test-rust or here).
test-browser: build
	cd tests/browser && YUNSHI_BIN=$(CURDIR)/target/debug/yunshi npm test

# Benchmarks: numbers go to docs/benchmarks.md by hand, with the command and machine.
bench-join: deps-test build-release
	cd tests/browser && YUNSHI_BIN=$(CURDIR)/target/release/yunshi node bench-join.mjs

bench-call: deps-test build-release
	cd tests/browser && YUNSHI_BIN=$(CURDIR)/target/release/yunshi node bench-call.mjs 2
	cd tests/browser && YUNSHI_BIN=$(CURDIR)/target/release/yunshi node bench-call.mjs 6

# Loss sweeps in Chromium with real kernel packet loss (nftables in a network namespace; root).
# BENCH_SECONDS=60 per point by default (about 19 minutes in all).
bench-loss: deps-test build-release
	cd tests/browser && YUNSHI_BIN=$(CURDIR)/target/release/yunshi node bench-loss/run.mjs

bench-bw: deps-test build-release
	cd tests/browser && YUNSHI_BIN=$(CURDIR)/target/release/yunshi node bench-bw/run.mjs

# Capacity: yunshi and Janus side by side under yunshi-loadtest (server on core 0, tool on
# core 1, in a network namespace; root). CAP_* settings in bench/capacity.sh.
bench-capacity:
	@scripts/install-deps.sh bench
	$(CARGO) build --release --locked -p yunshi -p yunshi-loadtest
	bench/capacity.sh

# A three-level cascade on loopback: latency per hop, loss, CPU per node (bench/cascade.sh).
bench-cascade:
	@scripts/install-deps.sh test
	$(CARGO) build --release --locked -p yunshi -p yunshi-loadtest
	bench/cascade.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
