//! Bounded reading of what hookhost is handed: the OCI state, the bundle's
//! `config.json`, plugin manifests and components, cache entries.
//!
//! hookhost runs as root on every container start, so no input may hang it
//! or grow its memory without limit. A FIFO blocks `open` and `read` until a
//! writer comes, a character device such as `/dev/zero` never ends, and a
//! huge file used to be read whole. So a file is opened without blocking
//! (`O_NONBLOCK`, which a regular file ignores) and without becoming our
//! terminal, `fstat`ed on that fd, refused unless it is a regular file, and
//! read from that same fd, never more than its cap (even if it grows after
//! the `fstat`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

/// Why an input was refused. Carried inside an `io::Error`, so callers
/// report it like any other read failure, naming their file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is a symbolic link, which is not followed here")]
    Symlink,
    #[error("is larger than the limit of {}", size(*limit))]
    TooLarge { limit: u64 },
}

impl From<InputError> for io::Error {
    fn from(e: InputError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Whether the last component of a path may be a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Plugin files: the plugin directories are the administrator's, and
    /// linking a manifest from one to another is ordinary.
    Yes,
    /// Files in a directory someone else may write (a bundle, the cache).
    No,
}

/// A regular file, open for reading, and its `fstat`.
pub struct Regular {
    pub file: File,
    pub stat: FileStat,
}

/// Opens `path` (relative to `dir`; `nix::fcntl::AT_FDCWD` for a plain
/// path) and checks, on the fd, that it is a regular file.
pub fn open_regular(dir: BorrowedFd<'_>, path: &Path, follow: Follow) -> io::Result<Regular> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    if follow == Follow::No {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = match openat(dir, path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // ELOOP also means a loop among the parents; say "symlink" only
        // when the file itself is one.
        Err(Errno::ELOOP)
            if follow == Follow::No
                && fstatat(dir, path, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| kind(&st) == SFlag::S_IFLNK) =>
        {
            return Err(InputError::Symlink.into())
        }
        Err(e) => return Err(e.into()),
    };
    let stat = fstat(&fd)?;
    match kind(&stat) {
        SFlag::S_IFREG => Ok(Regular {
            file: File::from(fd),
            stat,
        }),
        other => Err(InputError::NotRegular(describe(other)).into()),
    }
}

/// The whole of a regular file of at most `limit` bytes.
pub fn read_regular(
    dir: BorrowedFd<'_>,
    path: &Path,
    follow: Follow,
    limit: u64,
) -> io::Result<Vec<u8>> {
    let Regular { file, stat } = open_regular(dir, path, follow)?;
    let len = u64::try_from(stat.st_size).unwrap_or(0);
    check_size(len, limit)?;
    read_limited(file, limit, len)
}

/// Refuses a size over `limit`.
pub fn check_size(len: u64, limit: u64) -> io::Result<()> {
    if len > limit {
        return Err(InputError::TooLarge { limit }.into());
    }
    Ok(())
}

/// All of `reader`, or an error once it gives more than `limit` bytes.
/// `expected` sizes the buffer (a file's `st_size`; 0 for a stream).
pub fn read_limited(reader: impl Read, limit: u64, expected: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected.min(limit)).unwrap_or(0));
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    check_size(bytes.len() as u64, limit)?;
    Ok(bytes)
}

/// A size for people: "4 MiB", "1536 KiB", "100 bytes".
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

fn describe(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO (named pipe)",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "of an unknown file type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::AT_FDCWD;
    use std::time::{Duration, Instant};

    fn read(path: &Path, follow: Follow, limit: u64) -> Result<Vec<u8>, String> {
        read_regular(AT_FDCWD, path, follow, limit).map_err(|e| e.to_string())
    }

    #[test]
    fn a_regular_file_within_its_limit_is_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read(&file, Follow::No, 5).unwrap(), b"12345");
        let err = read(&file, Follow::No, 4).unwrap_err();
        assert_eq!(err, "is larger than the limit of 4 bytes");
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let start = Instant::now();
        let err = read(&fifo, Follow::Yes, 1 << 20).unwrap_err();
        assert_eq!(err, "is a FIFO (named pipe), not a regular file");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_character_device_is_refused() {
        let err = read(Path::new("/dev/zero"), Follow::Yes, 1 << 20).unwrap_err();
        assert_eq!(err, "is a character device, not a regular file");
    }

    #[test]
    fn a_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = read(tmp.path(), Follow::Yes, 1 << 20).unwrap_err();
        assert_eq!(err, "is a directory, not a regular file");
    }

    #[test]
    fn a_symlink_is_refused_only_when_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("real"), b"x").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        assert_eq!(read(&link, Follow::Yes, 10).unwrap(), b"x");
        let err = read(&link, Follow::No, 10).unwrap_err();
        assert_eq!(err, "is a symbolic link, which is not followed here");
    }

    #[test]
    fn a_sparse_file_over_its_limit_is_refused_without_reading_it() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let start = Instant::now();
        let err = read(&big, Follow::No, 16 << 20).unwrap_err();
        assert_eq!(err, "is larger than the limit of 16 MiB");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_stream_is_read_up_to_its_limit_and_no_further() {
        let stream = std::io::repeat(b'x');
        let err = read_limited(stream, 1 << 20, 0).unwrap_err().to_string();
        assert_eq!(err, "is larger than the limit of 1 MiB");
        assert_eq!(read_limited(&b"abc"[..], 3, 0).unwrap(), b"abc");
    }
}
