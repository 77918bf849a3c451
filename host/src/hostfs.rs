//! The host as a plugin sees it: absolute host paths, resolved under the
//! host root (`--host-root`, `/` in production) and filtered through the
//! plugin's allow-list.
//!
//! Every look-up resolves with chroot semantics (openat2 `RESOLVE_IN_ROOT`
//! through `pathrs`) and never follows the last component: a symlink is
//! reported as itself and the plugin decides whether to read it. A fake GPU
//! host for tests is then just a directory.
//!
//! The allow-list is checked twice: on the path as asked for, and on what
//! the opened fd really is (an intermediate symlink is followed only where
//! the allow-list names its target too). And every directory on the way
//! must be root's and writable by root alone: a tree that someone else can
//! write can be turned into a symlink to `/etc` between any two checks.
//!
//! The allow-list and path cleaning are [`crate::allow`]'s. The executor's
//! privileged opening of the sources a plan names (the `open_tree` clone of
//! a bind, the file a copy reads) is [`crate::backend::hook::sources`]'s; it
//! resolves them here (`HostFs::find_planned`), under the same root and
//! the same checks of the directories on the way.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use glob::Pattern;
use nix::sys::stat::SFlag;

use crate::allow::{clean_absolute, AllowList, MATCH};

/// The most entries one `glob` may consider at any level: a bound on host
/// memory whatever the pattern.
const GLOB_LIMIT: usize = 100_000;

/// The most a plugin may read of one host file.
pub const READ_LIMIT: u32 = 1 << 20;

/// Why a host path is refused or unreadable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    #[error("{0} is not in this plugin's allow-list")]
    NotAllowed(String),
    #[error("{path} resolves to {real}, which this plugin's allow-list does not name")]
    ResolvesElsewhere { path: String, real: String },
    #[error(
        "{path} now resolves to {real}, not to itself: the host changed after the plan was made"
    )]
    Moved { path: String, real: String },
    #[error(
        "{path}: the directory {dir} is owned by uid {uid} with mode {mode:04o}; every \
         directory of an allowed host path must be owned by root and writable by it alone"
    )]
    Untrusted {
        path: String,
        dir: String,
        uid: u32,
        mode: u32,
    },
    #[error("{0} does not exist on the host")]
    NotFound(String),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// What `stat` tells of a host path (the link itself, never its target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStat {
    pub kind: FileKind,
    pub mode: u32,
    pub size: u64,
    pub major: u32,
    pub minor: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// The host root, opened once.
pub struct HostFs {
    root_path: PathBuf,
    root: pathrs::Root,
    /// Where the root really is in our mount namespace: what `/proc`
    /// reports for fds under it starts with this.
    root_real: PathBuf,
    /// `/proc/self/fd`, opened once through pathrs's checked procfs handle:
    /// what an fd really is, and an O_PATH fd reopened for reading, each in
    /// one system call from it, where pathrs would check its way through
    /// procfs again (some thirty calls) every time.
    fd_dir: std::os::fd::OwnedFd,
    /// Besides root, the owner a directory may have: the user running
    /// hookhost, so that a vendor can run `hookhost test` on a fake host of
    /// their own.
    euid: u32,
    /// Directories (as asked for or as resolved) already found to lead
    /// through trusted directories only. Only root can change a trusted
    /// directory, so the answer holds for the whole run, and the hundreds of
    /// look-ups of a GPU policy each check their directories once.
    trusted: Mutex<HashSet<PathBuf>>,
    /// The directories listed (see [`Self::list_dir`]), by real path.
    listings: Mutex<HashMap<PathBuf, Option<Arc<[String]>>>>,
}

impl std::fmt::Debug for HostFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFs")
            .field("root", &self.root_path)
            .finish()
    }
}

/// A host path resolved under the root.
pub(crate) struct Found {
    pub(crate) handle: pathrs::Handle,
    /// What the handle really is, as a host path: the path asked for with
    /// every intermediate symlink resolved.
    pub(crate) real: PathBuf,
    pub(crate) stat: nix::sys::stat::FileStat,
    pub(crate) kind: FileKind,
}

/// What [`HostFs::lookup`] finds: the lstat, and where the path really is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub stat: HostStat,
    /// The path with every intermediate symlink resolved: what a plan
    /// records, and the only form of it the executor opens.
    pub real: PathBuf,
}

impl HostFs {
    pub fn open(root: &Path) -> Result<Self, HostError> {
        let root_path = std::path::absolute(root).map_err(|e| HostError::Io {
            path: root.display().to_string(),
            message: e.to_string(),
        })?;
        let fail = |message: String| HostError::Io {
            path: root_path.display().to_string(),
            message,
        };
        let handle = pathrs::Root::open(&root_path).map_err(|e| {
            fail(format!(
                "cannot open the host root: {}",
                crate::error::chain(&e)
            ))
        })?;
        let procfs = pathrs::procfs::ProcfsHandle::new().map_err(|e| {
            fail(format!(
                "cannot open /proc to check host paths: {}",
                crate::error::chain(&e)
            ))
        })?;
        let fd_dir = procfs
            .open(
                pathrs::procfs::ProcfsBase::ProcSelf,
                "fd",
                pathrs::flags::OpenFlags::O_PATH | pathrs::flags::OpenFlags::O_DIRECTORY,
            )
            .map_err(|e| {
                fail(format!(
                    "cannot open /proc/self/fd to check host paths: {}",
                    crate::error::chain(&e)
                ))
            })?
            .into();
        let root_real = fd_path(&fd_dir, &handle)
            .map_err(|e| fail(format!("cannot tell where the host root is: {e}")))?;
        Ok(HostFs {
            root_path,
            root: handle,
            root_real,
            fd_dir,
            euid: nix::unistd::geteuid().as_raw(),
            trusted: Mutex::new(HashSet::new()),
            listings: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root_path
    }

    /// Host paths matching `pattern` that the allow-list lets through, sorted.
    ///
    /// Directories are listed through the host root like every other
    /// look-up (a symlink on the way resolves inside it), one pattern
    /// component at a time; the glob crate would list the real file system.
    /// A match, or a directory listed, that resolves outside the allow-list
    /// or through an untrusted directory fails the whole glob: silently
    /// leaving it out would hide the attack from the administrator.
    pub fn glob(&self, allow: &AllowList, pattern: &str) -> Result<Vec<String>, HostError> {
        let clean = clean_absolute(pattern).map_err(|reason| invalid(pattern, reason))?;
        let mut candidates = vec![PathBuf::from("/")];
        for part in clean.iter().skip(1) {
            let part = part.to_string_lossy();
            if part == "**" {
                return Err(invalid(
                    pattern,
                    "`**` is not supported by glob; name each level with `*`".into(),
                ));
            }
            if !part.contains(['*', '?', '[']) {
                candidates.iter_mut().for_each(|c| c.push(&*part));
                continue;
            }
            let component = Pattern::new(&part).map_err(|e| invalid(pattern, e.to_string()))?;
            // A name that matches starts with the component's literal part:
            // in a sorted listing, those are one run found by bisection.
            let literal = &part[..part.find(['*', '?', '[']).unwrap_or(part.len())];
            // Only directories that can hold an allowed path are listed.
            candidates.retain(|dir| allow.may_hold_below(dir));
            let mut matches = Vec::new();
            for dir in &candidates {
                // Unreadable directories are simply not part of the answer.
                let Some(names) = self.list_dir(allow, dir)? else {
                    continue;
                };
                let start = names.partition_point(|name| name.as_str() < literal);
                matches.extend(
                    names[start..]
                        .iter()
                        .take_while(|name| name.starts_with(literal))
                        .filter(|name| component.matches_with(name, MATCH))
                        .map(|name| dir.join(name)),
                );
                if matches.len() > GLOB_LIMIT {
                    return Err(invalid(
                        pattern,
                        format!("matches more than {GLOB_LIMIT} entries; narrow the pattern"),
                    ));
                }
            }
            candidates = matches;
        }
        let mut found = Vec::new();
        for path in candidates.into_iter().filter(|p| allow.allows(p)) {
            let path = path.display().to_string();
            match self.find(allow, &path) {
                Ok(_) => found.push(path),
                Err(e) if e.is_refusal() => return Err(e),
                // Gone since it was listed, or unreadable: not an answer.
                Err(_) => {}
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The entry names of a host directory, resolved under the host root,
    /// sorted; None when it cannot be read. Refused when it resolves to a
    /// directory the allow-list can hold nothing under, or through an
    /// untrusted one. Read once per run: each glob of the same directory
    /// gets the same listing (each match is then looked up on its own).
    fn list_dir(&self, allow: &AllowList, dir: &Path) -> Result<Option<Arc<[String]>>, HostError> {
        let shown = dir.display().to_string();
        let Ok((handle, known)) = self.open_under(&shown, dir, true) else {
            return Ok(None);
        };
        let real = self.real_path(&handle, known, &shown)?;
        if real != dir && !allow.may_hold_below(&real) {
            return Err(HostError::ResolvesElsewhere {
                path: shown,
                real: real.display().to_string(),
            });
        }
        self.check_tree(&shown, dir, &real, true)?;
        let mut listings = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(names) = listings.get(&real) {
            return Ok(names.clone());
        }
        let names = self
            .reopen(
                &handle,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            )
            .ok()
            .and_then(|fd| nix::dir::Dir::from_fd(fd.into()).ok())
            .map(|mut listing| {
                let mut names: Vec<String> = listing
                    .iter()
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name != "." && name != "..")
                    .collect();
                names.sort_unstable();
                Arc::from(names)
            });
        listings.insert(real, names.clone());
        Ok(names)
    }

    /// `handle` (an O_PATH fd) opened again with `flags`, through
    /// `/proc/self/fd`: the file the handle holds, whatever its path now
    /// leads to. Never a controlling terminal, and closed on exec.
    pub(crate) fn reopen(
        &self,
        handle: &pathrs::Handle,
        flags: nix::fcntl::OFlag,
    ) -> nix::Result<std::fs::File> {
        use nix::fcntl::OFlag;
        let entry = handle.as_fd().as_raw_fd().to_string();
        let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        nix::fcntl::openat(
            &self.fd_dir,
            entry.as_str(),
            flags,
            nix::sys::stat::Mode::empty(),
        )
        .map(std::fs::File::from)
    }

    /// lstat of an allowed host path.
    pub fn stat(&self, allow: &AllowList, path: &str) -> Result<HostStat, HostError> {
        Ok(self.lookup(allow, path)?.stat)
    }

    /// lstat of an allowed host path, and where it really is.
    pub fn lookup(&self, allow: &AllowList, path: &str) -> Result<Located, HostError> {
        let found = self.find(allow, path)?;
        let st = found.stat;
        let is_dev = matches!(found.kind, FileKind::CharDevice | FileKind::BlockDevice);
        let rdev = st.st_rdev;
        Ok(Located {
            stat: HostStat {
                kind: found.kind,
                mode: st.st_mode & 0o7777,
                size: st.st_size as u64,
                major: if is_dev {
                    nix::sys::stat::major(rdev) as u32
                } else {
                    0
                },
                minor: if is_dev {
                    nix::sys::stat::minor(rdev) as u32
                } else {
                    0
                },
                uid: st.st_uid,
                gid: st.st_gid,
            },
            real: found.real,
        })
    }

    /// The content of an allowed symlink.
    pub fn read_link(&self, allow: &AllowList, path: &str) -> Result<String, HostError> {
        let found = self.find(allow, path)?;
        if found.kind != FileKind::Symlink {
            return Err(invalid(path, "is not a symlink".into()));
        }
        // The link the fd holds, not the path looked up again.
        let target = nix::fcntl::readlinkat(&found.handle, "").map_err(|e| HostError::Io {
            path: path.into(),
            message: format!("readlink: {e}"),
        })?;
        Ok(PathBuf::from(target).display().to_string())
    }

    /// At most `limit` bytes (capped at [`READ_LIMIT`]) of an allowed
    /// regular file. A symlink is not followed: read its target instead.
    pub fn read_file(
        &self,
        allow: &AllowList,
        path: &str,
        limit: u32,
    ) -> Result<Vec<u8>, HostError> {
        let found = self.find(allow, path)?;
        if found.kind != FileKind::Regular {
            return Err(invalid(path, "is not a regular file".into()));
        }
        let file = self
            .reopen(&found.handle, nix::fcntl::OFlag::O_RDONLY)
            .map_err(|e| HostError::Io {
                path: path.into(),
                message: format!("opening it: {e}"),
            })?;
        // /proc files report size 0: read up to the limit, not to st_size.
        let mut buf = Vec::new();
        file.take(u64::from(limit.min(READ_LIMIT)))
            .read_to_end(&mut buf)
            .map_err(|e| HostError::Io {
                path: path.into(),
                message: e.to_string(),
            })?;
        Ok(buf)
    }

    /// Cleans `path` and checks it against the allow-list: the first step of
    /// every host look-up, before the host is consulted at all.
    pub fn check(&self, allow: &AllowList, path: &str) -> Result<PathBuf, HostError> {
        let clean = clean_absolute(path).map_err(|reason| invalid(path, reason))?;
        if !allow.allows(&clean) {
            return Err(HostError::NotAllowed(path.into()));
        }
        Ok(clean)
    }

    /// Every look-up a plugin makes: the path as asked for is allowed, what
    /// it resolves to (the last component not followed) is allowed too,
    /// and every directory on the way is trusted.
    fn find(&self, allow: &AllowList, path: &str) -> Result<Found, HostError> {
        let clean = self.check(allow, path)?;
        let found = self.resolve(path, &clean)?;
        if found.real != clean && !allow.allows(&found.real) {
            return Err(HostError::ResolvesElsewhere {
                path: path.into(),
                real: found.real.display().to_string(),
            });
        }
        self.check_tree(path, &clean, &found.real, found.kind == FileKind::Directory)?;
        Ok(found)
    }

    /// The executor's look-up of a planned source: it must resolve to
    /// itself, through trusted directories.
    pub(crate) fn find_planned(&self, path: &str) -> Result<Found, HostError> {
        let clean = clean_absolute(path).map_err(|reason| invalid(path, reason))?;
        let found = self.resolve(path, &clean)?;
        if found.real != clean {
            return Err(HostError::Moved {
                path: path.into(),
                real: found.real.display().to_string(),
            });
        }
        self.check_tree(path, &clean, &found.real, found.kind == FileKind::Directory)?;
        Ok(found)
    }

    /// Resolves `clean` under the root without following its last
    /// component, and tells what the fd really is.
    fn resolve(&self, path: &str, clean: &Path) -> Result<Found, HostError> {
        let (handle, known) = self.open_under(path, clean, false)?;
        let real = self.real_path(&handle, known, path)?;
        let (kind, stat) = file_kind(&handle, path)?;
        Ok(Found {
            handle,
            real,
            stat,
            kind,
        })
    }

    /// Resolves `clean` under the root, its last component followed or
    /// not, and tells what the fd is where that is known without `/proc`.
    /// Most host paths go through no symlink: resolved with none allowed
    /// (`RESOLVE_NO_SYMLINKS`), the fd is the path itself. Otherwise the
    /// path is resolved again, symlinks and all, and
    /// [`Self::real_path`] must ask `/proc` where it led.
    fn open_under(
        &self,
        path: &str,
        clean: &Path,
        follow: bool,
    ) -> Result<(pathrs::Handle, Option<PathBuf>), HostError> {
        // The one openat2 that pathrs would make, made here: on a failure
        // pathrs reads /proc to describe it, and a GPU policy asks for many
        // paths that are not there.
        use rustix::fs::{OFlags, ResolveFlags};
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS;
        match rustix::fs::openat2(&self.root, clean, flags, rustix::fs::Mode::empty(), how) {
            Ok(fd) => return Ok((pathrs::Handle::from_fd(fd), Some(clean.to_path_buf()))),
            // Missing before any symlink (at one, the look-up fails with
            // ELOOP): following symlinks would stop at the same component.
            Err(rustix::io::Errno::NOENT) => return Err(HostError::NotFound(path.into())),
            Err(_) => {}
        }
        let handle = if follow {
            self.root.resolve(clean)
        } else {
            self.root.resolve_nofollow(clean)
        }
        .map_err(|e| os_error(path, &e))?;
        Ok((handle, None))
    }

    /// The host path an fd under the root really is: `known` if
    /// [`Self::open_under`] knew it, else from `/proc`.
    fn real_path(
        &self,
        fd: impl AsFd,
        known: Option<PathBuf>,
        path: &str,
    ) -> Result<PathBuf, HostError> {
        if let Some(real) = known {
            return Ok(real);
        }
        let real = fd_path(&self.fd_dir, fd).map_err(|e| HostError::Io {
            path: path.into(),
            message: format!("cannot tell what it resolved to: {e}"),
        })?;
        match real.strip_prefix(&self.root_real) {
            Ok(below) => Ok(Path::new("/").join(below)),
            // openat2 keeps resolution inside; only a rename racing it, or
            // a mount, could show something else.
            Err(_) => Err(HostError::Io {
                path: path.into(),
                message: format!(
                    "resolves to {}, outside the host root {}",
                    real.display(),
                    self.root_real.display()
                ),
            }),
        }
    }

    /// Checks every directory a look-up of `clean` went through, the
    /// requested path's own (where an intermediate symlink lives) and the
    /// resolved path's, and `real` itself when it is a directory (a bound
    /// directory's content is the container's).
    fn check_tree(
        &self,
        path: &str,
        clean: &Path,
        real: &Path,
        real_is_dir: bool,
    ) -> Result<(), HostError> {
        let mut trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        // Top down: a directory is trusted only once those above it are.
        let mut above: Vec<&Path> = clean.ancestors().skip(1).collect();
        above.reverse();
        for dir in above {
            if dir == Path::new("/") || trusted.contains(dir) {
                continue;
            }
            // The directory as traversed: through any symlink on the way.
            let (handle, known) = self.open_under(path, dir, true)?;
            let dir_real = self.real_path(&handle, known, path)?;
            self.check_dirs(path, &dir_real, &mut trusted)?;
            trusted.insert(dir.to_path_buf());
        }
        let last = if real_is_dir {
            real
        } else {
            real.parent().unwrap_or(real)
        };
        self.check_dirs(path, last, &mut trusted)
    }

    /// Checks `dir` and every directory above it up to the host root (which
    /// is the administrator's choice, and not checked), top down.
    fn check_dirs(
        &self,
        path: &str,
        dir: &Path,
        trusted: &mut HashSet<PathBuf>,
    ) -> Result<(), HostError> {
        let mut chain: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| *d != Path::new("/") && !trusted.contains(*d))
            .collect();
        chain.reverse();
        for d in chain {
            let handle = self
                .root
                .resolve_nofollow(d)
                .map_err(|e| os_error(path, &e))?;
            let st = nix::sys::stat::fstat(&handle).map_err(|e| HostError::Io {
                path: path.into(),
                message: format!("{}: {e}", d.display()),
            })?;
            let is_dir = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits();
            let owner_ok = st.st_uid == 0 || st.st_uid == self.euid;
            if !is_dir || !owner_ok || st.st_mode & 0o022 != 0 {
                return Err(HostError::Untrusted {
                    path: path.into(),
                    dir: d.display().to_string(),
                    uid: st.st_uid,
                    mode: st.st_mode & 0o7777,
                });
            }
            trusted.insert(d.to_path_buf());
        }
        Ok(())
    }
}

impl HostError {
    /// Whether this is a refusal (of the path or of the tree it is in),
    /// rather than a path that is missing or unreadable.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            HostError::NotAllowed(_)
                | HostError::ResolvesElsewhere { .. }
                | HostError::Moved { .. }
                | HostError::Untrusted { .. }
        )
    }
}

/// What `/proc/self/fd/N` (in `fd_dir`) says `fd` is.
fn fd_path(fd_dir: impl AsFd, fd: impl AsFd) -> nix::Result<PathBuf> {
    nix::fcntl::readlinkat(fd_dir, fd.as_fd().as_raw_fd().to_string().as_str()).map(PathBuf::from)
}

fn file_kind(
    handle: &pathrs::Handle,
    path: &str,
) -> Result<(FileKind, nix::sys::stat::FileStat), HostError> {
    let st = nix::sys::stat::fstat(handle).map_err(|e| HostError::Io {
        path: path.into(),
        message: e.to_string(),
    })?;
    let kind = match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => FileKind::Directory,
        SFlag::S_IFLNK => FileKind::Symlink,
        SFlag::S_IFCHR => FileKind::CharDevice,
        SFlag::S_IFBLK => FileKind::BlockDevice,
        SFlag::S_IFIFO => FileKind::Fifo,
        SFlag::S_IFSOCK => FileKind::Socket,
        _ => FileKind::Regular,
    };
    Ok((kind, st))
}

pub(crate) fn invalid(path: &str, reason: String) -> HostError {
    HostError::Invalid {
        path: path.into(),
        reason,
    }
}

pub(crate) fn os_error(path: &str, e: &pathrs::error::Error) -> HostError {
    if crate::error::is_enoent(e) {
        HostError::NotFound(path.into())
    } else {
        // The whole chain: pathrs's own words ("openat2 subpath failed")
        // say nothing of the ELOOP or EACCES behind them.
        HostError::Io {
            path: path.into(),
            message: crate::error::chain(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::hook::sources::{bind_source, open_source};

    #[test]
    fn host_lookups_stay_under_the_root_and_the_allow_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libfoo.so.1.2"), b"elf").unwrap();
        std::os::unix::fs::symlink("libfoo.so.1.2", root.join("usr/lib/libfoo.so.1")).unwrap();
        // A link that would leave the root: resolution keeps it inside.
        std::os::unix::fs::symlink("/../../../etc/hostname", root.join("usr/lib/libbar.so"))
            .unwrap();
        std::fs::write(root.join("usr/lib/secret"), b"no").unwrap();

        let host = HostFs::open(root).unwrap();
        let allow = AllowList::new(&["/usr/lib/lib*".into()]).unwrap();

        assert_eq!(
            host.glob(&allow, "/usr/lib/*").unwrap(),
            vec![
                "/usr/lib/libbar.so",
                "/usr/lib/libfoo.so.1",
                "/usr/lib/libfoo.so.1.2"
            ]
        );
        assert_eq!(
            host.stat(&allow, "/usr/lib/libfoo.so.1").unwrap().kind,
            FileKind::Symlink
        );
        assert_eq!(
            host.read_link(&allow, "/usr/lib/libfoo.so.1").unwrap(),
            "libfoo.so.1.2"
        );
        assert_eq!(
            host.read_file(&allow, "/usr/lib/libfoo.so.1.2", 2).unwrap(),
            b"el"
        );
        assert!(matches!(
            host.read_file(&allow, "/usr/lib/libbar.so", 100),
            Err(HostError::Invalid { .. })
        ));
        assert_eq!(
            host.read_file(&allow, "/usr/lib/secret", 100),
            Err(HostError::NotAllowed("/usr/lib/secret".into()))
        );
        assert_eq!(
            host.stat(&allow, "/usr/lib/libnone.so"),
            Err(HostError::NotFound("/usr/lib/libnone.so".into()))
        );
    }

    #[test]
    fn glob_lists_directories_inside_the_root_even_through_absolute_links() {
        // The fake root's /opt/vendor is an absolute link to /real. A plain
        // glob would list the machine's /real; the host root's view lists
        // the root's own /real.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("libleak.so"), b"").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("opt")).unwrap();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/libinside.so"), b"").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("opt/vendor")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("opt/other")).unwrap();
        std::fs::create_dir_all(root.join(outside.path().strip_prefix("/").unwrap())).unwrap();
        std::fs::write(
            root.join(outside.path().strip_prefix("/").unwrap())
                .join("libinside.so"),
            b"",
        )
        .unwrap();

        let host = HostFs::open(root).unwrap();
        // The links are followed only because the allow-list names where
        // they lead, inside the root.
        let inside = format!("{}/lib*.so", outside.path().display());
        let allow = AllowList::new(&["/opt/*/lib*.so".into(), inside]).unwrap();
        assert_eq!(
            host.glob(&allow, "/opt/*/lib*.so").unwrap(),
            vec!["/opt/other/libinside.so", "/opt/vendor/libinside.so"]
        );
        assert!(matches!(
            host.glob(&allow, "/opt/**/lib*.so"),
            Err(HostError::Invalid { .. })
        ));
    }

    /// The unprivileged attacker's uid: `nobody`.
    const NOBODY: u32 = 65534;

    fn assert_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root: it gives a directory to uid {NOBODY}"
        );
    }

    /// A fake host root that uid NOBODY can reach, with a fake /etc/shadow
    /// and /opt/vendor owned by NOBODY (mode 0755: writable by it alone).
    fn host_with_a_vendor_dir_of_nobody() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/shadow"),
            b"root:$6$not-a-real-hash:19000::::::\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("opt/vendor")).unwrap();
        std::os::unix::fs::chown(root.join("opt/vendor"), Some(NOBODY), Some(NOBODY)).unwrap();
        dir
    }

    /// Runs `script` in `dir` as uid NOBODY.
    fn as_nobody(dir: &Path, script: &str) {
        use std::os::unix::process::CommandExt;
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .current_dir(dir)
            .uid(NOBODY)
            .gid(NOBODY)
            .status()
            .unwrap();
        assert!(status.success(), "as uid {NOBODY}: {script}");
    }

    #[test]
    fn a_directory_another_user_turned_into_a_symlink_is_refused_naming_path_and_target() {
        assert_root();
        let dir = host_with_a_vendor_dir_of_nobody();
        let root = dir.path();
        // The owner of /opt/vendor points `etc` at the host's /etc.
        as_nobody(&root.join("opt/vendor"), "ln -s /etc etc");
        let host = HostFs::open(root).unwrap();
        let allow = AllowList::new(&["/opt/vendor/etc/*".into()]).unwrap();

        let shadow = || HostError::ResolvesElsewhere {
            path: "/opt/vendor/etc/shadow".into(),
            real: "/etc/shadow".into(),
        };
        assert_eq!(host.stat(&allow, "/opt/vendor/etc/shadow"), Err(shadow()));
        assert_eq!(
            host.read_file(&allow, "/opt/vendor/etc/shadow", 100),
            Err(shadow())
        );
        assert_eq!(
            shadow().to_string(),
            "/opt/vendor/etc/shadow resolves to /etc/shadow, \
             which this plugin's allow-list does not name"
        );
        assert_eq!(
            host.glob(&allow, "/opt/vendor/etc/*"),
            Err(HostError::ResolvesElsewhere {
                path: "/opt/vendor/etc".into(),
                real: "/etc".into(),
            })
        );

        // Even where the target is allowed, the tree the link lives in is
        // someone else's: refused, naming it.
        let allow = AllowList::new(&["/opt/vendor/etc/*".into(), "/etc/*".into()]).unwrap();
        let host = HostFs::open(root).unwrap();
        assert_eq!(
            host.stat(&allow, "/opt/vendor/etc/shadow"),
            Err(HostError::Untrusted {
                path: "/opt/vendor/etc/shadow".into(),
                dir: "/opt/vendor".into(),
                uid: NOBODY,
                mode: 0o755,
            })
        );
    }

    #[test]
    fn an_allowed_tree_anyone_but_root_can_write_is_refused_naming_the_directory() {
        use std::os::unix::fs::PermissionsExt;
        assert_root();
        let dir = host_with_a_vendor_dir_of_nobody();
        let root = dir.path();
        as_nobody(
            &root.join("opt/vendor"),
            "mkdir etc && echo x > etc/vendor.conf",
        );
        let allow = AllowList::new(&["/opt/vendor/etc/*".into()]).unwrap();
        let untrusted = |path: &str, uid, mode| HostError::Untrusted {
            path: path.into(),
            dir: "/opt/vendor".into(),
            uid,
            mode,
        };

        let host = HostFs::open(root).unwrap();
        assert_eq!(
            host.stat(&allow, "/opt/vendor/etc/vendor.conf"),
            Err(untrusted("/opt/vendor/etc/vendor.conf", NOBODY, 0o755))
        );
        assert_eq!(
            host.glob(&allow, "/opt/vendor/etc/*"),
            Err(untrusted("/opt/vendor/etc", NOBODY, 0o755))
        );
        let message = host
            .stat(&allow, "/opt/vendor/etc/vendor.conf")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(
                "/opt/vendor/etc/vendor.conf: the directory /opt/vendor is owned by uid 65534 \
                 with mode 0755"
            ),
            "{message}"
        );

        // Root's, but writable by its group: refused too.
        let vendor = root.join("opt/vendor");
        for d in [vendor.clone(), vendor.join("etc")] {
            std::os::unix::fs::chown(&d, Some(0), Some(0)).unwrap();
        }
        std::fs::set_permissions(&vendor, std::fs::Permissions::from_mode(0o775)).unwrap();
        let host = HostFs::open(root).unwrap();
        assert_eq!(
            host.stat(&allow, "/opt/vendor/etc/vendor.conf"),
            Err(untrusted("/opt/vendor/etc/vendor.conf", 0, 0o775))
        );

        // Root's and writable by root alone: found.
        std::fs::set_permissions(&vendor, std::fs::Permissions::from_mode(0o755)).unwrap();
        let host = HostFs::open(root).unwrap();
        assert_eq!(
            host.stat(&allow, "/opt/vendor/etc/vendor.conf")
                .unwrap()
                .kind,
            FileKind::Regular
        );
    }

    #[test]
    fn a_bound_directory_anyone_but_root_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("opt/xrt")).unwrap();
        std::fs::set_permissions(root.join("opt/xrt"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let host = HostFs::open(root).unwrap();
        let allow = AllowList::new(&["/opt/xrt".into()]).unwrap();
        assert!(matches!(
            host.stat(&allow, "/opt/xrt"),
            Err(HostError::Untrusted { ref dir, mode: 0o777, .. }) if dir == "/opt/xrt"
        ));
        assert!(matches!(
            bind_source(&host, "/opt/xrt"),
            Err(HostError::Untrusted { ref dir, mode: 0o777, .. }) if dir == "/opt/xrt"
        ));
    }

    #[test]
    fn a_root_owned_intermediate_symlink_is_followed_only_to_a_target_the_allow_list_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("opt/rocm-6.2.0/lib")).unwrap();
        std::fs::write(root.join("opt/rocm-6.2.0/lib/libamdhip64.so.6"), b"elf").unwrap();
        std::os::unix::fs::symlink("rocm-6.2.0", root.join("opt/rocm")).unwrap();
        let host = HostFs::open(root).unwrap();
        let lib = "/opt/rocm/lib/libamdhip64.so.6";

        let narrow = AllowList::new(&["/opt/rocm/lib/*".into()]).unwrap();
        assert_eq!(
            host.stat(&narrow, lib),
            Err(HostError::ResolvesElsewhere {
                path: lib.into(),
                real: "/opt/rocm-6.2.0/lib/libamdhip64.so.6".into(),
            })
        );
        assert_eq!(
            host.glob(&narrow, "/opt/rocm/lib/*"),
            Err(HostError::ResolvesElsewhere {
                path: "/opt/rocm/lib".into(),
                real: "/opt/rocm-6.2.0/lib".into(),
            })
        );

        let both = AllowList::new(&["/opt/rocm/lib/*".into(), "/opt/rocm-*/lib/*".into()]).unwrap();
        let found = host.lookup(&both, lib).unwrap();
        assert_eq!(found.stat.kind, FileKind::Regular);
        assert_eq!(
            found.real,
            Path::new("/opt/rocm-6.2.0/lib/libamdhip64.so.6")
        );
        assert_eq!(host.glob(&both, "/opt/rocm/lib/*").unwrap(), vec![lib]);
        assert_eq!(host.read_file(&both, lib, 100).unwrap(), b"elf");
        // The executor opens the source as the plan records it: resolved.
        assert!(open_source(&host, "/opt/rocm-6.2.0/lib/libamdhip64.so.6").is_ok());
        assert!(matches!(
            open_source(&host, lib),
            Err(HostError::Moved { .. })
        ));
    }
}
