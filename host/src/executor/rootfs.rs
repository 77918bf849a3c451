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

use super::{Container, Node};
use crate::plan::DeviceType;
use crate::sys;

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
    fn remove(&self) -> Result<(), String> {
        let now = fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("fstatat {}: {e}", self.name.display()))?;
        let made = fstat(&self.inode).map_err(|e| format!("fstat: {e}"))?;
        if (now.st_dev, now.st_ino) != (made.st_dev, made.st_ino) {
            return Err(format!(
                "{} was replaced since hookhost made it; left in place",
                self.name.display()
            ));
        }
        let how = if kind(&now) == SFlag::S_IFDIR {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        unlinkat(&self.dir, self.name.as_os_str(), how)
            .map_err(|e| format!("unlinkat {}: {e}", self.name.display()))
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
    fn parent(&self, at: &Path, made: &mut Vec<Entry>) -> Result<OwnedFd, String> {
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
                Err(e) => {
                    return Err(format!(
                        "resolving {} in the rootfs: {}",
                        existing.display(),
                        super::chain(&e)
                    ))
                }
            }
        };
        if kind(&fstat(&dir).map_err(|e| format!("fstat: {e}"))?) != SFlag::S_IFDIR {
            return Err(format!(
                "{} is not a directory in the image",
                existing.display()
            ));
        }
        for name in missing.into_iter().rev() {
            mkdirat(&dir, name, Mode::from_bits_truncate(0o755))
                .map_err(|e| format!("mkdirat {}: {e}", name.display()))?;
            let entry = entry(&dir, name, OFlag::O_DIRECTORY)?;
            let next = dup(&entry.inode)?;
            made.push(entry);
            dir = next;
        }
        Ok(dir)
    }

    fn directory(&self, dir: &OwnedFd, name: &OsStr, mode: u32) -> Result<Option<Entry>, String> {
        match existing(dir, name)? {
            Some(st) if kind(&st) == SFlag::S_IFDIR => Ok(None),
            Some(_) => Err("the image has something other than a directory there".into()),
            None => {
                mkdirat(dir, name, Mode::from_bits_truncate(mode))
                    .map_err(|e| format!("mkdirat: {e}"))?;
                entry(dir, name, OFlag::O_DIRECTORY).map(Some)
            }
        }
    }

    fn device(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        d: &crate::plan::Device,
        made: &mut Made,
    ) -> Result<(), String> {
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
                Err(format!(
                    "something else is already there (wanted {} {}:{})",
                    d.kind.letter(),
                    d.major,
                    d.minor
                ))
            };
        }
        mknodat(
            dir,
            name,
            kind_wanted,
            Mode::from_bits_truncate(d.file_mode),
            dev,
        )
        .map_err(|e| format!("mknodat: {e}"))?;
        let node = made.node.insert(entry(dir, name, OFlag::empty())?);
        if !is_ours(&fstat(&node.inode).map_err(|e| format!("fstat: {e}"))?) {
            return Err("the new node was replaced before it could be owned".into());
        }
        fchownat(
            &node.inode,
            "",
            Some(Uid::from_raw(d.uid)),
            Some(Gid::from_raw(d.gid)),
            AtFlags::AT_EMPTY_PATH,
        )
        .map_err(|e| format!("fchownat {}:{}: {e}", d.uid, d.gid))
    }

    fn symlink(&self, dir: &OwnedFd, name: &OsStr, target: &str) -> Result<Option<Entry>, String> {
        if let Some(st) = existing(dir, name)? {
            // A link an earlier start of this rootfs made is kept.
            let same = kind(&st) == SFlag::S_IFLNK
                && nix::fcntl::readlinkat(dir, name).is_ok_and(|t| t == OsStr::new(target));
            return if same {
                Ok(None)
            } else {
                Err(format!(
                    "something else is already there (wanted a symlink to {target})"
                ))
            };
        }
        symlinkat(target, dir, name).map_err(|e| format!("symlinkat: {e}"))?;
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
    ) -> Result<Option<Entry>, String> {
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
                Err("something else is already there".into())
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
        .map_err(|e| format!("creating {}: {e}", temp.display()))?;
        let mut file = File::from(fd);
        let written = std::io::copy(&mut source, &mut file)
            .map_err(|e| format!("copying: {e}"))
            .and_then(|_| {
                nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))
                    .map_err(|e| format!("fchmod {mode:04o}: {e}"))
            })
            .and_then(|()| {
                renameat2(
                    dir,
                    temp.as_os_str(),
                    dir,
                    name,
                    RenameFlags::RENAME_NOREPLACE,
                )
                .map_err(|e| format!("renameat2 into place: {e}"))
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
    ) -> Result<(), String> {
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
                        .map_err(|e| format!("making the mount point: mkdirat: {e}"))?;
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
                    .map_err(|e| format!("making the mount point: openat: {e}"))?;
                }
                dup(&made.node.insert(entry(dir, name, OFlag::empty())?).inode)?
            }
            Err(e) => return Err(format!("opening the mount point: {e}")),
        };
        if kind(&fstat(&point).map_err(|e| format!("fstat: {e}"))?) != want {
            return Err(format!(
                "the image has something other than a {} there",
                if directory { "directory" } else { "file" }
            ));
        }
        let mut attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        if !directory {
            attrs |= sys::MOUNT_ATTR_NOSYMFOLLOW;
        }
        sys::mount_setattr(&tree, attrs, false)
            .map_err(|e| format!("mount_setattr(RDONLY|NOSUID|NODEV) on the detached bind: {e}"))?;
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            point.as_fd(),
            "",
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| format!("move_mount: {e}"))?;
        made.mount = Some(tree);
        Ok(())
    }

    fn make(&self, at: &Path, node: Node, made: &mut Made) -> Result<(), String> {
        if let Node::Ldconfig { binary, dirs } = node {
            // Not a node: the host's ldconfig in a sandbox of its own
            // (see super::ldconfig).
            return super::ldconfig::run(&binary, &self.path, &dirs);
        }
        let name = at
            .file_name()
            .ok_or_else(|| "the rootfs itself is not a target".to_string())?;
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

impl Container for Rootfs {
    type Made = Made;

    fn create(&mut self, at: &Path, node: Node) -> Result<Made, String> {
        let mut made = Made::default();
        match self.make(at, node, &mut made) {
            Ok(()) => Ok(made),
            Err(e) => {
                // Leave nothing behind, not even the parents made for it.
                match self.undo(made) {
                    Ok(()) => Err(e),
                    Err(undo) => Err(format!("{e} (and undoing it failed: {undo})")),
                }
            }
        }
    }

    fn undo(&mut self, made: Made) -> Result<(), String> {
        if let Some(tree) = &made.mount {
            // The clone's own fd names exactly the mount we attached.
            nix::mount::umount2(
                format!("/proc/self/fd/{}", tree.as_raw_fd()).as_str(),
                nix::mount::MntFlags::MNT_DETACH,
            )
            .map_err(|e| format!("umount: {e}"))?;
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
fn existing(dir: &OwnedFd, name: &OsStr) -> Result<Option<FileStat>, String> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(format!("fstatat: {e}")),
    }
}

/// The entry we just made at `name`, opened without following it.
fn entry(dir: &OwnedFd, name: &OsStr, extra: OFlag) -> Result<Entry, String> {
    let inode = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | extra,
        Mode::empty(),
    )
    .map_err(|e| format!("opening the new {}: {e}", name.display()))?;
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
) -> Result<bool, String> {
    let path = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening the existing {}: {e}", name.display()))?;
    if kind(&fstat(&path).map_err(|e| format!("fstat: {e}"))?) != SFlag::S_IFREG {
        return Ok(false);
    }
    let mut existing = File::open(format!("/proc/self/fd/{}", path.as_raw_fd()))
        .map_err(|e| format!("reading the existing {}: {e}", name.display()))?;
    let (mut a, mut b) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    loop {
        let n = read_full(source, &mut a).map_err(|e| format!("reading the source: {e}"))?;
        let m = read_full(&mut existing, &mut b[..n.max(1)])
            .map_err(|e| format!("reading the existing {}: {e}", name.display()))?;
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

fn dup(fd: &OwnedFd) -> Result<OwnedFd, String> {
    fd.try_clone().map_err(|e| format!("dup: {e}"))
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn is_enoent(e: &pathrs::error::Error) -> bool {
    e.kind() == pathrs::error::ErrorKind::OsError(Some(Errno::ENOENT as i32))
}
