//! Entering the container's mount namespace without taking the rest of the
//! process along: the work runs on a thread of its own that first unshares
//! its filesystem attributes (setns(CLONE_NEWNS) requires it in a threaded
//! process) and then joins the namespace. The other threads, wasmtime's
//! included, never leave the host's.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{umask, Mode};

use super::target::TargetError;

/// The mount namespace of the container's init `pid`, checked to be another
/// namespace than ours (a pid that is not the container's would be).
pub fn container_mount_ns(pid: i32) -> Result<File, TargetError> {
    let path = format!("/proc/{pid}/ns/mnt");
    let ns = File::open(&path).map_err(|source| TargetError::InitGone { pid, source })?;
    let theirs = ns
        .metadata()
        .map_err(TargetError::io("fstat", &path))?
        .ino();
    let ours = std::fs::metadata(OURS)
        .map_err(TargetError::io("stat", OURS))?
        .ino();
    if theirs == ours {
        return Err(TargetError::SameMountNamespace { pid });
    }
    Ok(ns)
}

const OURS: &str = "/proc/self/ns/mnt";

/// Our own mount namespace, for a createContainer hook, which runc runs
/// inside the container's, as a child of the container's init: the state's
/// `pid` is our parent's (in whatever pid namespace we share with it). That
/// is checked, so that the same work run by hand from the host's namespace
/// cannot change the host.
pub fn own_mount_ns(state_pid: Option<i32>) -> Result<File, TargetError> {
    let parent = nix::unistd::getppid().as_raw();
    if state_pid != Some(parent) {
        return Err(TargetError::NotChildOfInit { state_pid, parent });
    }
    let uid_map = "/proc/self/uid_map";
    let uid_map = std::fs::read_to_string(uid_map).map_err(TargetError::io("reading", uid_map))?;
    if !is_initial_user_ns(&uid_map) {
        return Err(TargetError::UserNamespace);
    }
    File::open(OURS).map_err(TargetError::io("opening", OURS))
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
    work: impl FnOnce() -> Result<T, TargetError> + Send + 'static,
) -> Result<T, TargetError> {
    let call = |call| move |source| TargetError::Namespace { call, source };
    std::thread::Builder::new()
        .name("hookhost-inject".into())
        .spawn(move || {
            unshare(CloneFlags::CLONE_FS).map_err(call("unshare(CLONE_FS)"))?;
            setns(&ns, CloneFlags::CLONE_NEWNS).map_err(call(
                "setns(CLONE_NEWNS) into the container's mount namespace",
            ))?;
            // The thread's own fs attributes now: modes are exactly as planned.
            umask(Mode::empty());
            work()
        })
        .map_err(TargetError::Thread)?
        .join()
        .map_err(|_| TargetError::ThreadPanicked)?
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
