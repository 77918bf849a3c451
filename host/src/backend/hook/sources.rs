//! The one module of privileged source opening: the hook back end's
//! access to host files, as root, for what a plan binds or copies into a
//! container.
//!
//! Plugins never come here; they see the host through [`crate::hostfs`],
//! read-only and through their allow-lists. The plan records each source as
//! it really was when the allow-list passed it ([`Located::real`]); here a
//! source is opened only while it still resolves to itself, through
//! directories that root alone can write (the checks, and their cache, are
//! `HostFs::find_planned`'s), so nothing swapped in since can be bound or
//! copied.

use std::fs::File;
use std::os::fd::OwnedFd;

#[cfg(doc)]
use crate::hostfs::Located;
use crate::hostfs::{invalid, FileKind, HostError, HostFs};

/// A detached bind mount of a host path (`open_tree`): what the executor
/// mounts into a container. The plan records sources as they really
/// are ([`Located::real`]), checked against the allow-list when it was
/// made; here the path must still resolve to itself, through trusted
/// directories, so nothing swapped in since can be bound.
pub fn bind_source(host: &HostFs, path: &str) -> Result<OwnedFd, HostError> {
    use rustix::mount::OpenTreeFlags;
    let found = host.find_planned(path)?;
    let tree = rustix::mount::open_tree(
        &found.handle,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| HostError::Io {
        path: path.into(),
        message: format!("open_tree: {e}"),
    })?;
    Ok(tree)
}

/// A host regular file opened for reading, with its permission bits:
/// the source of a copy. Checked as [`bind_source`] is.
pub fn open_source(host: &HostFs, path: &str) -> Result<(File, u32), HostError> {
    let found = host.find_planned(path)?;
    if found.kind != FileKind::Regular {
        return Err(invalid(path, "is not a regular file".into()));
    }
    let file = host
        .reopen(&found.handle, nix::fcntl::OFlag::O_RDONLY)
        .map_err(|e| HostError::Io {
            path: path.into(),
            message: format!("opening it: {e}"),
        })?;
    Ok((file, found.stat.st_mode & 0o7777))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use super::*;
    use crate::allow::AllowList;

    #[test]
    fn a_source_swapped_for_a_symlink_after_planning_is_refused_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/shadow"), b"secret").unwrap();
        std::fs::create_dir_all(root.join("opt/vendor/etc")).unwrap();
        std::fs::write(root.join("opt/vendor/etc/shadow"), b"harmless").unwrap();
        let host = HostFs::open(root).unwrap();
        let allow = AllowList::new(&["/opt/vendor/etc/*".into()]).unwrap();
        let path = "/opt/vendor/etc/shadow";

        // The plan is made while the tree is clean.
        let planned = host.lookup(&allow, path).unwrap().real;
        assert_eq!(planned, Path::new(path));
        let (mut before, _) = open_source(&host, path).unwrap();
        let mut content = String::new();
        before.read_to_string(&mut content).unwrap();
        assert_eq!(content, "harmless");

        // Then `etc` becomes a link to /etc before the executor opens it.
        std::fs::rename(root.join("opt/vendor/etc"), root.join("opt/vendor/etc.old")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("opt/vendor/etc")).unwrap();
        let moved = || HostError::Moved {
            path: path.into(),
            real: "/etc/shadow".into(),
        };
        assert_eq!(open_source(&host, path).map(drop), Err(moved()));
        assert_eq!(bind_source(&host, path).map(drop), Err(moved()));
        assert_eq!(
            moved().to_string(),
            "/opt/vendor/etc/shadow now resolves to /etc/shadow, not to itself: \
             the host changed after the plan was made"
        );
    }
}
