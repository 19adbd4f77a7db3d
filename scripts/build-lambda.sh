#!/usr/bin/env bash
# Build the Lambda bootstrap for arm64 (Graviton), as infra/template.yaml deploys it.
#
# With rustup's aarch64-unknown-linux-gnu target installed, that is `cargo lambda build
# --release --arm64`. Where rustup cannot download the target (an offline or mirrored
# machine), Debian's own Rust (`rustc-web`, bookworm-security) can cross-compile: its
# `libstd-rust-web-dev:arm64` package is the aarch64 standard library. cargo-lambda links with
# zig either way. The Debian build goes to target/arm64 so it never disturbs rustup's cache.
set -euo pipefail

target=aarch64-unknown-linux-gnu
if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    cargo lambda build --release --arm64 --bin registry-janitor
    out=target/lambda/registry-janitor/bootstrap
else
    if [ ! -d "/usr/lib/rustlib/$target" ] || [ ! -x /usr/bin/rustc ]; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "rustup has no $target; installing Debian's rustc-web with its arm64 standard library" >&2
        export DEBIAN_FRONTEND=noninteractive
        $sudo dpkg --add-architecture arm64
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq rustc-web libstd-rust-web-dev:arm64 >/dev/null
    fi
    echo "building with $(/usr/bin/rustc --version)" >&2
    CARGO_TARGET_DIR=target/arm64 RUSTC=/usr/bin/rustc \
        cargo lambda build --release --arm64 --bin registry-janitor
    out=target/arm64/lambda/registry-janitor/bootstrap
fi
ls -l "$out"
file "$out" 2>/dev/null || true
