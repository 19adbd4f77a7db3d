# The commands a person runs. `.ci/run` installs the system packages, then calls these.
CARGO ?= cargo

.PHONY: deps test lint build demo

## Install the system programs the tests and the demo use (docker-registry, skopeo...).
deps:
	bash scripts/install-deps.sh

## Run every test (unit tests, and end-to-end tests against a real docker-registry).
test: deps
	$(CARGO) test --locked --lib --tests

## Formatting and clippy, warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## Release build of the CLI.
build:
	$(CARGO) build --locked --release

## A local registry seeded with sample images, then a plan and an apply.
demo: deps
	$(CARGO) build --locked --quiet --bin registry-janitor
	JANITOR_BIN=target/debug/registry-janitor JANITOR_LOG=warn $(CARGO) run --locked --quiet --example demo
