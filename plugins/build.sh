#!/usr/bin/env bash
# Builds the plugin components and installs them into OUTDIR (default
# <repo>/target/hookhost):
#   OUTDIR/plugins.d/NAME.wasm + NAME.json   vendor plugins with their manifests
#   OUTDIR/test-plugins/NAME.wasm            components for hookhost's tests
# Safe to run from several processes at once: installs are serialised by a
# lock in OUTDIR and each file appears by rename, never half-written.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/target/hookhost}
target=wasm32-wasip2

if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
    echo "build.sh: the Rust target $target is not installed; run: rustup target add $target" >&2
    exit 1
fi

mkdir -p "$out/plugins.d" "$out/test-plugins"
exec 9>"$out/.build.lock"
flock 9

cargo build --release --target "$target" \
    --manifest-path "$repo/plugins/Cargo.toml" --target-dir "$repo/plugins/target"
built=$repo/plugins/target/$target/release

# install SRC DEST: copy to a temporary name beside DEST, then rename.
install_file() {
    local tmp
    tmp=$(mktemp "$(dirname "$2")/.$(basename "$2").XXXXXX")
    cp "$1" "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$2" || {
        rm -f "$tmp"
        return 1
    }
}

install_file "$built/hookhost_nvidia.wasm" "$out/plugins.d/nvidia.wasm"
install_file "$repo/plugins/nvidia/nvidia.json" "$out/plugins.d/nvidia.json"
for test_plugin in hostile future; do
    install_file "$built/hookhost_$test_plugin.wasm" "$out/test-plugins/$test_plugin.wasm"
done

echo "build.sh: plugins installed in $out"
