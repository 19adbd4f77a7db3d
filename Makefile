# The commands a person runs. `.ci/run` installs the system packages, then calls these.
CARGO ?= cargo

.PHONY: test lint build demo

## Run every test (unit tests, and end-to-end tests against a real docker-registry).
test:
	$(CARGO) test --locked --all-targets

## Formatting and clippy, warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## Release build of the CLI.
build:
	$(CARGO) build --locked --release

## A local registry seeded with sample images, then a plan and an apply.
demo:
	@echo "make demo: coming soon, with the cleanup engine (issue 3)"
