#!/usr/bin/env bash
# The whole test suite: the host's unit and integration tests (which build
# the plugins with plugins/build.sh and run them against fixture bundles and
# fake hosts), then the plugins' own unit tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/setup.sh

cargo test --release --workspace
# The plugins' unit tests run natively: without the host's static-linking
# flags (.cargo/config.toml), which cannot make their cdylib crate type.
CARGO_ENCODED_RUSTFLAGS= cargo test --release --manifest-path plugins/Cargo.toml
