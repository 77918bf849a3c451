//! The container's rootfs, changed from inside its mount namespace.
//!
//! Only a target's parent directory is found by path, and only once:
//! resolved in the rootfs (openat2 `RESOLVE_IN_ROOT`, through `pathrs`), so
//! an image's symlink can point anywhere and still lands inside. From there
//! on everything is done through file descriptors held from creation to
//! undo: the node is made relative to its parent's fd, checked through its
//! own fd, a bind's attributes are set on the detached mount before it is
//! attached, and an undo removes exactly the inode it made (or leaves a
//! changed entry alone). A writer outside the container that swaps a
//! directory for a symlink mid-way can make a step fail, never land
//! elsewhere.
//!
//! New things never replace what the image has: nodes, links and
//! directories are created exclusively, files are written under a temporary
//! name and renamed into place with `RENAME_NOREPLACE`. What an earlier
//! start of the same rootfs left (the same device node, link, or file) is
//! accepted as it is and not undone.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{dev_t, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};
use pathrs::Root;

use super::target::TargetError;
use super::{Container, Device, Node, Reason};
use crate::error::is_enoent;
use crate::plan::DeviceType;
use crate::sys;

/// Why a change to the rootfs failed: the call, what it was given and the
/// errno, or what the image has in the way.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{call} {arg}: {errno}")]
    Sys {
        call: &'static str,
        arg: String,
        errno: Errno,
    },
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
    #[error("resolving {path} in the rootfs: {}", super::chain(source))]
    Resolve {
        path: String,
        source: pathrs::error::Error,
    },
    /// Something the image (or a writer racing the hook) put in the way.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Ldconfig(#[from] super::ldconfig::LdconfigError),
    #[error("{error} (and undoing it failed: {undo})")]
    UndoFailed {
        error: Box<RootfsError>,
        undo: Box<RootfsError>,
    },
}

/// The error of system call `call` on `arg`.
fn sys(call: &'static str, arg: impl std::fmt::Display) -> impl FnOnce(Errno) -> RootfsError {
    let arg = arg.to_string();
    move |errno| RootfsError::Sys { call, arg, errno }
}

fn io(op: String, source: std::io::Error) -> RootfsError {
    RootfsError::Io { op, source }
}

fn refused(what: &str) -> RootfsError {
    RootfsError::Refused(what.to_string())
}

/// The calls of the rootfs work that need privilege (CAP_MKNOD, CAP_CHOWN,
/// CAP_SYS_ADMIN), and only those: everything else (mkdirat, symlinkat,
/// openat, renameat2, unlinkat, fstatat) is done for real, so a fake of this
/// trait runs the rest of the code against a real rootfs without root.
/// Each method is one system call; its caller names the call in its error.
pub trait Privileged {
    /// `mknodat(dir, name, kind | mode, dev)`.
    fn mknod(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        kind: SFlag,
        mode: Mode,
        dev: dev_t,
    ) -> Result<(), Errno>;
    /// Whether the node `st` describes is the device `kind` `dev`. It
    /// belongs here with `mknod`: a fake's device is not a real one, and
    /// only the fake knows which of its inodes stands for which device.
    fn is_device(&self, st: &FileStat, kind: SFlag, dev: dev_t) -> bool;
    /// `fchownat(node, "", uid, gid, AT_EMPTY_PATH)`.
    fn chown(&self, node: &OwnedFd, uid: u32, gid: u32) -> Result<(), Errno>;
    /// `mount_setattr` on the detached tree (not recursive).
    fn set_attrs(&self, tree: &OwnedFd, attrs: u64) -> Result<(), Errno>;
    /// `move_mount` of the detached tree onto `point`, both by fd.
    fn attach(&self, tree: &OwnedFd, point: &OwnedFd) -> Result<(), Errno>;
    /// `umount2(MNT_DETACH)` of the mount attached from `tree`.
    fn detach(&self, tree: &OwnedFd) -> Result<(), Errno>;
}

/// The real system calls.
pub struct System;

impl Privileged for System {
    fn mknod(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        kind: SFlag,
        mode: Mode,
        dev: dev_t,
    ) -> Result<(), Errno> {
        nix::sys::stat::mknodat(dir, name, kind, mode, dev)
    }

    fn is_device(&self, st: &FileStat, want: SFlag, dev: dev_t) -> bool {
        kind(st) == want && st.st_rdev == dev
    }

    fn chown(&self, node: &OwnedFd, uid: u32, gid: u32) -> Result<(), Errno> {
        nix::unistd::fchownat(
            node,
            "",
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            AtFlags::AT_EMPTY_PATH,
        )
    }

    fn set_attrs(&self, tree: &OwnedFd, attrs: u64) -> Result<(), Errno> {
        sys::mount_setattr(tree, attrs, false)
    }

    fn attach(&self, tree: &OwnedFd, point: &OwnedFd) -> Result<(), Errno> {
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            point.as_fd(),
            "",
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| Errno::from_raw(e.raw_os_error()))
    }

    fn detach(&self, tree: &OwnedFd) -> Result<(), Errno> {
        // The clone's own fd names exactly the mount we attached.
        nix::mount::umount2(
            format!("/proc/self/fd/{}", tree.as_raw_fd()).as_str(),
            nix::mount::MntFlags::MNT_DETACH,
        )
    }
}

pub struct Rootfs<P: Privileged = System> {
    root: Root,
    path: PathBuf,
    sys: P,
}

/// What one creation left behind, held by fd: undoing it looks no path up.
#[derive(Debug, Default)]
pub struct Made {
    /// Parent directories made on the way, outermost first.
    parents: Vec<Entry>,
    /// The node at the target, when we made it (an identical one that was
    /// already there is kept).
    node: Option<Entry>,
    /// The bind attached over the target: the `open_tree` clone itself.
    mount: Option<OwnedFd>,
}

/// A directory entry we made: the directory, the name in it, and the inode
/// the name had when we made it.
#[derive(Debug)]
struct Entry {
    dir: OwnedFd,
    name: OsString,
    inode: OwnedFd,
}

impl Entry {
    /// Removes the entry if it still names the inode we made.
    fn remove(&self) -> Result<(), RootfsError> {
        let now = fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys("fstatat", self.name.display()))?;
        let made = fstat(&self.inode).map_err(sys("fstat", self.name.display()))?;
        if (now.st_dev, now.st_ino) != (made.st_dev, made.st_ino) {
            return Err(RootfsError::Refused(format!(
                "{} was replaced since hookhost made it; left in place",
                self.name.display()
            )));
        }
        let how = if kind(&now) == SFlag::S_IFDIR {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        unlinkat(&self.dir, self.name.as_os_str(), how)
            .map_err(sys("unlinkat", self.name.display()))
    }
}

impl Rootfs {
    pub fn open(path: &Path) -> Result<Self, TargetError> {
        Rootfs::with(path, System)
    }
}

impl<P: Privileged> Rootfs<P> {
    /// The rootfs at `path`, its privileged calls made through `sys`.
    pub fn with(path: &Path, sys: P) -> Result<Self, TargetError> {
        let root = Root::open(path).map_err(|source| TargetError::Rootfs {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Rootfs {
            root,
            path: path.to_path_buf(),
            sys,
        })
    }

    /// The parent directory of `at`, by fd: resolved in the rootfs where it
    /// exists, made one level at a time (0755) where it does not, each level
    /// recorded in `made` so an undo removes exactly those.
    fn parent(&self, at: &Path, made: &mut Vec<Entry>) -> Result<OwnedFd, RootfsError> {
        let parent = at.parent().unwrap_or(Path::new("/"));
        let mut missing: Vec<&OsStr> = Vec::new();
        let mut existing = parent;
        let mut dir: OwnedFd = loop {
            match self.root.resolve(existing) {
                Ok(handle) => break handle.into(),
                Err(e) if is_enoent(&e) => {
                    missing.push(existing.file_name().unwrap_or_default());
                    existing = existing.parent().unwrap_or(Path::new("/"));
                }
                Err(source) => {
                    return Err(RootfsError::Resolve {
                        path: existing.display().to_string(),
                        source,
                    })
                }
            }
        };
        if kind(&fstat(&dir).map_err(sys("fstat", existing.display()))?) != SFlag::S_IFDIR {
            return Err(RootfsError::Refused(format!(
                "{} is not a directory in the image",
                existing.display()
            )));
        }
        for name in missing.into_iter().rev() {
            mkdirat(&dir, name, Mode::from_bits_truncate(0o755))
                .map_err(sys("mkdirat", name.display()))?;
            let entry = entry(&dir, name, OFlag::O_DIRECTORY)?;
            let next = dup(&entry.inode)?;
            made.push(entry);
            dir = next;
        }
        Ok(dir)
    }

    fn directory(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        mode: u32,
    ) -> Result<Option<Entry>, RootfsError> {
        match existing(dir, name)? {
            Some(st) if kind(&st) == SFlag::S_IFDIR => Ok(None),
            Some(_) => Err(refused(
                "the image has something other than a directory there",
            )),
            None => {
                mkdirat(dir, name, Mode::from_bits_truncate(mode))
                    .map_err(sys("mkdirat", name.display()))?;
                entry(dir, name, OFlag::O_DIRECTORY).map(Some)
            }
        }
    }

    fn device(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        d: &Device,
        made: &mut Made,
    ) -> Result<(), RootfsError> {
        let kind_wanted = match d.kind {
            DeviceType::Char => SFlag::S_IFCHR,
            DeviceType::Block => SFlag::S_IFBLK,
        };
        let dev = nix::sys::stat::makedev(d.major.into(), d.minor.into());
        let is_ours = |st: &FileStat| self.sys.is_device(st, kind_wanted, dev);
        if let Some(st) = existing(dir, name)? {
            return if is_ours(&st) {
                Ok(())
            } else {
                Err(RootfsError::Refused(format!(
                    "something else is already there (wanted {} {}:{})",
                    d.kind.letter(),
                    d.major,
                    d.minor
                )))
            };
        }
        self.sys
            .mknod(
                dir,
                name,
                kind_wanted,
                Mode::from_bits_truncate(d.mode),
                dev,
            )
            .map_err(sys("mknodat", name.display()))?;
        let node = made.node.insert(entry(dir, name, OFlag::empty())?);
        if !is_ours(&fstat(&node.inode).map_err(sys("fstat", name.display()))?) {
            return Err(refused(
                "the new node was replaced before it could be owned",
            ));
        }
        self.sys
            .chown(&node.inode, d.uid, d.gid)
            .map_err(sys("fchownat", format!("{}:{}", d.uid, d.gid)))
    }

    fn symlink(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        target: &str,
    ) -> Result<Option<Entry>, RootfsError> {
        if let Some(st) = existing(dir, name)? {
            // A link an earlier start of this rootfs made is kept.
            let same = kind(&st) == SFlag::S_IFLNK
                && nix::fcntl::readlinkat(dir, name).is_ok_and(|t| t == OsStr::new(target));
            return if same {
                Ok(None)
            } else {
                Err(RootfsError::Refused(format!(
                    "something else is already there (wanted a symlink to {target})"
                )))
            };
        }
        symlinkat(target, dir, name).map_err(sys("symlinkat", name.display()))?;
        entry(dir, name, OFlag::empty()).map(Some)
    }

    /// A new file with `source`'s bytes, or the identical file an earlier
    /// start of this rootfs left.
    fn write(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        mut source: Box<dyn Read + Send>,
        mode: u32,
    ) -> Result<Option<Entry>, RootfsError> {
        // A copy is the container's own file: it never carries setuid or
        // setgid (a 4755 host tool would be a root shell for any user in the
        // container). File capabilities live in xattrs, which are not copied.
        let mode = mode & 0o1777;
        if let Some(st) = existing(dir, name)? {
            return if kind(&st) == SFlag::S_IFREG
                && st.st_mode & 0o7777 == mode
                && same_content(dir, name, &mut source)?
            {
                Ok(None)
            } else {
                Err(refused("something else is already there"))
            };
        }
        let temp = OsString::from(format!(
            ".hookhost-{}-{}",
            std::process::id(),
            name.display()
        ));
        let fd = openat(
            dir,
            temp.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(sys("openat(O_CREAT|O_EXCL)", temp.display()))?;
        let mut file = File::from(fd);
        let written = std::io::copy(&mut source, &mut file)
            .map_err(|source| RootfsError::Io {
                op: format!("copying into {}", temp.display()),
                source,
            })
            .and_then(|_| {
                nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))
                    .map_err(sys("fchmod", format!("{mode:04o}")))
            })
            .and_then(|()| {
                renameat2(
                    dir,
                    temp.as_os_str(),
                    dir,
                    name,
                    RenameFlags::RENAME_NOREPLACE,
                )
                .map_err(sys("renameat2(RENAME_NOREPLACE)", name.display()))
            });
        if let Err(e) = written {
            let _ = unlinkat(dir, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        Ok(Some(Entry {
            dir: dup(dir)?,
            name: name.to_owned(),
            inode: file.into(),
        }))
    }

    /// Mounts the detached clone `tree` over `name`: read-only, nosuid and
    /// nodev from the moment it is attached (and a file's also nosymfollow;
    /// a directory's symlinks must keep working: a vendor tree such as
    /// /opt/xilinx/xrt is full of soname links, and they resolve inside the
    /// container's root like any of its own).
    fn bind(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        tree: OwnedFd,
        directory: bool,
        made: &mut Made,
    ) -> Result<(), RootfsError> {
        let want = if directory {
            SFlag::S_IFDIR
        } else {
            SFlag::S_IFREG
        };
        let point = match openat(
            dir,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                if directory {
                    mkdirat(dir, name, Mode::from_bits_truncate(0o755))
                        .map_err(sys("mkdirat", name.display()))?;
                } else {
                    openat(
                        dir,
                        name,
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map_err(sys("openat(O_CREAT|O_EXCL)", name.display()))?;
                }
                dup(&made.node.insert(entry(dir, name, OFlag::empty())?).inode)?
            }
            Err(e) => return Err(sys("openat(O_PATH)", name.display())(e)),
        };
        if kind(&fstat(&point).map_err(sys("fstat", name.display()))?) != want {
            return Err(RootfsError::Refused(format!(
                "the image has something other than a {} there",
                if directory { "directory" } else { "file" }
            )));
        }
        let mut attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        if !directory {
            attrs |= sys::MOUNT_ATTR_NOSYMFOLLOW;
        }
        self.sys.set_attrs(&tree, attrs).map_err(sys(
            "mount_setattr(RDONLY|NOSUID|NODEV)",
            "the detached bind",
        ))?;
        self.sys
            .attach(&tree, &point)
            .map_err(sys("move_mount", name.display()))?;
        made.mount = Some(tree);
        Ok(())
    }

    fn make(&self, at: &Path, node: Node, made: &mut Made) -> Result<(), RootfsError> {
        if let Node::Ldconfig { binary, dirs } = node {
            // Not a node: the host's ldconfig in a sandbox of its own
            // (see super::ldconfig).
            return Ok(super::ldconfig::run(&binary, &self.path, &dirs)?);
        }
        let name = at
            .file_name()
            .ok_or_else(|| refused("the rootfs itself is not a target"))?;
        let dir = self.parent(at, &mut made.parents)?;
        match node {
            Node::Directory { mode } => made.node = self.directory(&dir, name, mode)?,
            Node::Device(d) => self.device(&dir, name, &d, made)?,
            Node::Symlink { target } => made.node = self.symlink(&dir, name, &target)?,
            Node::Write { source, mode } => made.node = self.write(&dir, name, source, mode)?,
            Node::Bind { tree, directory } => self.bind(&dir, name, tree, directory, made)?,
            Node::Ldconfig { .. } => unreachable!("run above"),
        }
        Ok(())
    }
}

impl<P: Privileged> Container for Rootfs<P> {
    type Made = Made;

    fn create(&mut self, at: &Path, node: Node) -> Result<Made, Reason> {
        let mut made = Made::default();
        match self.make(at, node, &mut made) {
            Ok(()) => Ok(made),
            Err(error) => {
                // Leave nothing behind, not even the parents made for it.
                match self.remove(made) {
                    Ok(()) => Err(error.into()),
                    Err(undo) => Err(RootfsError::UndoFailed {
                        error: Box::new(error),
                        undo: Box::new(undo),
                    }
                    .into()),
                }
            }
        }
    }

    fn undo(&mut self, made: Made) -> Result<(), Reason> {
        self.remove(made).map_err(Into::into)
    }
}

impl<P: Privileged> Rootfs<P> {
    /// Undoes one creation: unmount, remove the node, remove the parents.
    fn remove(&self, made: Made) -> Result<(), RootfsError> {
        if let Some(tree) = &made.mount {
            self.sys
                .detach(tree)
                .map_err(sys("umount2(MNT_DETACH)", "the attached bind"))?;
        }
        if let Some(node) = &made.node {
            node.remove()?;
        }
        for parent in made.parents.iter().rev() {
            parent.remove()?;
        }
        Ok(())
    }
}

/// What is at `name` in `dir` now (not following a link), if anything.
fn existing(dir: &OwnedFd, name: &OsStr) -> Result<Option<FileStat>, RootfsError> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(sys("fstatat", name.display())(e)),
    }
}

/// The entry we just made at `name`, opened without following it.
fn entry(dir: &OwnedFd, name: &OsStr, extra: OFlag) -> Result<Entry, RootfsError> {
    let inode = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | extra,
        Mode::empty(),
    )
    .map_err(sys("openat(O_PATH|O_NOFOLLOW)", name.display()))?;
    Ok(Entry {
        dir: dup(dir)?,
        name: name.to_owned(),
        inode,
    })
}

/// Whether the regular file at `name` holds exactly `source`'s bytes. It is
/// opened without following a link and without blocking, and read only once
/// its fd shows a regular file.
fn same_content(
    dir: &OwnedFd,
    name: &OsStr,
    source: &mut Box<dyn Read + Send>,
) -> Result<bool, RootfsError> {
    let path = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("openat(O_PATH|O_NOFOLLOW)", name.display()))?;
    if kind(&fstat(&path).map_err(sys("fstat", name.display()))?) != SFlag::S_IFREG {
        return Ok(false);
    }
    let mut existing = File::open(format!("/proc/self/fd/{}", path.as_raw_fd()))
        .map_err(|source| io(format!("reopening the existing {}", name.display()), source))?;
    let (mut a, mut b) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    loop {
        let n = read_full(source, &mut a).map_err(|e| io("reading the source".into(), e))?;
        let m = read_full(&mut existing, &mut b[..n.max(1)])
            .map_err(|e| io(format!("reading the existing {}", name.display()), e))?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end: a short read mid-file is no end.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, RootfsError> {
    fd.try_clone().map_err(|source| io("dup".into(), source))
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

#[cfg(test)]
mod tests {
    //! The create and undo order of each kind of node, against a real
    //! rootfs in a temporary directory, with the privileged calls recorded
    //! by [`Fake`] instead of made: none of these tests needs root.

    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use nix::sys::stat::makedev;
    use tempfile::TempDir;

    use super::*;
    use crate::backend::hook::{run_steps, Step};

    /// One privileged call, its fds shown as the paths they name: the
    /// rootfs's as container paths, the host's as `host:/…`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Mknod {
            path: String,
            kind: SFlag,
            mode: u32,
            dev: dev_t,
        },
        Chown {
            path: String,
            uid: u32,
            gid: u32,
        },
        SetAttrs {
            tree: String,
            attrs: u64,
        },
        Attach {
            tree: String,
            point: String,
        },
        /// `point` is where the tree was attached, as it is when detached:
        /// a point already unlinked shows as `… (deleted)`.
        Detach {
            tree: String,
            point: String,
        },
    }

    /// Records the privileged calls instead of making them. Its "device" is
    /// a regular file, and it remembers which inode stands for which device
    /// so that `is_device` answers for it as the kernel would for a real
    /// node. Its attach mounts nothing.
    struct Fake {
        rootfs: PathBuf,
        host: PathBuf,
        /// The call (`"mknod"`, `"chown"`, …) that fails with EPERM.
        fail: Option<&'static str>,
        calls: RefCell<Vec<Call>>,
        devices: RefCell<HashMap<(u64, u64), (SFlag, dev_t)>>,
        /// Attached trees (by fd number) and their mount points.
        mounts: RefCell<HashMap<i32, OwnedFd>>,
    }

    impl Fake {
        fn path(&self, fd: &impl AsRawFd) -> String {
            let at = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
            let at = at.to_string_lossy();
            let rootfs = self.rootfs.to_string_lossy();
            let host = self.host.to_string_lossy();
            if let Some(rest) = at.strip_prefix(&*rootfs) {
                if rest.is_empty() {
                    "/".into()
                } else {
                    rest.into()
                }
            } else if let Some(rest) = at.strip_prefix(&*host) {
                format!("host:{rest}")
            } else {
                at.into_owned()
            }
        }

        fn record(&self, name: &'static str, call: Call) -> Result<(), Errno> {
            self.calls.borrow_mut().push(call);
            if self.fail == Some(name) {
                Err(Errno::EPERM)
            } else {
                Ok(())
            }
        }
    }

    impl Privileged for Fake {
        fn mknod(
            &self,
            dir: &OwnedFd,
            name: &OsStr,
            kind: SFlag,
            mode: Mode,
            dev: dev_t,
        ) -> Result<(), Errno> {
            let dir_path = self.path(dir);
            self.record(
                "mknod",
                Call::Mknod {
                    path: format!("{}/{}", dir_path.trim_end_matches('/'), name.display()),
                    kind,
                    mode: mode.bits(),
                    dev,
                },
            )?;
            let fd = openat(
                dir,
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
                mode,
            )?;
            let st = fstat(&fd)?;
            self.devices
                .borrow_mut()
                .insert((st.st_dev, st.st_ino), (kind, dev));
            Ok(())
        }

        fn is_device(&self, st: &FileStat, kind: SFlag, dev: dev_t) -> bool {
            self.devices.borrow().get(&(st.st_dev, st.st_ino)) == Some(&(kind, dev))
        }

        fn chown(&self, node: &OwnedFd, uid: u32, gid: u32) -> Result<(), Errno> {
            let path = self.path(node);
            self.record("chown", Call::Chown { path, uid, gid })
        }

        fn set_attrs(&self, tree: &OwnedFd, attrs: u64) -> Result<(), Errno> {
            let tree = self.path(tree);
            self.record("set_attrs", Call::SetAttrs { tree, attrs })
        }

        fn attach(&self, tree: &OwnedFd, point: &OwnedFd) -> Result<(), Errno> {
            let call = Call::Attach {
                tree: self.path(tree),
                point: self.path(point),
            };
            self.record("attach", call)?;
            let point = point.try_clone().map_err(|_| Errno::EBADF)?;
            self.mounts.borrow_mut().insert(tree.as_raw_fd(), point);
            Ok(())
        }

        fn detach(&self, tree: &OwnedFd) -> Result<(), Errno> {
            let point = self
                .mounts
                .borrow_mut()
                .remove(&tree.as_raw_fd())
                .ok_or(Errno::EINVAL)?;
            let call = Call::Detach {
                tree: self.path(tree),
                point: self.path(&point),
            };
            self.record("detach", call)
        }
    }

    /// A rootfs and a host directory side by side in a temporary directory.
    struct World {
        _dir: TempDir,
        rootfs: PathBuf,
        host: PathBuf,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let (rootfs, host) = (base.join("rootfs"), base.join("host"));
        std::fs::create_dir(&rootfs).unwrap();
        std::fs::create_dir(&host).unwrap();
        World {
            _dir: dir,
            rootfs,
            host,
        }
    }

    impl World {
        fn open(&self, fail: Option<&'static str>) -> Rootfs<Fake> {
            let fake = Fake {
                rootfs: self.rootfs.clone(),
                host: self.host.clone(),
                fail,
                calls: RefCell::default(),
                devices: RefCell::default(),
                mounts: RefCell::default(),
            };
            Rootfs::with(&self.rootfs, fake).unwrap()
        }

        /// Every entry in the rootfs, sorted: directories end in `/`,
        /// links show their target.
        fn tree(&self) -> Vec<String> {
            fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    let rel = path.strip_prefix(root).unwrap().display().to_string();
                    let meta = std::fs::symlink_metadata(&path).unwrap();
                    if meta.is_dir() {
                        out.push(format!("{rel}/"));
                        walk(root, &path, out);
                    } else if meta.is_symlink() {
                        let target = std::fs::read_link(&path).unwrap();
                        out.push(format!("{rel} -> {}", target.display()));
                    } else {
                        out.push(rel);
                    }
                }
            }
            let mut out = Vec::new();
            walk(&self.rootfs, &self.rootfs, &mut out);
            out.sort();
            out
        }

        fn mkdir(&self, at: &str) {
            std::fs::create_dir_all(self.rootfs.join(at)).unwrap();
        }

        /// A host file or directory, opened as a stand-in for an
        /// `open_tree` clone.
        fn tree_of(&self, name: &str, directory: bool) -> OwnedFd {
            let path = self.host.join(name);
            if directory {
                std::fs::create_dir(&path).unwrap();
            } else {
                std::fs::write(&path, b"host").unwrap();
            }
            File::open(path).unwrap().into()
        }
    }

    fn calls(rootfs: &Rootfs<Fake>) -> Vec<Call> {
        rootfs.sys.calls.borrow().clone()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn card0() -> Node {
        Node::Device(Device {
            kind: DeviceType::Char,
            major: 226,
            minor: 0,
            mode: 0o660,
            uid: 0,
            gid: 44,
        })
    }

    fn write(content: &[u8], mode: u32) -> Node {
        Node::Write {
            source: Box::new(std::io::Cursor::new(content.to_vec())),
            mode,
        }
    }

    fn symlink(target: &str) -> Node {
        Node::Symlink {
            target: target.into(),
        }
    }

    const RO: u64 = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;

    #[test]
    fn directory_makes_missing_parents_outermost_first_and_no_privileged_call() {
        let w = world();
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/a/b/c"), Node::Directory { mode: 0o700 })
            .unwrap();
        let parents: Vec<_> = made.parents.iter().map(|e| e.name.clone()).collect();
        assert_eq!(parents, ["a", "b"]);
        assert!(made.node.is_some());
        assert_eq!(w.tree(), strings(&["a/", "a/b/", "a/b/c/"]));
        let mode = std::fs::metadata(w.rootfs.join("a/b/c"))
            .unwrap()
            .permissions();
        assert_eq!(mode.mode() & 0o7777, 0o700);
        assert_eq!(calls(&r), []);
    }

    #[test]
    fn undo_of_a_directory_removes_it_and_only_the_parents_made_for_it() {
        let w = world();
        w.mkdir("a");
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/a/b/c/d"), Node::Directory { mode: 0o755 })
            .unwrap();
        assert_eq!(w.tree(), strings(&["a/", "a/b/", "a/b/c/", "a/b/c/d/"]));
        // Removing a parent before what is in it would fail: only the
        // innermost-first order leaves exactly the image's `a`.
        r.undo(made).unwrap();
        assert_eq!(w.tree(), strings(&["a/"]));
    }

    #[test]
    fn an_existing_directory_is_kept_and_not_undone() {
        let w = world();
        w.mkdir("a/b");
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/a/b"), Node::Directory { mode: 0o755 })
            .unwrap();
        assert!(made.node.is_none() && made.parents.is_empty());
        r.undo(made).unwrap();
        assert_eq!(w.tree(), strings(&["a/", "a/b/"]));
    }

    #[test]
    fn device_node_is_made_then_owned_through_its_fd() {
        let w = world();
        w.mkdir("dev");
        let mut r = w.open(None);
        r.create(Path::new("/dev/dri/card0"), card0()).unwrap();
        assert_eq!(
            calls(&r),
            [
                Call::Mknod {
                    path: "/dev/dri/card0".into(),
                    kind: SFlag::S_IFCHR,
                    mode: 0o660,
                    dev: makedev(226, 0),
                },
                Call::Chown {
                    path: "/dev/dri/card0".into(),
                    uid: 0,
                    gid: 44,
                },
            ]
        );
        assert_eq!(w.tree(), strings(&["dev/", "dev/dri/", "dev/dri/card0"]));
    }

    #[test]
    fn undo_of_a_device_node_removes_it_and_its_new_parents_with_no_privileged_call() {
        let w = world();
        w.mkdir("dev");
        let mut r = w.open(None);
        let made = r.create(Path::new("/dev/dri/card0"), card0()).unwrap();
        r.undo(made).unwrap();
        assert_eq!(w.tree(), strings(&["dev/"]));
        assert_eq!(calls(&r).len(), 2, "undo made a privileged call");
    }

    #[test]
    fn symlink_is_made_and_undone_with_no_privileged_call() {
        let w = world();
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/usr/lib/libx.so"), symlink("libx.so.1"))
            .unwrap();
        assert_eq!(
            w.tree(),
            strings(&["usr/", "usr/lib/", "usr/lib/libx.so -> libx.so.1"])
        );
        r.undo(made).unwrap();
        assert_eq!(w.tree(), Vec::<String>::new());
        assert_eq!(calls(&r), []);
    }

    #[test]
    fn write_drops_setuid_and_leaves_no_temporary_and_undo_removes_it() {
        let w = world();
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/opt/bin/tool"), write(b"#!/bin/sh\n", 0o4755))
            .unwrap();
        assert_eq!(w.tree(), strings(&["opt/", "opt/bin/", "opt/bin/tool"]));
        let file = w.rootfs.join("opt/bin/tool");
        assert_eq!(std::fs::read(&file).unwrap(), b"#!/bin/sh\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
        r.undo(made).unwrap();
        assert_eq!(w.tree(), Vec::<String>::new());
        assert_eq!(calls(&r), []);
    }

    #[test]
    fn bind_of_a_file_is_read_only_and_nosymfollow_before_it_is_attached() {
        let w = world();
        let mut r = w.open(None);
        let tree = w.tree_of("tool", false);
        r.create(
            Path::new("/usr/bin/tool"),
            Node::Bind {
                tree,
                directory: false,
            },
        )
        .unwrap();
        assert_eq!(
            calls(&r),
            [
                Call::SetAttrs {
                    tree: "host:/tool".into(),
                    attrs: RO | sys::MOUNT_ATTR_NOSYMFOLLOW,
                },
                Call::Attach {
                    tree: "host:/tool".into(),
                    point: "/usr/bin/tool".into(),
                },
            ]
        );
        // The mount point is a new, empty file.
        assert_eq!(w.tree(), strings(&["usr/", "usr/bin/", "usr/bin/tool"]));
        assert_eq!(std::fs::read(w.rootfs.join("usr/bin/tool")).unwrap(), b"");
    }

    #[test]
    fn undo_of_a_bind_detaches_it_before_removing_its_mount_point_and_parents() {
        let w = world();
        let mut r = w.open(None);
        let tree = w.tree_of("tool", false);
        let made = r
            .create(
                Path::new("/usr/bin/tool"),
                Node::Bind {
                    tree,
                    directory: false,
                },
            )
            .unwrap();
        r.undo(made).unwrap();
        // The point was still there when the bind was detached.
        assert_eq!(
            calls(&r).last(),
            Some(&Call::Detach {
                tree: "host:/tool".into(),
                point: "/usr/bin/tool".into(),
            })
        );
        assert_eq!(w.tree(), Vec::<String>::new());
    }

    #[test]
    fn bind_of_a_directory_keeps_its_symlinks_followable_and_undo_removes_its_new_point() {
        let w = world();
        let mut r = w.open(None);
        let tree = w.tree_of("xrt", true);
        let made = r
            .create(
                Path::new("/opt/xilinx/xrt"),
                Node::Bind {
                    tree,
                    directory: true,
                },
            )
            .unwrap();
        assert_eq!(
            calls(&r),
            [
                Call::SetAttrs {
                    tree: "host:/xrt".into(),
                    attrs: RO,
                },
                Call::Attach {
                    tree: "host:/xrt".into(),
                    point: "/opt/xilinx/xrt".into(),
                },
            ]
        );
        assert_eq!(
            w.tree(),
            strings(&["opt/", "opt/xilinx/", "opt/xilinx/xrt/"])
        );
        r.undo(made).unwrap();
        assert_eq!(calls(&r).len(), 3);
        assert!(matches!(calls(&r)[2], Call::Detach { .. }));
        assert_eq!(w.tree(), Vec::<String>::new());
    }

    #[test]
    fn bind_over_an_existing_directory_is_detached_and_the_directory_kept() {
        let w = world();
        w.mkdir("opt/xrt");
        let mut r = w.open(None);
        let tree = w.tree_of("xrt", true);
        let made = r
            .create(
                Path::new("/opt/xrt"),
                Node::Bind {
                    tree,
                    directory: true,
                },
            )
            .unwrap();
        assert!(made.node.is_none() && made.mount.is_some());
        r.undo(made).unwrap();
        assert_eq!(
            calls(&r).last(),
            Some(&Call::Detach {
                tree: "host:/xrt".into(),
                point: "/opt/xrt".into(),
            })
        );
        assert_eq!(w.tree(), strings(&["opt/", "opt/xrt/"]));
    }

    #[test]
    fn bind_over_something_of_the_other_kind_is_refused_before_any_privileged_call() {
        let w = world();
        w.mkdir("opt/xrt");
        let mut r = w.open(None);
        let tree = w.tree_of("tool", false);
        let err = r
            .create(
                Path::new("/opt/xrt"),
                Node::Bind {
                    tree,
                    directory: false,
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("other than a file"), "{err}");
        assert_eq!(calls(&r), []);
        assert_eq!(w.tree(), strings(&["opt/", "opt/xrt/"]));
    }

    #[test]
    fn an_existing_identical_device_is_kept_and_not_undone() {
        let w = world();
        let mut r = w.open(None);
        // What an earlier start of this rootfs left.
        r.create(Path::new("/dev/dri/card0"), card0()).unwrap();
        let made = r.create(Path::new("/dev/dri/card0"), card0()).unwrap();
        assert!(made.node.is_none() && made.parents.is_empty());
        r.undo(made).unwrap();
        assert_eq!(w.tree(), strings(&["dev/", "dev/dri/", "dev/dri/card0"]));
        assert_eq!(calls(&r).len(), 2, "the second create made calls");
    }

    #[test]
    fn an_existing_identical_symlink_is_kept_and_not_undone() {
        let w = world();
        w.mkdir("usr/lib");
        std::os::unix::fs::symlink("libx.so.1", w.rootfs.join("usr/lib/libx.so")).unwrap();
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/usr/lib/libx.so"), symlink("libx.so.1"))
            .unwrap();
        assert!(made.node.is_none());
        r.undo(made).unwrap();
        assert_eq!(
            w.tree(),
            strings(&["usr/", "usr/lib/", "usr/lib/libx.so -> libx.so.1"])
        );
    }

    #[test]
    fn an_existing_identical_file_is_kept_and_not_undone() {
        let w = world();
        w.mkdir("etc");
        let file = w.rootfs.join("etc/x.conf");
        std::fs::write(&file, b"same").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/etc/x.conf"), write(b"same", 0o644))
            .unwrap();
        assert!(made.node.is_none());
        r.undo(made).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"same");
    }

    #[test]
    fn something_else_in_the_way_is_refused_and_left_alone() {
        let w = world();
        w.mkdir("etc");
        w.mkdir("usr/lib");
        std::fs::write(w.rootfs.join("etc/x.conf"), b"theirs").unwrap();
        std::os::unix::fs::symlink("other", w.rootfs.join("usr/lib/libx.so")).unwrap();
        let mut r = w.open(None);
        r.create(Path::new("/dev/card0"), card0()).unwrap();
        let before = w.tree();

        let other_minor = Node::Device(Device {
            kind: DeviceType::Char,
            major: 226,
            minor: 1,
            mode: 0o660,
            uid: 0,
            gid: 44,
        });
        let err = r.create(Path::new("/dev/card0"), other_minor).unwrap_err();
        assert!(err.to_string().contains("wanted c 226:1"), "{err}");
        // A file where a device node is wanted is no device.
        let err = r.create(Path::new("/etc/x.conf"), card0()).unwrap_err();
        assert!(err.to_string().contains("already there"), "{err}");
        let err = r
            .create(Path::new("/usr/lib/libx.so"), symlink("libx.so.1"))
            .unwrap_err();
        assert!(err.to_string().contains("already there"), "{err}");
        let err = r
            .create(Path::new("/etc/x.conf"), write(b"ours", 0o644))
            .unwrap_err();
        assert!(err.to_string().contains("already there"), "{err}");

        assert_eq!(w.tree(), before);
        assert_eq!(
            std::fs::read(w.rootfs.join("etc/x.conf")).unwrap(),
            b"theirs"
        );
        assert_eq!(calls(&r).len(), 2, "a refused create made calls");
    }

    #[test]
    fn a_failing_mknod_leaves_nothing_behind() {
        let w = world();
        w.mkdir("dev");
        let mut r = w.open(Some("mknod"));
        let err = r.create(Path::new("/dev/dri/card0"), card0()).unwrap_err();
        assert!(err.to_string().contains("mknodat card0: EPERM"), "{err}");
        assert_eq!(calls(&r).len(), 1);
        assert_eq!(w.tree(), strings(&["dev/"]));
    }

    #[test]
    fn a_failing_chown_removes_the_new_node_and_its_parents() {
        let w = world();
        w.mkdir("dev");
        let mut r = w.open(Some("chown"));
        let err = r.create(Path::new("/dev/dri/card0"), card0()).unwrap_err();
        assert!(err.to_string().contains("fchownat 0:44: EPERM"), "{err}");
        assert!(matches!(
            calls(&r)[..],
            [Call::Mknod { .. }, Call::Chown { .. }]
        ));
        assert_eq!(w.tree(), strings(&["dev/"]));
    }

    #[test]
    fn a_failing_attach_removes_the_new_mount_point_and_its_parents() {
        let w = world();
        let mut r = w.open(Some("attach"));
        let tree = w.tree_of("tool", false);
        let err = r
            .create(
                Path::new("/usr/bin/tool"),
                Node::Bind {
                    tree,
                    directory: false,
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("move_mount tool: EPERM"), "{err}");
        // Nothing was attached, so nothing is detached.
        assert!(matches!(
            calls(&r)[..],
            [Call::SetAttrs { .. }, Call::Attach { .. }]
        ));
        assert_eq!(w.tree(), Vec::<String>::new());
    }

    #[test]
    fn a_failing_mount_setattr_attaches_nothing_and_leaves_nothing_behind() {
        let w = world();
        let mut r = w.open(Some("set_attrs"));
        let tree = w.tree_of("xrt", true);
        let err = r
            .create(
                Path::new("/opt/xrt"),
                Node::Bind {
                    tree,
                    directory: true,
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("mount_setattr"), "{err}");
        assert!(matches!(calls(&r)[..], [Call::SetAttrs { .. }]));
        assert_eq!(w.tree(), Vec::<String>::new());
    }

    #[test]
    fn an_entry_replaced_after_creation_is_left_in_place_on_undo() {
        let w = world();
        w.mkdir("etc");
        let mut r = w.open(None);
        let made = r
            .create(Path::new("/etc/x.conf"), write(b"ours", 0o644))
            .unwrap();
        // Someone swaps the file for another of their own.
        let file = w.rootfs.join("etc/x.conf");
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, b"theirs").unwrap();
        let err = r.undo(made).unwrap_err();
        assert!(
            err.to_string()
                .contains("x.conf was replaced since hookhost made it; left in place"),
            "{err}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"theirs");
    }

    #[test]
    fn a_failed_step_undoes_every_earlier_step_in_reverse_order() {
        let w = world();
        w.mkdir("dev");
        let mut r = w.open(Some("chown"));
        let step = |at: &str, node| Step {
            plugin: "p".into(),
            action: "test",
            at: PathBuf::from(at),
            node,
        };
        let tree = w.tree_of("tool", false);
        let steps = vec![
            step("/opt/lib", Node::Directory { mode: 0o755 }),
            step("/opt/lib/libx.so", symlink("libx.so.1")),
            step("/opt/lib/libx.so.1", write(b"elf", 0o644)),
            step(
                "/opt/bin/tool",
                Node::Bind {
                    tree,
                    directory: false,
                },
            ),
            step("/dev/dri/card0", card0()),
        ];
        let (_, result) = run_steps(&mut r, steps);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("fchownat"), "{err}");
        // The earlier steps' directories are only empty (and removable) if
        // what was made in them went first.
        assert_eq!(w.tree(), strings(&["dev/"]));
        assert_eq!(
            calls(&r).last(),
            Some(&Call::Detach {
                tree: "host:/tool".into(),
                point: "/opt/bin/tool".into(),
            })
        );
    }
}
