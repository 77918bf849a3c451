//! The container's image as a policy may see it: the names in one of its
//! directories, no more. The directory is resolved inside the rootfs
//! (openat2 `RESOLVE_IN_ROOT`, through pathrs), as the container will see
//! it: an image link `/usr/local/cuda -> /etc` names the image's `/etc`,
//! never the host's. Contents are never read here: a policy decides from
//! names, and only ldconfig, in its sandbox, opens the image's libraries.

use std::path::Path;

use pathrs::flags::OpenFlags;
use pathrs::Root;

use crate::requests::RequestError;

/// More names than a directory a policy looks into should hold; the
/// listing of a hostile image is bounded by it.
pub const MAX_ENTRIES: usize = 4096;

/// The sorted names in the image directory `dir` (a clean absolute
/// container path) under `rootfs`.
pub fn entries(rootfs: &Path, dir: &str) -> Result<Vec<String>, RequestError> {
    let io = |what: &str, e: pathrs::error::Error| {
        if crate::error::is_enoent(&e) {
            RequestError::NotFound(format!("{dir}: no such directory in the image"))
        } else {
            RequestError::Io(format!(
                "{dir}: {what} in the image at {}: {}",
                rootfs.display(),
                crate::error::chain(&e)
            ))
        }
    };
    let root = Root::open(rootfs).map_err(|e| io("opening the rootfs", e))?;
    let handle = root.resolve(dir).map_err(|e| io("resolving", e))?;
    let file = handle
        .reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
        .map_err(|e| io("opening the directory", e))?;
    let mut listing = nix::dir::Dir::from_fd(file.into())
        .map_err(|e| RequestError::Io(format!("{dir}: listing the image directory: {e}")))?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry
            .map_err(|e| RequestError::Io(format!("{dir}: listing the image directory: {e}")))?;
        let name = entry.file_name().to_string_lossy();
        if name == "." || name == ".." {
            continue;
        }
        if names.len() == MAX_ENTRIES {
            return Err(RequestError::Io(format!(
                "{dir}: more than {MAX_ENTRIES} entries in the image directory"
            )));
        }
        names.push(name.into_owned());
    }
    names.sort_unstable();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_directory_is_listed_sorted_without_dot_entries() {
        let rootfs = tempfile::tempdir().unwrap();
        let compat = rootfs.path().join("usr/local/cuda/compat");
        std::fs::create_dir_all(&compat).unwrap();
        for name in [
            "libcuda.so.560.28.03",
            "libcuda.so.1",
            "libnvidia-nvvm.so.4",
        ] {
            std::fs::write(compat.join(name), b"").unwrap();
        }
        assert_eq!(
            entries(rootfs.path(), "/usr/local/cuda/compat").unwrap(),
            [
                "libcuda.so.1",
                "libcuda.so.560.28.03",
                "libnvidia-nvvm.so.4"
            ]
        );
    }

    #[test]
    fn an_image_link_out_of_the_rootfs_resolves_inside_it() {
        // The host has the directory the link names; the image does not.
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("compat")).unwrap();
        std::fs::write(host.path().join("compat/libcuda.so.999.0"), b"").unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(rootfs.path().join("usr/local")).unwrap();
        std::os::unix::fs::symlink(host.path(), rootfs.path().join("usr/local/cuda")).unwrap();
        let err = entries(rootfs.path(), "/usr/local/cuda/compat").unwrap_err();
        assert!(matches!(err, RequestError::NotFound(_)), "{err:?}");
        // A relative climb stays inside too.
        std::fs::remove_file(rootfs.path().join("usr/local/cuda")).unwrap();
        std::os::unix::fs::symlink("../../../../../../..", rootfs.path().join("usr/local/cuda"))
            .unwrap();
        std::fs::create_dir_all(rootfs.path().join("compat")).unwrap();
        std::fs::write(rootfs.path().join("compat/libcuda.so.1"), b"").unwrap();
        assert_eq!(
            entries(rootfs.path(), "/usr/local/cuda/compat").unwrap(),
            ["libcuda.so.1"]
        );
    }

    #[test]
    fn a_directory_of_more_than_max_entries_is_refused_naming_the_limit() {
        let rootfs = tempfile::tempdir().unwrap();
        let dir = rootfs.path().join("many");
        std::fs::create_dir(&dir).unwrap();
        for i in 0..=MAX_ENTRIES {
            std::fs::write(dir.join(i.to_string()), b"").unwrap();
        }
        let err = entries(rootfs.path(), "/many").unwrap_err();
        assert!(err.to_string().contains("more than 4096 entries"), "{err}");
    }

    #[test]
    fn a_file_is_no_directory() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::write(rootfs.path().join("file"), b"").unwrap();
        let err = entries(rootfs.path(), "/file").unwrap_err();
        assert!(matches!(err, RequestError::Io(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("/file: opening the directory"),
            "{err}"
        );
    }
}
