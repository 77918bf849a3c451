# Sourced by tests/example.sh and tests/run.sh: installs what hookhost needs to
# build and test on a fresh Debian machine with rustup (we run as root there).
# Idempotent and quick when everything is already in place.

need_root_for() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: $1 needs root (device nodes for the fake GPU hosts)" >&2
        exit 1
    fi
}

# The plugins are WebAssembly components: Rust's wasm32-wasip2 target makes
# them directly.
if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]]; then
    rustup target add wasm32-wasip2
fi

# componentize-py builds the Python plugin (plugins/rdma): pinned, in a
# virtual environment of its own under target/.
componentize_py=target/componentize-py
if [[ ! -x $componentize_py/bin/componentize-py ]]; then
    python3 -m venv "$componentize_py"
    "$componentize_py/bin/pip" install --quiet componentize-py==0.25.1
fi

# flock (util-linux) serialises plugin builds; mknod (coreutils) makes the
# fake hosts' device nodes; runc and a static busybox run the end-to-end
# containers; cc builds a real shared library for the ldconfig test.
missing=()
command -v flock >/dev/null || missing+=(util-linux)
command -v mknod >/dev/null || missing+=(coreutils)
command -v runc >/dev/null || [[ -x /usr/sbin/runc ]] || missing+=(runc)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
    missing+=(busybox-static)
command -v cc >/dev/null || missing+=(gcc)
# The engine tests (tests/engines.rs) start their own dockerd (docker.io
# brings containerd and ctr) and run podman with private storage.
command -v dockerd >/dev/null || missing+=(docker.io)
command -v podman >/dev/null || missing+=(podman)
if ((${#missing[@]})); then
    need_root_for "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
need_root_for "the test fixtures"
