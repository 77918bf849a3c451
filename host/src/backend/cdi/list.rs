//! The CDI devices installed: every spec file in the CDI directories,
//! parsed and validated as a runtime would, by fully-qualified device name.

use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::AT_FDCWD;

use super::{check, CdiError};
use crate::input::{self, Follow};

/// Where runtimes look for CDI specs, lowest priority first: a device in a
/// later directory overrides one of the same name in an earlier one.
pub const DEFAULT_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// Cap on one spec file: a spec for a few hundred devices is well under it.
pub const SPEC_LIMIT: u64 = 4 << 20;

/// One spec file and what it holds.
#[derive(Debug)]
pub struct Listed {
    pub file: PathBuf,
    /// Its devices (`vendor.com/class=name`, sorted by name), or why it
    /// does not parse or validate.
    pub devices: Result<Vec<String>, CdiError>,
}

/// The `*.json`, `*.yaml` and `*.yml` files of `dirs`, in the order of
/// `dirs` and by name within each. A directory that does not exist is
/// skipped (`/var/run/cdi` often does not); one that cannot be read is an
/// error. A file that cannot be read or parsed is listed with its error.
pub fn list(dirs: &[PathBuf]) -> Result<Vec<Listed>, CdiError> {
    let mut listed = Vec::new();
    for dir in dirs {
        let io = |source| CdiError::Io {
            path: dir.clone(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(io)?.path();
            let spec = path
                .extension()
                .is_some_and(|e| e == "json" || e == "yaml" || e == "yml");
            if spec {
                files.push(path);
            }
        }
        files.sort();
        listed.extend(files.into_iter().map(|file| Listed {
            devices: read(&file),
            file,
        }));
    }
    Ok(listed)
}

/// The devices of the spec file at `path`.
fn read(path: &Path) -> Result<Vec<String>, CdiError> {
    // The CDI directories are root's, like the plugin directories, and a
    // spec linked in from elsewhere is ordinary: links are followed.
    let bytes = input::read_regular(AT_FDCWD, path, Follow::Yes, SPEC_LIMIT).map_err(|source| {
        CdiError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    check(&bytes, path).map_err(|reason| CdiError::Unreadable {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const GOOD_YAML: &str = "\
cdiVersion: 0.5.0
kind: example.com/gpu
devices:
  - name: '1'
    containerEdits:
      env: [GPU=1]
  - name: '0'
    containerEdits:
      deviceNodes:
        - {path: /dev/gpu0, type: c, major: 240, minor: 0}
";

    const GOOD_JSON: &str = r#"{"cdiVersion": "0.3.0", "kind": "example.com/nic",
        "devices": [{"name": "eth", "containerEdits": {"env": ["NIC=1"]}}]}"#;

    #[test]
    fn specs_are_listed_by_device_per_file_in_directory_order_and_broken_ones_by_reason() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::write(a.path().join("gpu.yaml"), GOOD_YAML).unwrap();
        fs::write(a.path().join("nic.json"), GOOD_JSON).unwrap();
        fs::write(a.path().join("notes.txt"), "not a spec").unwrap();
        fs::write(b.path().join("broken.yml"), "cdiVersion: [").unwrap();
        // A field no CDI version has.
        fs::write(
            b.path().join("unknown.json"),
            GOOD_JSON.replace("\"kind\"", "\"extra\": 1, \"kind\""),
        )
        .unwrap();
        let missing = a.path().join("missing");

        let dirs = [b.path().to_path_buf(), missing, a.path().to_path_buf()];
        let listed = list(&dirs).unwrap();
        let files: Vec<_> = listed.iter().map(|l| l.file.clone()).collect();
        assert_eq!(
            files,
            [
                b.path().join("broken.yml"),
                b.path().join("unknown.json"),
                a.path().join("gpu.yaml"),
                a.path().join("nic.json"),
            ]
        );
        let err = listed[0].devices.as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: ", files[0].display())),
            "{err}"
        );
        let err = listed[1].devices.as_ref().unwrap_err().to_string();
        assert!(err.contains("extra"), "{err}");
        assert_eq!(
            listed[2].devices.as_ref().unwrap(),
            &["example.com/gpu=0", "example.com/gpu=1"]
        );
        assert_eq!(
            listed[3].devices.as_ref().unwrap(),
            &["example.com/nic=eth"]
        );
    }

    #[test]
    fn a_spec_file_that_is_not_a_regular_file_or_too_large_is_an_error_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dir.json")).unwrap();
        let big = format!("{GOOD_YAML}#{}\n", "x".repeat(SPEC_LIMIT as usize));
        fs::write(dir.path().join("huge.yaml"), big).unwrap();
        let listed = list(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(listed.len(), 2);
        let errors: Vec<String> = listed
            .iter()
            .map(|l| l.devices.as_ref().unwrap_err().to_string())
            .collect();
        assert!(errors[0].contains("not a regular file"), "{}", errors[0]);
        assert!(errors[1].contains("larger than the limit"), "{}", errors[1]);
    }
}
