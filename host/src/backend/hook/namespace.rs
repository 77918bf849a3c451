//! Entering the container's mount namespace without taking the rest of the
//! process along: the work runs on a thread of its own that first unshares
//! its filesystem attributes (setns(CLONE_NEWNS) requires it in a threaded
//! process) and then joins the namespace. The other threads, wasmtime's
//! included, never leave the host's.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{umask, Mode};

/// The mount namespace of the container's init `pid`, checked to be another
/// namespace than ours (a pid that is not the container's would be).
pub fn container_mount_ns(pid: i32) -> Result<File, String> {
    let path = format!("/proc/{pid}/ns/mnt");
    let ns = File::open(&path)
        .map_err(|e| format!("opening {path}: {e} (has the container's init exited?)"))?;
    let theirs = ns.metadata().map_err(|e| format!("{path}: {e}"))?.ino();
    let ours = std::fs::metadata("/proc/self/ns/mnt")
        .map_err(|e| format!("/proc/self/ns/mnt: {e}"))?
        .ino();
    if theirs == ours {
        return Err(format!(
            "process {pid} shares hookhost's mount namespace, so it is not a starting container's init"
        ));
    }
    Ok(ns)
}

/// Our own mount namespace, for a createContainer hook, which runc runs
/// inside the container's, as a child of the container's init: the state's
/// `pid` is our parent's (in whatever pid namespace we share with it). That
/// is checked, so that the same work run by hand from the host's namespace
/// cannot change the host.
pub fn own_mount_ns(state_pid: Option<i32>) -> Result<File, String> {
    let parent = nix::unistd::getppid().as_raw();
    if state_pid != Some(parent) {
        return Err(format!(
            "create-container must run as a createContainer hook, a child of the container's \
             init (the state's pid {}), but its parent is process {parent}; from the host, \
             use prestart",
            state_pid.map_or("(none)".into(), |p| p.to_string())
        ));
    }
    let uid_map = std::fs::read_to_string("/proc/self/uid_map")
        .map_err(|e| format!("/proc/self/uid_map: {e}"))?;
    if !is_initial_user_ns(&uid_map) {
        return Err(
            "create-container runs in a user namespace (the container's), where device nodes \
             cannot be made nor the devices cgroup changed: use prestart"
                .into(),
        );
    }
    File::open("/proc/self/ns/mnt").map_err(|e| format!("/proc/self/ns/mnt: {e}"))
}

/// Whether a `uid_map` is the initial user namespace's: the whole id range
/// mapped to itself.
fn is_initial_user_ns(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Runs `work` on a new thread inside the mount namespace `ns`.
pub fn in_mount_ns<T: Send + 'static>(
    ns: File,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    std::thread::Builder::new()
        .name("hookhost-inject".into())
        .spawn(move || {
            unshare(CloneFlags::CLONE_FS).map_err(|e| format!("unshare(CLONE_FS): {e}"))?;
            setns(&ns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("entering the container's mount namespace: {e}"))?;
            // The thread's own fs attributes now: modes are exactly as planned.
            umask(Mode::empty());
            work()
        })
        .map_err(|e| format!("spawning the injection thread: {e}"))?
        .join()
        .map_err(|_| "the injection thread panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_map_of_every_id_is_the_initial_user_namespace() {
        assert!(is_initial_user_ns("         0          0 4294967295\n"));
        assert!(!is_initial_user_ns("         0     100000      65536\n"));
        assert!(!is_initial_user_ns(""));
    }
}
