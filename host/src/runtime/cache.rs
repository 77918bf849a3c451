//! The cache of precompiled plugins.
//!
//! Compiling a component costs tens of milliseconds; loading a precompiled
//! one costs well under one. But a precompiled component is native code that
//! wasmtime loads and runs without further checks, so the cache is trusted
//! only when nobody else can change what we read from it:
//!
//! - The directory is opened once, without following a symlink, and checked
//!   on that fd: a directory owned by the running user (or root) with no
//!   group or other write bit. Every directory above it is checked as
//!   OpenSSH checks the path of `authorized_keys`: owned by root or the
//!   running user and not writable by group or others, except a sticky one
//!   such as `/tmp`, where nobody can rename what another user owns. The
//!   path is walked from `/` one `openat` at a time, each relative to the
//!   fd of the directory just checked, so what is checked is what is used;
//!   a symlink among the parents is followed only from a directory that
//!   passed, so only root or the running user can have made it.
//! - Entries are opened relative to the directory's fd, never followed if a
//!   symlink, checked on their own fd (a regular file, same owner and mode
//!   rules) and read from it: what is checked is what is loaded.
//! - Entries are keyed by the identity of the `.wasm` file (device, inode,
//!   size, modification and change times), the wasmtime version and the
//!   engine's settings, so a start that finds its entry never reads or hashes
//!   the `.wasm`. Any write to the file changes its change time, which only
//!   the kernel sets, so an entry is not taken for another version of its
//!   file (unless a start compiles it between two writes of the same size
//!   within one tick of the file system's clock: `plugins compile` after an
//!   install settles that); and whatever an entry holds was compiled here, from a component the
//!   administrator installed, and runs in the sandbox like any other.
//! - Entries are written exclusively under a temporary name then renamed
//!   within the directory, so a reader never sees half a file, and a file is
//!   never written again once it has a name: a loaded entry is mapped, not
//!   copied.
//!
//! A problem is reported, never fixed: the message names the directory or
//! entry, its owner and its mode.

use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component as PathPart, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::input::{self, Follow};

/// The wasmtime this host is built with (pinned exactly in Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The most of one entry hookhost reads. A precompiled component is a few
/// times the size of its `.wasm`, which is capped at 256 MiB.
const ENTRY_LIMIT: u64 = 1 << 30;

// The causes are part of the messages and deliberately not `source`s: the
// top level prints the whole chain, which would then say them twice.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {dir}: {problem}")]
    Untrusted { dir: PathBuf, problem: String },
    #[error("cache entry {entry}: {problem}")]
    UntrustedEntry { entry: PathBuf, problem: String },
    #[error("cache directory {dir}: {op}: {error}")]
    Io {
        dir: PathBuf,
        op: String,
        error: std::io::Error,
    },
}

/// A component from [`Cache::load_or_compile`].
#[derive(Debug)]
pub struct Cached {
    pub component: Component,
    /// Whether it had to be compiled (no trusted entry was there).
    pub compiled: bool,
    /// Its entry in the cache.
    pub entry: PathBuf,
}

#[derive(Debug)]
pub struct Cache {
    /// The path it was opened by, for messages only.
    dir: PathBuf,
    /// The checked directory; every entry is found relative to it.
    fd: OwnedFd,
}

impl Cache {
    /// Opens the cache, creating the directory (mode 0700, as any missing
    /// parent) if it is missing, and refuses one that others could write to
    /// or swap.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let io = |op: String, error: std::io::Error| CacheError::Io {
            dir: dir.to_path_buf(),
            op,
            error,
        };
        let absolute =
            std::path::absolute(dir).map_err(|e| io("make the path absolute".into(), e))?;
        let name = match absolute.components().next_back() {
            Some(PathPart::Normal(name)) => name.to_owned(),
            _ => return Err(untrusted(dir, "does not end in a directory name")),
        };
        let parent = absolute.parent().unwrap_or(Path::new("/"));
        let fd = open_parents(parent, dir)?;
        let fd = match open_or_create_dir(&fd, Path::new(&name), true) {
            Ok(fd) => fd,
            Err(DirProblem::Io(e)) => return Err(io("open or create it".into(), e)),
            Err(DirProblem::Untrusted(p)) => return Err(untrusted(dir, p)),
        };
        let stat = fstat(&fd).map_err(|e| io("stat".into(), e.into()))?;
        check_owner_and_mode(&stat).map_err(|p| untrusted(dir, &p))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
            fd,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name of the precompiled form, for this engine, of the
    /// component whose file has the status `wasm`.
    fn entry_name(engine: &Engine, wasm: &FileStat) -> String {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let identity = [
            wasm.st_dev,
            wasm.st_ino,
            wasm.st_size as u64,
            wasm.st_mtime as u64,
            wasm.st_mtime_nsec as u64,
            wasm.st_ctime as u64,
            wasm.st_ctime_nsec as u64,
        ];
        let digest = Sha256::digest(identity.map(u64::to_le_bytes).as_flattened());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "{hex}-wasmtime{WASMTIME_VERSION}-{:016x}.cwasm",
            engine_hash.finish()
        )
    }

    /// Where the precompiled form of the component whose file has the
    /// status `wasm` lives for this engine.
    pub fn entry(&self, engine: &Engine, wasm: &FileStat) -> PathBuf {
        self.dir.join(Self::entry_name(engine, wasm))
    }

    /// The component whose file has the status `wasm`: loaded from the cache
    /// when a trusted entry is there, else compiled from the bytes `read`
    /// returns (called only then) and stored.
    pub fn load_or_compile<E: From<LoadError>>(
        &self,
        engine: &Engine,
        wasm: &FileStat,
        read: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Cached, E> {
        let name = Self::entry_name(engine, wasm);
        let entry = self.dir.join(&name);
        if let Some(component) = self.load(engine, &name)? {
            return Ok(Cached {
                component,
                compiled: false,
                entry,
            });
        }
        let component = Component::new(engine, read()?).map_err(LoadError::Compile)?;
        self.store(&name, &component).map_err(LoadError::from)?;
        Ok(Cached {
            component,
            compiled: true,
            entry,
        })
    }

    fn load(&self, engine: &Engine, name: &str) -> Result<Option<Component>, LoadError> {
        let entry = self.dir.join(name);
        let regular = match input::open_regular(self.fd.as_fd(), Path::new(name), Follow::No) {
            Ok(regular) => regular,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(untrusted_entry(&entry, e.to_string()).into())
            }
            Err(e) => return Err(self.io("open an entry", e).into()),
        };
        check_owner_and_mode(&regular.stat).map_err(|p| untrusted_entry(&entry, p))?;
        if u64::try_from(regular.stat.st_size).unwrap_or(u64::MAX) > ENTRY_LIMIT {
            return Err(
                untrusted_entry(&entry, format!("is larger than {ENTRY_LIMIT} bytes")).into(),
            );
        }
        // wasmtime maps a file only by its path: the checked fd's own path in
        // /proc names the very file that was checked, whatever happens to the
        // entry's name meanwhile.
        let checked = format!("/proc/self/fd/{}", regular.file.as_raw_fd());
        // SAFETY: `deserialize_file` maps these bytes and runs them as native
        // code. It is sound as long as they were written by
        // `Component::serialize` of a compatible engine and do not change
        // while mapped: the file was opened without following a symlink,
        // relative to the checked directory fd, and it, the directory and
        // every parent are owned by us or root and writable by no one else;
        // we write an entry only under a temporary name and never again once
        // it is renamed into place. A stale or foreign-engine entry fails
        // wasmtime's own header check and is then recompiled.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &checked) };
        Ok(loaded.ok())
    }

    fn store(&self, name: &str, component: &Component) -> Result<(), CacheError> {
        let bytes = component.serialize().map_err(|e| CacheError::Io {
            dir: self.dir.clone(),
            op: "serialize a component".into(),
            error: std::io::Error::other(e.to_string()),
        })?;
        let tmp = format!(".tmp-{}-{name}", std::process::id());
        let write = || -> std::io::Result<()> {
            let fd = openat(
                self.fd.as_fd(),
                tmp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let mut file = std::fs::File::from(fd);
            file.write_all(&bytes)?;
            file.sync_all()?;
            renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name)?;
            Ok(())
        };
        write().map_err(|error| {
            let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            self.io("write an entry", error)
        })
    }

    fn io(&self, op: &str, error: std::io::Error) -> CacheError {
        CacheError::Io {
            dir: self.dir.clone(),
            op: op.to_string(),
            error,
        }
    }
}

/// Why a plugin's code could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0:#}")]
    Compile(wasmtime::Error),
}

/// The directory `path` (absolute), walked from `/` and created (0700)
/// where missing, with every directory on the way checked by
/// [`check_parent`] before anything is looked up in it. A symlink on the
/// way is followed, its target walked the same way, when it is owned by
/// root or the running user: it lies in a directory that passed, so only
/// they can have made it, or, in a sticky one like `/tmp`, anyone, hence
/// the owner check (the kernel's `protected_symlinks` rule). `..` goes back
/// along the walk, which is the real ancestry.
fn open_parents(path: &Path, cache: &Path) -> Result<OwnedFd, CacheError> {
    let io = |op: String, error: std::io::Error| CacheError::Io {
        dir: cache.to_path_buf(),
        op,
        error,
    };
    // Names left to walk, the next one last.
    let mut todo: Vec<OsString> = Vec::new();
    let push = |todo: &mut Vec<OsString>, path: &Path| {
        for part in path.components().rev() {
            match part {
                PathPart::Normal(name) => todo.push(name.to_owned()),
                PathPart::ParentDir => todo.push("..".into()),
                PathPart::RootDir | PathPart::CurDir | PathPart::Prefix(_) => {}
            }
        }
    };
    push(&mut todo, path);
    let root = PathBuf::from("/");
    let fd =
        open_dir(nix::fcntl::AT_FDCWD, &root, false).map_err(|e| io("open /".into(), e.into()))?;
    check_parent(&fd, &root, cache)?;
    let mut walked = vec![(root, fd)];
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            if walked.len() > 1 {
                walked.pop();
            }
            continue;
        }
        let (at, dir) = walked.last().expect("/ is never popped");
        let at = at.join(&name);
        match open_or_create_dir(dir, &at, false) {
            Ok(fd) => {
                check_parent(&fd, &at, cache)?;
                walked.push((at, fd));
            }
            Err(DirProblem::Untrusted(_)) if links < 40 => {
                let link = fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .ok()
                    .filter(|st| kind(st) == SFlag::S_IFLNK)
                    .ok_or_else(|| {
                        untrusted(cache, &format!("{} is not a directory", at.display()))
                    })?;
                let euid = nix::unistd::geteuid().as_raw();
                if link.st_uid != 0 && link.st_uid != euid {
                    return Err(untrusted(
                        cache,
                        &format!(
                            "{} is a symlink owned by uid {}, neither root nor the running user (uid {euid}), so it is not followed",
                            at.display(),
                            link.st_uid
                        ),
                    ));
                }
                let target = readlinkat(dir.as_fd(), name.as_os_str())
                    .map_err(|e| io(format!("read the link {}", at.display()), e.into()))?;
                links += 1;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    walked.truncate(1);
                }
                push(&mut todo, &target);
            }
            Err(DirProblem::Untrusted(problem)) => {
                return Err(untrusted(cache, &format!("{} {problem}", at.display())))
            }
            Err(DirProblem::Io(e)) => {
                return Err(io(format!("open or create {}", at.display()), e))
            }
        }
    }
    Ok(walked.pop().expect("/ is never popped").1)
}

/// `name` in `dir`, as a directory, never through a symlink. The cache
/// itself is opened for reading; a parent only as a handle (`O_PATH`), which
/// needs no read permission.
fn open_dir(dir: impl AsFd, name: &Path, cache: bool) -> nix::Result<OwnedFd> {
    let access = if cache {
        OFlag::O_RDONLY
    } else {
        OFlag::O_PATH
    };
    openat(
        dir.as_fd(),
        name,
        access | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

enum DirProblem {
    Untrusted(&'static str),
    Io(std::io::Error),
}

/// The last component of `path`, in `parent`, created (mode 0700) when
/// missing. A symlink or other non-directory there is refused.
fn open_or_create_dir(parent: &OwnedFd, path: &Path, cache: bool) -> Result<OwnedFd, DirProblem> {
    let name = Path::new(path.file_name().expect("a named component"));
    let opened = match open_dir(parent, name, cache) {
        Err(Errno::ENOENT) => {
            match mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(DirProblem::Io(e.into())),
            }
            open_dir(parent, name, cache)
        }
        other => other,
    };
    opened.map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => DirProblem::Untrusted(
            match fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if kind(&st) == SFlag::S_IFLNK => "is a symlink, which is refused",
                _ => "is not a directory",
            },
        ),
        e => DirProblem::Io(e.into()),
    })
}

/// A directory above the cache: owned by root or the running user and not
/// writable by group or others, unless sticky (`/tmp`): there nobody can
/// rename or remove what another user owns, and the child is checked next.
fn check_parent(fd: &OwnedFd, path: &Path, cache: &Path) -> Result<(), CacheError> {
    let stat = fstat(fd).map_err(|e| CacheError::Io {
        dir: cache.to_path_buf(),
        op: format!("stat {}", path.display()),
        error: e.into(),
    })?;
    let euid = nix::unistd::geteuid().as_raw();
    let mode = stat.st_mode & 0o7777;
    let problem = if stat.st_uid != 0 && stat.st_uid != euid {
        format!("is owned by neither root nor the running user (uid {euid})")
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        "is writable by group or others and not sticky".to_string()
    } else {
        return Ok(());
    };
    Err(untrusted(
        cache,
        &format!(
            "its parent {} (owner uid {}, mode {mode:04o}) {problem}, so another user could swap the cache for their own; move the cache, or make that directory root's and writable by nobody else",
            path.display(),
            stat.st_uid
        ),
    ))
}

/// The cache directory and each entry: owned by the running user or root,
/// and writable by nobody else.
fn check_owner_and_mode(stat: &FileStat) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if stat.st_uid != euid && stat.st_uid != 0 {
        return Err(format!(
            "is owned by uid {}, not by root or the running user (uid {euid})",
            stat.st_uid
        ));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:04o}); run `chmod go-w` on it",
            stat.st_mode & 0o7777
        ));
    }
    Ok(())
}

fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

fn untrusted(path: &Path, problem: &str) -> CacheError {
    CacheError::Untrusted {
        dir: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

fn untrusted_entry(entry: &Path, problem: String) -> CacheError {
    CacheError::UntrustedEntry {
        entry: entry.to_path_buf(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// The smallest component there is: a header and nothing else.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    const NOBODY: u32 = 65534;

    /// The status of a component file written in `dir`, as the runtime has
    /// it when it looks the component up.
    fn component_file(dir: &Path) -> FileStat {
        let path = dir.join("empty.wasm");
        fs::write(&path, EMPTY_COMPONENT).unwrap();
        nix::sys::stat::stat(&path).unwrap()
    }

    fn read() -> Result<Vec<u8>, LoadError> {
        Ok(EMPTY_COMPONENT.to_vec())
    }

    fn chown(path: &Path, uid: u32) {
        std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_parent_owned_by_another_user_is_refused_by_name_owner_and_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::create_dir(theirs.join("cache")).unwrap();
        chmod(&theirs.join("cache"), 0o700);
        chmod(&theirs, 0o755);
        chown(&theirs, NOBODY);
        let err = Cache::open(&theirs.join("cache")).unwrap_err().to_string();
        assert!(
            err.contains(&format!("its parent {} (owner uid 65534, mode 0755) is owned by neither root nor the running user", theirs.display())),
            "{err}"
        );
    }

    #[test]
    fn a_group_writable_parent_is_refused_unless_sticky() {
        let tmp = tempfile::tempdir().unwrap();
        for (mode, refused) in [(0o775, true), (0o1777, false)] {
            let parent = tmp.path().join(format!("{mode:o}"));
            fs::create_dir(&parent).unwrap();
            chmod(&parent, mode);
            let opened = Cache::open(&parent.join("cache"));
            if refused {
                let err = opened.unwrap_err().to_string();
                assert!(
                    err.contains("writable by group or others and not sticky"),
                    "{err}"
                );
                assert!(err.contains(&parent.display().to_string()), "{err}");
            } else {
                opened.unwrap();
            }
        }
    }

    #[test]
    fn a_parent_symlink_is_followed_only_when_root_or_the_user_made_it() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        // A sticky, world-writable directory: anyone may put a link in it.
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o1777);
        std::os::unix::fs::symlink("../real", shared.join("ours")).unwrap();
        Cache::open(&shared.join("ours/cache")).unwrap();
        assert!(real.join("cache").is_dir(), "created through the link");

        std::os::unix::fs::symlink(&real, shared.join("theirs")).unwrap();
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &shared.join("theirs"),
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let err = Cache::open(&shared.join("theirs/cache"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("theirs is a symlink owned by uid 65534") && err.contains("not followed"),
            "{err}"
        );
    }

    #[test]
    fn entries_are_found_through_the_directory_opened_not_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let engine = Engine::default();
        let wasm = component_file(tmp.path());
        let cache = Cache::open(&dir).unwrap();
        let compiled = cache
            .load_or_compile(&engine, &wasm, read)
            .unwrap()
            .compiled;
        assert!(compiled);
        // The path now names another directory, with nothing in it.
        fs::rename(&dir, tmp.path().join("moved")).unwrap();
        fs::create_dir(&dir).unwrap();
        let compiled = cache
            .load_or_compile(&engine, &wasm, read)
            .unwrap()
            .compiled;
        assert!(!compiled, "loaded from the directory that was checked");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn a_cached_component_is_loaded_without_reading_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let wasm = component_file(tmp.path());
        let cache = Cache::open(&tmp.path().join("cache")).unwrap();
        assert!(
            cache
                .load_or_compile(&engine, &wasm, read)
                .unwrap()
                .compiled
        );
        let cached = cache
            .load_or_compile(&engine, &wasm, || -> Result<Vec<u8>, LoadError> {
                panic!("the component was read although its entry was there")
            })
            .unwrap();
        assert!(!cached.compiled);
    }

    #[test]
    fn a_rewritten_component_gets_an_entry_of_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = Cache::open(&tmp.path().join("cache")).unwrap();
        let before = component_file(tmp.path());
        let first = cache.load_or_compile(&engine, &before, read).unwrap();
        // The same path, size and bytes, written again: only its times differ
        // (after a pause: some file systems keep times to a clock tick).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let after = component_file(tmp.path());
        assert_eq!(
            (before.st_ino, before.st_size),
            (after.st_ino, after.st_size)
        );
        let second = cache.load_or_compile(&engine, &after, read).unwrap();
        assert!(second.compiled, "the old entry was taken for the new file");
        assert_ne!(first.entry, second.entry);
    }

    #[test]
    fn a_symlinked_entry_is_refused_even_to_a_trusted_file() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let wasm = component_file(tmp.path());
        let real = Cache::open(&tmp.path().join("real")).unwrap();
        real.load_or_compile(&engine, &wasm, read).unwrap();
        let entry = real.entry(&engine, &wasm);
        let linked = Cache::open(&tmp.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(&entry, linked.entry(&engine, &wasm)).unwrap();
        let err = linked
            .load_or_compile(&engine, &wasm, read)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cache entry") && err.contains("symbolic link"),
            "{err}"
        );
    }

    #[test]
    fn an_entry_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let wasm = component_file(tmp.path());
        let cache = Cache::open(&tmp.path().join("cache")).unwrap();
        cache.load_or_compile(&engine, &wasm, read).unwrap();
        chown(&cache.entry(&engine, &wasm), NOBODY);
        let err = cache
            .load_or_compile(&engine, &wasm, read)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is owned by uid 65534"), "{err}");
    }

    #[test]
    fn a_cache_writable_by_others_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Cache::open(&dir).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o777,
            "the mode is reported, not fixed behind the user's back"
        );
    }

    #[test]
    fn a_missing_cache_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        Cache::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_symlinked_cache_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", tmp.path().join("link")).unwrap();
        let err = Cache::open(&tmp.path().join("link"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("symlink"), "{err}");
    }
}
