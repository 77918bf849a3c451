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
# The WIT world the Python plugins are built against (wit/VERSION/).
wit_version=0.2.0

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

# A vendor plugin is a directory plugins/NAME/ holding the crate
# `hookhost-NAME` and its manifest NAME.json.
for manifest in "$repo"/plugins/*/*.json; do
    name=$(basename "$manifest" .json)
    [[ $(basename "$(dirname "$manifest")") == "$name" ]] || continue
    [[ -f $(dirname "$manifest")/Cargo.toml ]] || continue
    install_file "$built/hookhost_${name//-/_}.wasm" "$out/plugins.d/$name.wasm"
    install_file "$manifest" "$out/plugins.d/$name.json"
done
# A Python plugin is a directory plugins/NAME/ holding app.py and NAME.json;
# componentize-py (tests/setup.sh installs it) makes the component. It takes
# half a minute, so it runs only when the sources are newer than the output.
componentize_py=${COMPONENTIZE_PY:-$repo/target/componentize-py/bin/componentize-py}
mkdir -p "$repo/plugins/target/python"
for app in "$repo"/plugins/*/app.py; do
    dir=$(dirname "$app")
    name=$(basename "$dir")
    wasm=$repo/plugins/target/python/$name.wasm
    if [[ ! -f $wasm || $app -nt $wasm || $repo/wit/$wit_version/policy.wit -nt $wasm ]]; then
        if [[ ! -x $componentize_py ]]; then
            echo "build.sh: $componentize_py not found; it builds plugins/$name (run tests/setup.sh, or set COMPONENTIZE_PY)" >&2
            exit 1
        fi
        "$componentize_py" --quiet -d "$repo/wit/$wit_version" -w plugin componentize -p "$dir" app -o "$wasm.tmp"
        mv -f "$wasm.tmp" "$wasm"
    fi
    install_file "$wasm" "$out/plugins.d/$name.wasm"
    install_file "$dir/$name.json" "$out/plugins.d/$name.json"
done

for test_plugin in hostile future newer previous scripted; do
    install_file "$built/hookhost_$test_plugin.wasm" "$out/test-plugins/$test_plugin.wasm"
done

echo "build.sh: plugins installed in $out"
