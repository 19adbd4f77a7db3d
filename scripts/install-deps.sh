#!/usr/bin/env bash
# Install the system programs the tests and the demo use, if they are missing:
#   docker-registry  the real CNCF distribution 2.8 registry, started on loopback
#   skopeo           an independent client, to cross-check the registry
#   htpasswd         (apache2-utils) basic-auth users for the auth tests
#   openssl          signs the test token service's bearer tokens
#   cargo-lambda     (PyPI) `cargo lambda watch` emulates the Lambda runtime and function URLs
#   moto[server]     (PyPI) the AWS APIs the function calls, on loopback
set -euo pipefail

pip_missing=()
command -v cargo-lambda >/dev/null || pip_missing+=(cargo-lambda)
command -v moto_server >/dev/null || pip_missing+=("moto[server]")
if [ ${#pip_missing[@]} -gt 0 ]; then
    echo "installing from PyPI: ${pip_missing[*]}" >&2
    python3 -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
    hash -r
fi

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
