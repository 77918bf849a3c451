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
use nix::sys::stat::{fstat, fstatat, mkdirat, mknodat, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use pathrs::Root;

use super::{Container, Node, Reason};
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
    #[error("{0}")]
    Ldconfig(String),
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

/// A device node to make.
struct Device {
    kind: DeviceType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
}

pub struct Rootfs {
    root: Root,
    path: PathBuf,
}

/// What one creation left behind, held by fd: undoing it looks no path up.
#[derive(Default)]
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
    pub fn open(path: &Path) -> Result<Self, String> {
        let root = Root::open(path).map_err(|e| {
            format!(
                "opening the rootfs {}: {}",
                path.display(),
                super::chain(&e)
            )
        })?;
        Ok(Rootfs {
            root,
            path: path.to_path_buf(),
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
        let is_ours = |st: &FileStat| kind(st) == kind_wanted && st.st_rdev == dev;
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
        mknodat(
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
        fchownat(
            &node.inode,
            "",
            Some(Uid::from_raw(d.uid)),
            Some(Gid::from_raw(d.gid)),
            AtFlags::AT_EMPTY_PATH,
        )
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
        sys::mount_setattr(&tree, attrs, false).map_err(sys(
            "mount_setattr(RDONLY|NOSUID|NODEV)",
            "the detached bind",
        ))?;
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            point.as_fd(),
            "",
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| sys("move_mount", name.display())(Errno::from_raw(e.raw_os_error())))?;
        made.mount = Some(tree);
        Ok(())
    }

    fn make(&self, at: &Path, node: Node, made: &mut Made) -> Result<(), RootfsError> {
        if let Node::Ldconfig { binary, dirs } = node {
            // Not a node: the host's ldconfig in a sandbox of its own
            // (see super::ldconfig).
            return super::ldconfig::run(&binary, &self.path, &dirs).map_err(RootfsError::Ldconfig);
        }
        let name = at
            .file_name()
            .ok_or_else(|| refused("the rootfs itself is not a target"))?;
        let dir = self.parent(at, &mut made.parents)?;
        match node {
            Node::Directory { mode } => made.node = self.directory(&dir, name, mode)?,
            Node::Device {
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            } => {
                let d = Device {
                    kind,
                    major,
                    minor,
                    mode,
                    uid,
                    gid,
                };
                self.device(&dir, name, &d, made)?
            }
            Node::Symlink { target } => made.node = self.symlink(&dir, name, &target)?,
            Node::Write { source, mode } => made.node = self.write(&dir, name, source, mode)?,
            Node::Bind { tree, directory } => self.bind(&dir, name, tree, directory, made)?,
            Node::Ldconfig { .. } => unreachable!("run above"),
        }
        Ok(())
    }
}

impl Container for Rootfs {
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

impl Rootfs {
    /// Undoes one creation: unmount, remove the node, remove the parents.
    fn remove(&self, made: Made) -> Result<(), RootfsError> {
        if let Some(tree) = &made.mount {
            // The clone's own fd names exactly the mount we attached.
            nix::mount::umount2(
                format!("/proc/self/fd/{}", tree.as_raw_fd()).as_str(),
                nix::mount::MntFlags::MNT_DETACH,
            )
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

fn is_enoent(e: &pathrs::error::Error) -> bool {
    e.kind() == pathrs::error::ErrorKind::OsError(Some(Errno::ENOENT as i32))
}
