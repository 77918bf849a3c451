//! Entering the container's mount namespace without taking the rest of the
//! process along: the work runs on a thread of its own that first unshares
//! its filesystem attributes (setns(CLONE_NEWNS) requires it in a threaded
//! process) and then joins the namespace. The other threads, wasmtime's
//! included, never leave the host's.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
/// inside the container's. A guard against running it by hand from the
/// host's: runc has bind-mounted the rootfs onto itself in the container's
/// namespace by then, while on a host it is usually a plain directory. (An
/// overlay rootfs is a mount point on the host as well, so this is a guard
/// against a mistake, not a proof.)
pub fn own_mount_ns(rootfs: &Path) -> Result<File, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    // Field 5 is the mount point (with spaces and the like octal-escaped,
    // which a bundle path rarely has).
    let rootfs_text = rootfs.to_string_lossy();
    if !mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(&*rootfs_text))
    {
        return Err(format!(
            "{} is not a mount point here, so this is not a container's mount namespace: \
             run create-container as a createContainer hook (runc starts those inside the \
             container's namespaces), or use prestart",
            rootfs.display()
        ));
    }
    File::open("/proc/self/ns/mnt").map_err(|e| format!("/proc/self/ns/mnt: {e}"))
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
