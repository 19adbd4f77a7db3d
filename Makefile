# The commands a person runs. `.ci/run` installs the system packages, then calls these.
CARGO ?= cargo

.PHONY: deps test lint build demo lint-infra build-lambda deploy bench

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

## cfn-lint and checkov on the SAM template, offline. They live in their own virtualenv
## (target/infra-venv): checkov pins botocore versions that would upset moto.
INFRA_VENV := target/infra-venv
lint-infra:
	@test -x $(INFRA_VENV)/bin/checkov || { python3 -m venv $(INFRA_VENV) && $(INFRA_VENV)/bin/pip install -q --disable-pip-version-check cfn-lint checkov; }
	$(INFRA_VENV)/bin/cfn-lint infra/template.yaml
	$(INFRA_VENV)/bin/checkov -f infra/template.yaml --framework cloudformation --skip-download --quiet --compact

## The Lambda bootstrap for arm64 (Graviton), as the template deploys it: cargo lambda with
## rustup's aarch64 target, else with Debian's rustc-web and its arm64 std (see the script).
build-lambda: deps
	bash scripts/build-lambda.sh

## Deploy with SAM, asking for every parameter (needs AWS credentials; not part of CI).
## `sam build` (BuildMethod rust-cargolambda) runs the same `cargo lambda build --release --arm64
## --bin registry-janitor` as build-lambda, in place, so it finds that build up to date and copies
## only the bootstrap into $(SAM_BUILD); on the Debian route it is pointed at target/arm64 and
## Debian's rustc. `sam deploy` then uploads that, not the repository. SAM is the one on the PATH,
## else its own virtualenv (target/sam-venv). The guided answers go to infra/samconfig.toml.
SAM_VENV := target/sam-venv
SAM ?= $(or $(shell command -v sam 2>/dev/null),$(SAM_VENV)/bin/sam)
SAM_BUILD := target/sam-build
deploy: build-lambda
	@test -x "$(SAM)" || { python3 -m venv $(SAM_VENV) && $(SAM_VENV)/bin/pip install -q --disable-pip-version-check aws-sam-cli; }
	if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then \
		"$(SAM)" build --template-file infra/template.yaml --build-dir $(SAM_BUILD); \
	else \
		CARGO_TARGET_DIR="$(CURDIR)/target/arm64" RUSTC=/usr/bin/rustc \
			"$(SAM)" build --template-file infra/template.yaml --build-dir $(SAM_BUILD); \
	fi
	"$(SAM)" deploy --guided --template-file $(SAM_BUILD)/template.yaml \
		--config-file "$(CURDIR)/infra/samconfig.toml"

## Benchmarks (not part of make test): the planner on 100k manifests, time and peak memory;
## then the registry sweep against a real local registry (BENCHMARKS.md: figures and knobs);
## then queue mode: webhook time to 202, and converging through the queue vs one sweep;
## then ECR (moto): AWS API calls per deleted manifest, the janitor vs a per-digest delete loop.
bench: deps
	$(CARGO) bench --locked --bench plan_scale
	$(CARGO) bench --locked --bench registry_sweep
	$(CARGO) bench --locked --bench queue_mode
	$(CARGO) bench --locked --bench ecr_calls
	$(CARGO) bench --locked --bench in_use_calls
