//! The host as a plugin sees it: absolute host paths, resolved under the
//! host root (`--host-root`, `/` in production) and filtered through the
//! plugin's allow-list.
//!
//! Every look-up resolves with chroot semantics (openat2 `RESOLVE_IN_ROOT`
//! through `pathrs`) and never follows the last component: a symlink is
//! reported as itself and the plugin decides whether to read it. A fake GPU
//! host for tests is then just a directory.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};
use nix::sys::stat::SFlag;

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
    #[error("{0} does not exist on the host")]
    NotFound(String),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// Checks that `path` is absolute and free of `..`, and returns it cleaned
/// (`//` and `.` removed). Plugins name paths; they never navigate.
pub fn clean_absolute(path: &str) -> Result<PathBuf, String> {
    if path.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if !path.starts_with('/') {
        return Err("is not an absolute path".into());
    }
    let mut clean = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => clean.push(part),
            Component::ParentDir => return Err("contains `..`".into()),
            Component::Prefix(_) => unreachable!("no prefixes on Unix"),
        }
    }
    Ok(clean)
}

/// Shell globs over absolute host paths. `*`, `?` and `[...]` stay within one
/// path component; `**` as a whole component matches any depth.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl AllowList {
    pub fn new(globs: &[String]) -> Result<Self, String> {
        let patterns = globs
            .iter()
            .map(|g| {
                if !g.starts_with('/') {
                    return Err(format!("`{g}` is not an absolute path pattern"));
                }
                Pattern::new(g).map_err(|e| format!("`{g}` is not a valid glob: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList { patterns })
    }

    pub fn allows(&self, path: &Path) -> bool {
        self.patterns
            .iter()
            .any(|p| p.matches_path_with(path, MATCH))
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Pattern::as_str)
    }

    /// Whether some allowed path could lie below `dir`: what lets `glob`
    /// skip listing directories that can hold nothing allowed.
    pub fn may_hold_below(&self, dir: &Path) -> bool {
        let dir: Vec<_> = dir.iter().skip(1).collect();
        self.patterns.iter().any(|pattern| {
            let parts: Vec<&str> = pattern.as_str().split('/').skip(1).collect();
            for (i, name) in dir.iter().enumerate() {
                match parts.get(i) {
                    Some(&"**") => return true,
                    Some(part) => {
                        let matched = Pattern::new(part)
                            .is_ok_and(|p| p.matches_with(&name.to_string_lossy(), MATCH));
                        if !matched {
                            return false;
                        }
                    }
                    None => return false,
                }
            }
            parts.len() > dir.len()
        })
    }
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
}

impl std::fmt::Debug for HostFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFs")
            .field("root", &self.root_path)
            .finish()
    }
}

impl HostFs {
    pub fn open(root: &Path) -> Result<Self, HostError> {
        let root_path = std::path::absolute(root).map_err(|e| HostError::Io {
            path: root.display().to_string(),
            message: e.to_string(),
        })?;
        let handle = pathrs::Root::open(&root_path).map_err(|e| HostError::Io {
            path: root_path.display().to_string(),
            message: format!("cannot open the host root: {e}"),
        })?;
        Ok(HostFs {
            root_path,
            root: handle,
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
            // Only directories that can hold an allowed path are listed.
            candidates.retain(|dir| allow.may_hold_below(dir));
            candidates = candidates
                .iter()
                .flat_map(|dir| {
                    // Unreadable directories are simply not part of the answer.
                    let names = self.list_dir(dir).unwrap_or_default();
                    names
                        .into_iter()
                        .filter(|name| component.matches_with(name, MATCH))
                        .map(|name| dir.join(name))
                        .collect::<Vec<_>>()
                })
                .collect();
            if candidates.len() > GLOB_LIMIT {
                return Err(invalid(
                    pattern,
                    format!("matches more than {GLOB_LIMIT} entries; narrow the pattern"),
                ));
            }
        }
        let mut found: Vec<String> = candidates
            .into_iter()
            .filter(|p| allow.allows(p) && self.root.resolve_nofollow(p).is_ok())
            .map(|p| p.display().to_string())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The entry names of a host directory, resolved under the host root.
    fn list_dir(&self, dir: &Path) -> Option<Vec<String>> {
        let handle = self.root.resolve(dir).ok()?;
        let fd = handle
            .reopen(pathrs::flags::OpenFlags::O_RDONLY | pathrs::flags::OpenFlags::O_DIRECTORY)
            .ok()?;
        let mut listing = nix::dir::Dir::from_fd(fd.into()).ok()?;
        Some(
            listing
                .iter()
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "." && name != "..")
                .collect(),
        )
    }

    /// lstat of an allowed host path.
    pub fn stat(&self, allow: &AllowList, path: &str) -> Result<HostStat, HostError> {
        let clean = self.check(allow, path)?;
        let handle = self
            .root
            .resolve_nofollow(&clean)
            .map_err(|e| os_error(path, &e))?;
        let (kind, st) = file_kind(&handle, path)?;
        let is_dev = matches!(kind, FileKind::CharDevice | FileKind::BlockDevice);
        let rdev = st.st_rdev;
        Ok(HostStat {
            kind,
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
        })
    }

    /// The content of an allowed symlink.
    pub fn read_link(&self, allow: &AllowList, path: &str) -> Result<String, HostError> {
        let clean = self.check(allow, path)?;
        let target = self.root.readlink(&clean).map_err(|e| os_error(path, &e))?;
        Ok(target.display().to_string())
    }

    /// At most `limit` bytes (capped at [`READ_LIMIT`]) of an allowed
    /// regular file. A symlink is not followed: read its target instead.
    pub fn read_file(
        &self,
        allow: &AllowList,
        path: &str,
        limit: u32,
    ) -> Result<Vec<u8>, HostError> {
        let clean = self.check(allow, path)?;
        let handle = self
            .root
            .resolve_nofollow(&clean)
            .map_err(|e| os_error(path, &e))?;
        if file_kind(&handle, path)?.0 != FileKind::Regular {
            return Err(invalid(path, "is not a regular file".into()));
        }
        let file = handle
            .reopen(pathrs::flags::OpenFlags::O_RDONLY)
            .map_err(|e| os_error(path, &e))?;
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

    /// A detached bind mount of a host path (`open_tree`): what the executor
    /// mounts into a container. The plan was checked against
    /// the allow-list when it was made; the path is resolved under the host
    /// root again here, never following its last component.
    pub fn bind_source(&self, path: &str) -> Result<std::os::fd::OwnedFd, HostError> {
        use rustix::mount::OpenTreeFlags;
        let io = |e: String| HostError::Io {
            path: path.into(),
            message: e,
        };
        let handle = self
            .root
            .resolve_nofollow(path)
            .map_err(|e| os_error(path, &e))?;
        let tree = rustix::mount::open_tree(
            &handle,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .map_err(|e| io(format!("open_tree: {e}")))?;
        Ok(tree)
    }

    /// A host regular file opened for reading, with its permission bits:
    /// the source of a copy.
    pub fn open_source(&self, path: &str) -> Result<(std::fs::File, u32), HostError> {
        let handle = self
            .root
            .resolve_nofollow(path)
            .map_err(|e| os_error(path, &e))?;
        let (kind, st) = file_kind(&handle, path)?;
        if kind != FileKind::Regular {
            return Err(invalid(path, "is not a regular file".into()));
        }
        let file = handle
            .reopen(pathrs::flags::OpenFlags::O_RDONLY)
            .map_err(|e| os_error(path, &e))?;
        Ok((file, st.st_mode & 0o7777))
    }

    /// Cleans `path` and checks it against the allow-list: the first step of
    /// every host look-up.
    pub fn check(&self, allow: &AllowList, path: &str) -> Result<PathBuf, HostError> {
        let clean = clean_absolute(path).map_err(|reason| invalid(path, reason))?;
        if !allow.allows(&clean) {
            return Err(HostError::NotAllowed(path.into()));
        }
        Ok(clean)
    }
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

fn invalid(path: &str, reason: String) -> HostError {
    HostError::Invalid {
        path: path.into(),
        reason,
    }
}

fn os_error(path: &str, e: &pathrs::error::Error) -> HostError {
    match e.kind() {
        pathrs::error::ErrorKind::OsError(Some(errno))
            if errno == nix::errno::Errno::ENOENT as i32 =>
        {
            HostError::NotFound(path.into())
        }
        _ => HostError::Io {
            path: path.into(),
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_absolute_refuses_relative_and_dotdot() {
        assert_eq!(
            clean_absolute("/dev//./nvidia0").unwrap(),
            PathBuf::from("/dev/nvidia0")
        );
        assert!(clean_absolute("dev/nvidia0").is_err());
        assert!(clean_absolute("/dev/../etc/shadow").is_err());
        assert!(clean_absolute("/dev/a\0b").is_err());
    }

    #[test]
    fn allow_list_star_stays_in_one_component() {
        let allow = AllowList::new(&["/dev/nvidia*".into(), "/opt/xrt/**".into()]).unwrap();
        assert!(allow.allows(Path::new("/dev/nvidia0")));
        assert!(allow.allows(Path::new("/dev/nvidiactl")));
        assert!(!allow.allows(Path::new("/dev/nvidia0/../../etc/shadow")));
        assert!(!allow.allows(Path::new("/dev/nvidia-caps/x")));
        assert!(allow.allows(Path::new("/opt/xrt/lib/libxrt.so")));
        assert!(!allow.allows(Path::new("/etc/shadow")));
    }

    #[test]
    fn allow_list_refuses_relative_patterns() {
        assert!(AllowList::new(&["dev/*".into()]).is_err());
        assert!(AllowList::new(&["/dev/[".into()]).is_err());
    }

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
        let allow = AllowList::new(&["/opt/*/lib*.so".into()]).unwrap();
        assert_eq!(
            host.glob(&allow, "/opt/*/lib*.so").unwrap(),
            vec!["/opt/other/libinside.so", "/opt/vendor/libinside.so"]
        );
        assert!(matches!(
            host.glob(&allow, "/opt/**/lib*.so"),
            Err(HostError::Invalid { .. })
        ));
    }

    #[test]
    fn may_hold_below_prunes_directories_no_allowed_path_can_be_under() {
        let allow =
            AllowList::new(&["/dev/nvidia[0-9]*".into(), "/usr/lib/**/libcuda.so".into()]).unwrap();
        assert!(allow.may_hold_below(Path::new("/")));
        assert!(allow.may_hold_below(Path::new("/dev")));
        assert!(!allow.may_hold_below(Path::new("/proc")));
        assert!(
            !allow.may_hold_below(Path::new("/dev/nvidia0")),
            "a file, not a directory"
        );
        assert!(allow.may_hold_below(Path::new("/usr/lib/x86_64-linux-gnu/deep")));
        assert!(!allow.may_hold_below(Path::new("/usr/share")));
    }
}
