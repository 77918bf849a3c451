//! The container's rootfs, changed from inside its mount namespace with
//! every path resolved in the rootfs (openat2 `RESOLVE_IN_ROOT`, through
//! `pathrs`): an image's symlink can point anywhere, it still lands inside.
//!
//! New things appear atomically and never replace what the image has:
//! files and symlinks are made under a temporary name and renamed into place
//! with `RENAME_NOREPLACE`; nodes and mount points are created exclusively.

use std::fs::Permissions;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{fstat, SFlag};
use nix::unistd::{Gid, Uid};
use pathrs::flags::{OpenFlags, RenameFlags};
use pathrs::{InodeType, Root};

use super::{Container, Created, Node};
use crate::plan::DeviceType;

pub struct Rootfs {
    root: Root,
    path: PathBuf,
}

impl Rootfs {
    pub fn open(path: &Path) -> Result<Self, String> {
        let root =
            Root::open(path).map_err(|e| format!("opening the rootfs {}: {e}", path.display()))?;
        Ok(Rootfs {
            root,
            path: path.to_path_buf(),
        })
    }

    /// Makes the missing parents of `at` (0755) and returns those it made,
    /// outermost first, so that an undo removes exactly them.
    fn parents(&self, at: &Path) -> Result<Vec<PathBuf>, String> {
        let parent = at.parent().unwrap_or(Path::new("/"));
        let missing: Vec<PathBuf> = parent
            .ancestors()
            .filter(|p| self.root.resolve(p).is_err())
            .map(Path::to_path_buf)
            .collect();
        if !missing.is_empty() {
            self.root
                .mkdir_all(parent, &Permissions::from_mode(0o755))
                .map_err(|e| format!("making {}: {e}", parent.display()))?;
        }
        Ok(missing.into_iter().rev().collect())
    }

    /// The kind and device number of what is at `at` now, if anything; the
    /// last component is not followed.
    fn existing(&self, at: &Path) -> Option<(SFlag, u64)> {
        let handle = self.root.resolve_nofollow(at).ok()?;
        let st = fstat(handle.as_fd()).ok()?;
        Some((
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()),
            st.st_rdev,
        ))
    }

    /// A name beside `at` for a file being made.
    fn temp_name(at: &Path) -> PathBuf {
        let name = at.file_name().unwrap_or_default().to_string_lossy();
        at.with_file_name(format!(".hookhost-{}-{name}", std::process::id()))
    }

    fn place(&self, temp: &Path, at: &Path) -> Result<(), String> {
        self.root
            .rename(temp, at, RenameFlags::RENAME_NOREPLACE)
            .map_err(|e| {
                let _ = self.root.remove_file(temp);
                format!("renaming into place: {e}")
            })
    }

    fn device(&self, at: &Path, d: &crate::plan::Device) -> Result<bool, String> {
        let (kind, inode) = match d.kind {
            DeviceType::Char => (SFlag::S_IFCHR, InodeType::CharacterDevice as fn(_, _) -> _),
            DeviceType::Block => (SFlag::S_IFBLK, InodeType::BlockDevice as fn(_, _) -> _),
        };
        let dev = nix::sys::stat::makedev(d.major.into(), d.minor.into());
        if let Some(existing) = self.existing(at) {
            return if existing == (kind, dev) {
                Ok(false)
            } else {
                Err(format!(
                    "something else is already there (wanted {} {}:{})",
                    d.kind.letter(),
                    d.major,
                    d.minor
                ))
            };
        }
        self.root
            .create(at, &inode(Permissions::from_mode(d.file_mode), dev))
            .map_err(|e| format!("mknod: {e}"))?;
        let handle = self
            .root
            .resolve_nofollow(at)
            .map_err(|e| format!("reopening the new node: {e}"))?;
        nix::unistd::fchownat(
            handle.as_fd(),
            "",
            Some(Uid::from_raw(d.uid)),
            Some(Gid::from_raw(d.gid)),
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        )
        .map_err(|e| format!("chown {}:{}: {e}", d.uid, d.gid))?;
        Ok(true)
    }

    /// Remounts the bind mount at `at` read-only, nosuid and nodev, and a
    /// file's also nosymfollow. A directory's symlinks must keep working:
    /// a vendor tree such as /opt/xilinx/xrt is full of soname links, and
    /// they resolve inside the container's root like any of its own. (A
    /// detached mount cannot be remounted, and rustix has no
    /// mount_setattr, hence after attaching.)
    fn read_only(&self, at: &Path, directory: bool) -> Result<(), String> {
        use nix::mount::MsFlags;
        // nix lacks MS_NOSYMFOLLOW (Linux 5.10): its value is 256.
        let nosymfollow = if directory {
            MsFlags::empty()
        } else {
            MsFlags::from_bits_retain(256)
        };
        let mounted = self
            .root
            .resolve_nofollow(at)
            .map_err(|e| format!("resolving the new mount: {e}"))?;
        nix::mount::mount(
            None::<&str>,
            fd_path(&mounted).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | nosymfollow,
            None::<&str>,
        )
        .map_err(|e| format!("making the bind mount read-only: {e}"))
    }

    /// Runs the host's ldconfig on the rootfs, in a sandbox of its own
    /// (namespaces, limits, empty environment, its own chroot into the
    /// rootfs): see [`super::ldconfig`].
    fn ldconfig(&self, binary: &Path, dirs: &[String]) -> Result<(), String> {
        super::ldconfig::run(binary, &self.path, dirs)
    }

    fn mount_point(&self, at: &Path, directory: bool) -> Result<bool, String> {
        let want = if directory {
            SFlag::S_IFDIR
        } else {
            SFlag::S_IFREG
        };
        match self.existing(at) {
            Some((kind, _)) if kind == want => return Ok(false),
            Some(_) => {
                return Err(format!(
                    "the image has something other than a {} there",
                    if directory { "directory" } else { "file" }
                ))
            }
            None => {}
        }
        let made = if directory {
            self.root
                .create(at, &InodeType::Directory(Permissions::from_mode(0o755)))
        } else {
            self.root
                .create(at, &InodeType::File(Permissions::from_mode(0o644)))
        };
        made.map(|_| true)
            .map_err(|e| format!("making the mount point: {e}"))
    }
}

impl Container for Rootfs {
    fn create(&mut self, at: &Path, node: Node) -> Result<Created, String> {
        let parents = self.parents(at)?;
        let mut created = Created {
            at: at.to_path_buf(),
            mounted: false,
            made: false,
            parents,
        };
        let result = match node {
            Node::Directory { mode } => match self.existing(at) {
                Some((SFlag::S_IFDIR, _)) => Ok(()),
                Some(_) => Err("the image has something other than a directory there".into()),
                None => self
                    .root
                    .create(at, &InodeType::Directory(Permissions::from_mode(mode)))
                    .map(|()| created.made = true)
                    .map_err(|e| format!("mkdir: {e}")),
            },
            Node::Device(d) => self.device(at, &d).map(|made| created.made = made),
            Node::Symlink { target } => {
                let temp = Self::temp_name(at);
                self.root
                    .create(&temp, &InodeType::Symlink(target.into()))
                    .map_err(|e| format!("symlink: {e}"))
                    .and_then(|()| self.place(&temp, at))
                    .map(|()| created.made = true)
            }
            Node::Write { mut source, mode } => {
                let temp = Self::temp_name(at);
                self.root
                    .create_file(
                        &temp,
                        OpenFlags::O_WRONLY | OpenFlags::O_EXCL,
                        &Permissions::from_mode(mode),
                    )
                    .map_err(|e| format!("creating a copy: {e}"))
                    .and_then(|mut file| {
                        std::io::copy(&mut source, &mut file)
                            .and_then(|_| file.set_permissions(Permissions::from_mode(mode)))
                            .map_err(|e| {
                                let _ = self.root.remove_file(&temp);
                                format!("copying: {e}")
                            })
                    })
                    .and_then(|()| self.place(&temp, at))
                    .map(|()| created.made = true)
            }
            Node::Bind { tree, directory } => self.mount_point(at, directory).and_then(|made| {
                created.made = made;
                let target = self
                    .root
                    .resolve_nofollow(at)
                    .map_err(|e| format!("resolving the mount point: {e}"))?;
                rustix::mount::move_mount(
                    tree.as_fd(),
                    "",
                    target.as_fd(),
                    "",
                    rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                        | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
                )
                .map_err(|e| format!("move_mount: {e}"))?;
                created.mounted = true;
                self.read_only(at, directory)
            }),
            Node::Ldconfig { binary, dirs } => self.ldconfig(&binary, &dirs),
        };
        match result {
            Ok(()) => Ok(created),
            Err(e) => {
                // Leave nothing behind, not even the parents made for it.
                let _ = self.undo(&created);
                Err(e)
            }
        }
    }

    fn undo(&mut self, created: &Created) -> Result<(), String> {
        let at = &created.at;
        if created.mounted {
            let handle = self
                .root
                .resolve_nofollow(at)
                .map_err(|e| format!("resolving the mount: {e}"))?;
            nix::mount::umount2(fd_path(&handle).as_str(), nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| format!("umount: {e}"))?;
        }
        if created.made {
            let removed = match self.existing(at) {
                Some((SFlag::S_IFDIR, _)) => self.root.remove_dir(at),
                Some(_) => self.root.remove_file(at),
                None => Ok(()),
            };
            removed.map_err(|e| format!("removing: {e}"))?;
        }
        for parent in created.parents.iter().rev() {
            self.root
                .remove_dir(parent)
                .map_err(|e| format!("removing {}: {e}", parent.display()))?;
        }
        Ok(())
    }
}

/// The procfs path of an open handle, for the mount calls that take a path:
/// it names exactly the inode we resolved, with nothing to re-resolve.
fn fd_path(handle: &pathrs::Handle) -> String {
    format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&handle.as_fd())
    )
}
