//! The host's ldconfig, run on a container's rootfs in a sandbox of its own,
//! as NVIDIA's `update-ldcache` does: ldconfig parses the image's
//! `ld.so.conf` and every ELF file in its library directories, all of them
//! the attacker's, as root.
//!
//! The executor re-executes hookhost (`/proc/self/exe`, the hook's own
//! binary even from inside the container's mount namespace) as the hidden
//! `ldconfig-sandbox` command, with an empty environment. That process:
//!
//! 1. unshares new mount, pid, ipc, network and uts namespaces;
//! 2. makes its mount tree private, so nothing it does propagates back, and
//!    detaches the kernel's file systems (proc, sysfs, cgroup...) mounted
//!    under the rootfs: through `ROOTFS/proc/1/root` a root process escapes
//!    any chroot, and an image link such as `/var/cache/ldconfig ->
//!    /proc/1/root/etc/cron.d` would have ldconfig write its aux cache into
//!    the host;
//! 3. binds the rootfs over itself, recursively `nodev,nosuid`, in that
//!    private mount namespace: image layers may carry device nodes, and
//!    ldconfig opens its temporary cache with `O_CREAT|O_TRUNC|O_NOFOLLOW`,
//!    which an image's block device at `/etc/ld.so.cache~` does not stop; on
//!    a nodev mount the open fails with EACCES whatever the capabilities;
//! 4. sets `no_new_privs` and resource limits, which ldconfig inherits, and
//!    keeps only the capabilities ldconfig needs ([`KEPT_CAPS`]: chroot, and
//!    reading and writing root's files in the image), in the bounding set
//!    too, so that the exec cannot give them back;
//! 5. spawns the host's ldconfig, PID 1 of the new pid namespace (so every
//!    process it might leave behind dies with it), with an empty environment,
//!    `-X -r ROOTFS DIR...`, and kills it after [`WALL_CLOCK`];
//! 6. exits with ldconfig's status, its stderr passed straight through.
//!
//! Why ldconfig's own chroot (`-r`) and not `pivot_root` into the rootfs:
//! after a pivot, executing the host's binary would load its ELF interpreter
//! and libraries from the image (a dynamically linked ldconfig would run the
//! image's `ld.so` as root). With `-r`, the host binary is loaded from the
//! host first and ldconfig chroots before it opens a single image file; the
//! image's `/etc/ld.so.conf` and libraries are only ever read from inside.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};

use caps::{CapSet, Capability};

/// The hidden command the executor runs instead of ldconfig.
pub const COMMAND: &str = "ldconfig-sandbox";

/// ldconfig on a large CUDA image takes well under a second; a hostile
/// image must not hold the container start for longer than this.
pub const WALL_CLOCK: Duration = Duration::from_secs(10);

const MIB: u64 = 1024 * 1024;

/// The limits ldconfig runs under (soft = hard, so it cannot raise them
/// without CAP_SYS_RESOURCE). No RLIMIT_NPROC: root is exempt from it; the
/// pid namespace bounds what ldconfig starts instead.
pub const LIMITS: [(Resource, u64); 6] = [
    // CPU seconds: the same bound as the wall clock, for a busy loop.
    (Resource::RLIMIT_CPU, 10),
    // Address space: ldconfig maps each library whole, one at a time, and
    // vendor libraries (cuDNN, cuBLAS) reach 1 GiB.
    (Resource::RLIMIT_AS, 4096 * MIB),
    // Heap and private writable mappings: the list of libraries.
    (Resource::RLIMIT_DATA, 1024 * MIB),
    // The largest file it may write: the cache is a few MiB on big images.
    (Resource::RLIMIT_FSIZE, 128 * MIB),
    // One directory and one library open at a time, plus stdio.
    (Resource::RLIMIT_NOFILE, 256),
    // No core file of a crashed root process, in the rootfs or elsewhere.
    (Resource::RLIMIT_CORE, 0),
];

/// What ldconfig keeps of root's capabilities: `-r` chroots, and the image's
/// files and directories may belong to other users. Everything else (mknod,
/// mounts, ptrace, raw I/O, module loading...) is dropped.
pub const KEPT_CAPS: [Capability; 3] = [
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_DAC_READ_SEARCH,
];

/// File systems that give a root process a way out of a chroot or into the
/// kernel's state; ldconfig needs none of them.
const KERNEL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "configfs",
    "pstore",
    "efivarfs",
    "fusectl",
    "binfmt_misc",
];

/// The most of ldconfig's stderr that goes into the error line (its end,
/// where the failure is): a hostile image can make it print a lot.
const STDERR_TAIL: usize = 2048;

/// Why ldconfig did not refresh the cache: on the executor's side, the
/// sandbox's failure with ldconfig's (or the sandbox's) own words; on the
/// sandbox's side, the call that failed, with its errno.
#[derive(Debug, thiserror::Error)]
pub enum LdconfigError {
    #[error("{} is not an absolute path", .0.display())]
    NotAbsolute(PathBuf),
    #[error("{call}: {source}")]
    Sys {
        call: String,
        source: std::io::Error,
    },
    #[error("{} failed ({status}): {said}", binary.display())]
    Failed {
        binary: PathBuf,
        status: ExitStatus,
        /// The end of the sandbox's stderr, one line.
        said: String,
    },
    #[error("{} killed after {} s", binary.display(), WALL_CLOCK.as_secs())]
    Killed { binary: PathBuf },
}

/// The error of `call`, whose errno (nix's, rustix's or the standard
/// library's) becomes an `io::Error` source.
fn sys<E: Into<std::io::Error>>(call: impl Into<String>) -> impl FnOnce(E) -> LdconfigError {
    let call = call.into();
    move |e| LdconfigError::Sys {
        call,
        source: e.into(),
    }
}

fn absolute(path: &Path) -> Result<(), LdconfigError> {
    match path.is_absolute() {
        true => Ok(()),
        false => Err(LdconfigError::NotAbsolute(path.to_path_buf())),
    }
}

/// Executor side: runs `binary` on `rootfs` for `dirs` through the sandbox.
pub fn run(binary: &Path, rootfs: &Path, dirs: &[String]) -> Result<(), LdconfigError> {
    absolute(binary)?;
    let out = Command::new("/proc/self/exe")
        .arg(COMMAND)
        .arg("--ldconfig")
        .arg(binary)
        .arg(rootfs)
        .arg("--")
        .args(dirs)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(sys("running the ldconfig sandbox (/proc/self/exe)"))?;
    if out.status.success() {
        return Ok(());
    }
    let tail = &out.stderr[out.stderr.len().saturating_sub(STDERR_TAIL)..];
    let said = String::from_utf8_lossy(tail);
    let said: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Err(LdconfigError::Failed {
        binary: binary.to_path_buf(),
        status: out.status,
        said: said.join("; "),
    })
}

/// Sandbox side: the hidden command's body. Every failure is one line on
/// stderr naming the operation; the exit status is ldconfig's.
pub fn sandbox(binary: &Path, rootfs: &Path, dirs: &[String]) -> ExitCode {
    match isolate(rootfs).and_then(|()| run_ldconfig(binary, rootfs, dirs)) {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("ldconfig sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Steps 1 to 3, on this process: ldconfig inherits all of it.
fn isolate(rootfs: &Path) -> Result<(), LdconfigError> {
    // If the hook dies (runc's hook timeout), so does the sandbox.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    let namespaces = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS;
    unshare(namespaces).map_err(sys("unshare(mnt, pid, ipc, net, uts)"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("making / private (MS_REC | MS_PRIVATE)"))?;
    detach_kernel_fs(rootfs)?;
    rebind_nodev(rootfs)?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    for (resource, limit) in LIMITS {
        setrlimit(resource, limit, limit)
            .map_err(sys(format!("setrlimit({resource:?}, {limit})")))?;
    }
    drop_capabilities()
}

/// Covers the rootfs, in this (private) mount namespace, with a recursive
/// clone of itself that is `nodev,nosuid` on every mount: the attributes are
/// set on the detached clone, then it is attached where ldconfig will look.
fn rebind_nodev(rootfs: &Path) -> Result<(), LdconfigError> {
    use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
    let tree = open_tree(
        rustix::fs::CWD,
        rootfs,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(sys(format!(
        "open_tree({}, CLONE|RECURSIVE)",
        rootfs.display()
    )))?;
    crate::sys::mount_setattr(
        &tree,
        crate::sys::MOUNT_ATTR_NODEV | crate::sys::MOUNT_ATTR_NOSUID,
        true,
    )
    .map_err(sys(format!(
        "mount_setattr(NODEV|NOSUID, recursive) on {}",
        rootfs.display()
    )))?;
    move_mount(
        &tree,
        "",
        rustix::fs::CWD,
        rootfs,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(sys(format!("move_mount onto {}", rootfs.display())))
}

/// Leaves only [`KEPT_CAPS`], in every set: the bounding set bounds what
/// root gets back at exec, and nothing is inherited or ambient.
fn drop_capabilities() -> Result<(), LdconfigError> {
    let kept: caps::CapsHashSet = KEPT_CAPS.into_iter().collect();
    let fail = |what: &str, e: caps::errors::CapsError| LdconfigError::Sys {
        call: format!("dropping capabilities ({what})"),
        source: std::io::Error::other(e),
    };
    for cap in caps::runtime::thread_all_supported() {
        if !kept.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| fail("bounding", e))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable", e))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| fail("effective", e))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| fail("permitted", e))
}

/// Detaches every kernel file system mounted at or below `rootfs`, deepest
/// first, in this (private) mount namespace only.
fn detach_kernel_fs(rootfs: &Path) -> Result<(), LdconfigError> {
    // mountinfo shows resolved paths.
    let rootfs =
        std::fs::canonicalize(rootfs).map_err(sys(format!("resolving {}", rootfs.display())))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(sys("reading /proc/self/mountinfo"))?;
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE ..."
            let point = line.split(' ').nth(4)?;
            let fstype = line.split(" - ").nth(1)?.split(' ').next()?;
            KERNEL_FS.contains(&fstype).then(|| unescape(point))
        })
        .filter(|point| Path::new(point).starts_with(&rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        umount2(point.as_str(), MntFlags::MNT_DETACH)
            .map_err(sys(format!("umount2({point}, MNT_DETACH)")))?;
    }
    Ok(())
}

/// A mountinfo path: space, tab, newline and backslash are octal escapes.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Steps 4 and 5: the host's ldconfig as PID 1 of the new pid namespace.
fn run_ldconfig(
    binary: &Path,
    rootfs: &Path,
    dirs: &[String],
) -> Result<ExitStatus, LdconfigError> {
    absolute(binary)?;
    absolute(rootfs)?;
    let mut child = Command::new(binary)
        // -X: the plan made the links it wanted, ldconfig only writes the
        // cache. -r: it chroots into the rootfs before reading the image.
        .arg("-X")
        .arg("-r")
        .arg(rootfs)
        .args(dirs)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(sys(format!("running {}", binary.display())))?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(sys(format!("waiting for {}", binary.display())))?
        {
            return Ok(status);
        }
        if start.elapsed() >= WALL_CLOCK {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LdconfigError::Killed {
                binary: binary.to_path_buf(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// ldconfig's status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => {
            eprintln!("ldconfig sandbox: ldconfig ended by signal {signal}");
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
        (None, None) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape(r"/run/a\040b/rootfs"), "/run/a b/rootfs");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\"), "/odd\\");
    }
}
