# The two commands in the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash

.PHONY: run test bench fuzz deb install-test fmt lint

## Run the whole system locally: relay emulator + gateway + cloud app, embedded defaults.
run:
	@scripts/run.sh

## Install what the tests need (idempotent) and run every test.
test:
	@scripts/test.sh

## The gateway's Debian package: static musl binary, lintian-clean, into dist/.
## `make deb ARCH=arm64` cross-builds it for small ARM boards.
ARCH ?= amd64
deb:
	@scripts/package.sh --arch $(ARCH)

## Install, upgrade and purge the .deb in a booted Debian container (part of `make test`; root).
install-test:
	@scripts/install-test.sh

## Benchmarks against the reference implementations, in the same run.
bench:
	@scripts/bench.sh

## Fuzz every parser of peer bytes (afl.rs, stable toolchain) for FUZZ_SECONDS each (default 300);
## prints executions and crashes per target. FUZZ_TARGETS="pdv sas" picks targets.
fuzz:
	@scripts/fuzz.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
