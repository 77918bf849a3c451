//! Why the container a hook runs for cannot be injected into: the look-ups
//! of step 1 (its init, mount namespace, device cgroup and rootfs), which
//! fail before anything is changed.

use std::path::PathBuf;

/// A failed look-up of the container, with the call, the path and the
/// system's error kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the OCI state has no pid; run hookhost as a prestart or createRuntime hook")]
    NoPid,
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening /proc/{pid}/ns/mnt: {source} (has the container's init exited?)")]
    InitGone { pid: i32, source: std::io::Error },
    #[error(
        "process {pid} shares hookhost's mount namespace, so it is not a starting container's init"
    )]
    SameMountNamespace { pid: i32 },
    #[error(
        "create-container must run as a createContainer hook, a child of the container's init \
         (the state's pid {}), but its parent is process {parent}; from the host, use prestart",
        state_pid.map_or("(none)".into(), |p| p.to_string())
    )]
    NotChildOfInit { state_pid: Option<i32>, parent: i32 },
    #[error(
        "create-container runs in a user namespace (the container's), where device nodes cannot \
         be made nor the devices cgroup changed: use prestart"
    )]
    UserNamespace,
    #[error("{call}: {source}")]
    Namespace {
        call: &'static str,
        source: nix::errno::Errno,
    },
    #[error("spawning the injection thread: {0}")]
    Thread(std::io::Error),
    #[error("the injection thread panicked")]
    ThreadPanicked,
    #[error(
        "process {pid} has no cgroup v1 devices controller in /proc/{pid}/cgroup, and \
         /sys/fs/cgroup is not a cgroup v2 mount"
    )]
    NoDevicesController { pid: String },
    #[error("/sys/fs/cgroup is cgroup v2, but /proc/{pid}/cgroup has no v2 (0::) line")]
    NoCgroupV2 { pid: String },
    #[error(
        "process {pid} is not in {} (a cgroup namespace?); hookhost cannot find the container's \
         device cgroup from here: run it as a prestart hook",
        dir.display()
    )]
    NotInCgroup { pid: String, dir: PathBuf },
    #[error(
        "{} has no devices.allow: is the v1 devices hierarchy mounted at {}?",
        dir.display(),
        mount.display()
    )]
    NoDevicesAllow { dir: PathBuf, mount: PathBuf },
    #[error("opening the rootfs {}: {}", path.display(), crate::error::chain(source))]
    Rootfs {
        path: PathBuf,
        source: pathrs::error::Error,
    },
}

impl TargetError {
    /// The error of `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| TargetError::Io { op, path, source }
    }
}
