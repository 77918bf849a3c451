#!/usr/bin/env bash
# The main job on the bundled example: build the host and the plugins, make a
# fake NVIDIA host (2 GPUs), and run `hookhost test` on a fixture bundle,
# checking the plan against the one recorded beside it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/setup.sh

cargo build --release --bins
bash plugins/build.sh target/hookhost

host=$(mktemp -d)
cache=$(mktemp -d)
trap 'rm -rf "$host" "$cache"' EXIT
bash tests/fixtures/make-host.sh nvidia "$host"

hookhost=(target/x86_64-unknown-linux-gnu/release/hookhost --plugins-dir target/hookhost/plugins.d
          --host-root "$host" --cache-dir "$cache")
bundle=tests/fixtures/nvidia/uuid
echo "== hookhost plugins check"
"${hookhost[@]}" plugins check
echo "== hookhost test $bundle  (NVIDIA_VISIBLE_DEVICES=GPU-e2a9…: the second GPU)"
"${hookhost[@]}" test "$bundle"
echo "== hookhost test $bundle --expect $bundle/expected.json"
"${hookhost[@]}" test "$bundle" --expect "$bundle/expected.json"
