//! A spec written into a CDI directory: validated first, then put in place
//! with a rename, so that a runtime reading the directory sees the old spec
//! or the new one, never half of one, and an invalid spec never replaces a
//! working one.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{validate, CdiError, Format, Spec};

/// Writes `spec` as `dir/<file_stem>.<json|yaml>` (mode 0644: runtimes
/// that read it may not run as root) and returns that path.
pub fn write(
    dir: &Path,
    file_stem: &str,
    spec: &Spec,
    format: Format,
) -> Result<PathBuf, CdiError> {
    if file_stem.is_empty() || file_stem.contains('/') || file_stem.starts_with('.') {
        return Err(CdiError::FileName(file_stem.into()));
    }
    let bytes = validate(spec, format)?;
    let path = dir.join(format!("{file_stem}.{}", format.extension()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CdiError::Io { path, source }
    };
    // Beside the target, so that the rename stays on one file system.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    file.write_all(&bytes).map_err(io(file.path()))?;
    file.as_file()
        .set_permissions(Permissions::from_mode(0o644))
        .map_err(io(file.path()))?;
    file.as_file().sync_all().map_err(io(file.path()))?;
    file.persist(&path).map_err(|e| io(&path)(e.error))?;
    Ok(path)
}

/// Removes the spec files `dir/<file_stem>.json` and `.yaml` (those
/// [`write`] makes), for a plugin that no longer offers devices: a spec left
/// behind would offer devices the host no longer has. Returns what was removed.
pub fn remove(dir: &Path, file_stem: &str) -> Result<Vec<PathBuf>, CdiError> {
    if file_stem.is_empty() || file_stem.contains('/') || file_stem.starts_with('.') {
        return Err(CdiError::FileName(file_stem.into()));
    }
    let mut removed = Vec::new();
    for format in [Format::Json, Format::Yaml] {
        let path = dir.join(format!("{file_stem}.{}", format.extension()));
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CdiError::Io { path, source }),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::backend::cdi::{build, list, HookCommand};
    use crate::lowering::Lowered;

    fn spec(kind: &str) -> Spec {
        let lowered = Lowered {
            env: vec![crate::lowering::Attributed {
                plugin: "gpu".into(),
                what: ("GPU".into(), "0".into()),
            }],
            ..Lowered::default()
        };
        let hook = HookCommand {
            hookhost: "/usr/bin/hookhost".into(),
            ldconfig: "/sbin/ldconfig".into(),
        };
        build(
            kind,
            &Lowered::default(),
            &[("gpu0".into(), lowered)],
            &hook,
            Path::new("/"),
        )
        .unwrap()
    }

    #[test]
    fn a_written_spec_parses_back_in_either_format_and_is_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Json, Format::Yaml] {
            let path = write(dir.path(), "gpu", &spec("example.com/gpu"), format).unwrap();
            assert_eq!(path, dir.path().join(format!("gpu.{}", format.extension())));
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o644);
        }
        let listed = list(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(listed.len(), 2);
        for l in listed {
            assert_eq!(l.devices.unwrap(), ["example.com/gpu=gpu0"], "{:?}", l.file);
        }
    }

    #[test]
    fn an_invalid_spec_leaves_the_old_file_as_it_was_and_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "gpu", &spec("example.com/gpu"), Format::Yaml).unwrap();
        let before = fs::read(&path).unwrap();

        // The class must start with a letter.
        let err = write(dir.path(), "gpu", &spec("example.com/0gpu"), Format::Yaml).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("example.com/0gpu: invalid CDI spec: "),
            "{err}"
        );
        assert!(err.to_string().contains("class"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_name_must_be_a_plain_name() {
        let dir = tempfile::tempdir().unwrap();
        for stem in ["", "../gpu", "a/b", ".hidden"] {
            let err = write(dir.path(), stem, &spec("example.com/gpu"), Format::Json).unwrap_err();
            assert!(matches!(err, CdiError::FileName(_)), "{stem}: {err}");
        }
    }
}
