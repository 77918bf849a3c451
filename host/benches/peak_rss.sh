#!/usr/bin/env bash
# Peak resident memory of the hook (issue 13, P6; docs/benchmarks.md):
#
#   P1  `hookhost prestart` for a container no installed plugin is active
#       for (the front alone answers);
#   P3  the prestart hook of a real `runc run` with the NVIDIA policy giving
#       every GPU and capability of the fake NVIDIA host (front, engine,
#       plugin, executor and the ldconfig sandbox: GNU time reports the
#       largest of the hook and the children it waited for).
#
#   bash host/benches/peak_rss.sh [RUNS]     (default 10; needs root, runc,
#                                            busybox-static, cc, GNU time)
#
# Run after `cargo build --release --bins && bash plugins/build.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
bin=$PWD/target/x86_64-unknown-linux-gnu/release
plugins=$PWD/target/hookhost/plugins.d
for need in "$bin/hookhost" "$plugins/nvidia.wasm" /usr/bin/time /bin/busybox; do
    [ -e "$need" ] || { echo "peak_rss: $need is missing" >&2; exit 1; }
done
command -v runc >/dev/null || { echo "peak_rss: runc is missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'runc delete --force "rss-$$" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash tests/fixtures/make-host.sh nvidia "$work/host"
# ldconfig lists only ELF files: the fake libcuda becomes a real one.
echo 'int hookhost_rss(void) { return 0; }' >"$work/lib.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o \
    "$work/host/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14" "$work/lib.c"

# A bundle with a busybox rootfs; $1 = the container's environment (JSON),
# $2 = its prestart hooks (JSON).
bundle() {
    local dir=$work/bundle
    rm -rf "$dir" && mkdir -p "$dir/rootfs/bin" "$dir/rootfs/dev" "$dir/rootfs/proc"
    cp /bin/busybox "$dir/rootfs/bin/" && ln -s busybox "$dir/rootfs/bin/sh"
    cat >"$dir/config.json" <<EOF
{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
 "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh", "-c", "true"],
             "env": $1, "cwd": "/", "noNewPrivileges": true},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755"]}],
 "hooks": {"prestart": $2},
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
           "resources": {"devices": [{"allow": false, "access": "rwm"}]}}}
EOF
}

# The median of the numbers on stdin.
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# P1: the hook with the shipped plugins installed, none active.
bundle '["PATH=/bin"]' '[]'
state="{\"ociVersion\": \"1.0.2\", \"id\": \"rss-$$\", \"status\": \"creating\", \"pid\": $$, \"bundle\": \"$work/bundle\"}"
p1=$(for _ in $(seq "$runs"); do
    echo "$state" | /usr/bin/time -f %M "$bin/hookhost" --plugins-dir "$plugins" \
        --cache-dir "$work/cache" prestart 2>&1 >/dev/null | tail -1
done | median)

# P3: runc run with the hook wrapped in GNU time, the cache warm.
hook() {
    cat <<EOF
[{"path": "/usr/bin/time",
  "args": ["time", "-f", "%M", "-a", "-o", "$work/rss",
           "$bin/hookhost", "--plugins-dir", "$plugins", "--host-root", "$work/host",
           "--cache-dir", "$work/cache", "prestart"]}]
EOF
}
mkdir -p -m 700 "$work/cache"
"$bin/hookhost" --plugins-dir "$plugins" --cache-dir "$work/cache" plugins compile >/dev/null
: >"$work/rss"
for _ in $(seq "$runs"); do
    bundle '["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all"]' "$(hook)"
    runc run --bundle "$work/bundle" "rss-$$" >/dev/null
    # The hook did the work: the plan's last step wrote the linker cache.
    [ -s "$work/bundle/rootfs/etc/ld.so.cache" ] ||
        { echo "peak_rss: the hook left no linker cache" >&2; exit 1; }
done
[ "$(wc -l <"$work/rss")" -eq "$runs" ] ||
    { echo "peak_rss: GNU time did not report every run" >&2; exit 1; }
p3=$(median <"$work/rss")

printf 'peak RSS of the hook, median of %d runs (KiB)\n' "$runs"
printf '%-58s %8s\n' "P1: prestart, shipped plugins installed, none active" "$p1"
printf '%-58s %8s\n' "P3: prestart in runc run, NVIDIA all GPUs, all capabilities" "$p3"
