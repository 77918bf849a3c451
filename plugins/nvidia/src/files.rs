//! The driver's user-space files, by capability, modelled on NVIDIA's
//! container toolkit (libnvidia-container). A driver release ships only some
//! of them: a missing file is skipped.

use std::collections::BTreeMap;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{self, File, FileRole};
use hookhost_plugin::log;

use crate::select::Capability;

/// Library names (the part before `.so`) for each capability: its own, see
/// `Capability::libraries_of` for those it brings from others.
pub fn libraries(cap: Capability) -> &'static [&'static str] {
    match cap {
        Capability::Utility => &["libnvidia-ml", "libnvidia-cfg", "libnvidia-nscq"],
        Capability::Compute => &[
            "libcuda",
            "libcudadebugger",
            "libnvidia-opencl",
            "libnvidia-gpucomp",
            "libnvidia-ptxjitcompiler",
            "libnvidia-fatbinaryloader",
            "libnvidia-allocator",
            "libnvidia-compiler",
            "libnvidia-pkcs11",
            "libnvidia-pkcs11-openssl3",
            "libnvidia-nvvm",
            "libnvidia-tileiras",
        ],
        Capability::Video => &[
            "libvdpau_nvidia",
            "libnvidia-encode",
            "libnvidia-opticalflow",
            "libnvcuvid",
        ],
        Capability::Graphics => &[
            "libnvidia-eglcore",
            "libnvidia-glcore",
            "libnvidia-tls",
            "libnvidia-glsi",
            "libnvidia-fbc",
            "libnvidia-ifr",
            "libnvidia-rtcore",
            "libnvoptix",
            "libGLX_nvidia",
            "libEGL_nvidia",
            "libGLESv2_nvidia",
            "libGLESv1_CM_nvidia",
            "libnvidia-glvkspirv",
            "libnvidia-cbl",
        ],
        Capability::Ngx => &["libnvidia-ngx"],
        Capability::Display | Capability::Compat32 => &[],
    }
}

/// Executables for each capability.
pub fn binaries(cap: Capability) -> &'static [&'static str] {
    match cap {
        Capability::Utility => &[
            "nvidia-smi",
            "nvidia-debugdump",
            "nvidia-persistenced",
            "nvidia-imex",
            "nvidia-imex-ctl",
        ],
        Capability::Compute => &["nvidia-cuda-mps-control", "nvidia-cuda-mps-server"],
        _ => &[],
    }
}

/// GSP firmware, which the utilities and libraries expect to find.
pub fn firmware(version: &str) -> String {
    format!("/lib/firmware/nvidia/{version}/gsp*.bin")
}

/// Requests `NAME.so.<version>` from the first of `dirs` that has it, with
/// its links. Returns whether it was found.
pub fn versioned(
    dirs: &[String],
    name: &str,
    version: &str,
    role: FileRole,
) -> Result<bool, String> {
    for dir in dirs {
        if versioned_in(dir, name, version, role)? {
            return Ok(true);
        }
    }
    log::debug!("{name}.so.{version} is not in {}", dirs.join(", "));
    Ok(false)
}

/// Requests the newest regular file `NAME.so.*` of the first of `dirs`
/// that has one, with its links: for libraries versioned on their own, not
/// with the driver. Returns whether it was found.
pub fn newest(dirs: &[String], name: &str, role: FileRole) -> Result<bool, String> {
    for dir in dirs {
        let mut newest: Option<(Vec<u64>, String)> = None;
        for path in host::glob(&format!("{dir}/{name}.so.*"))? {
            if host::stat(&path)?.kind != FileKind::Regular {
                continue;
            }
            let version = so_version(name, &path);
            if newest.as_ref().is_none_or(|(v, _)| version >= *v) {
                newest = Some((version, path));
            }
        }
        if let Some((_, file)) = newest {
            let found = host::glob(&format!("{dir}/{name}.so*"))?;
            with_links(dir, &file, &found, role)?;
            return Ok(true);
        }
    }
    log::debug!("{name}.so.* is not in {}", dirs.join(", "));
    Ok(false)
}

/// The numbers after `NAME.so.` in `path` (`[1, 1, 13]`); a part that is
/// not a number counts as 0.
fn so_version(name: &str, path: &str) -> Vec<u64> {
    let file = path.rsplit('/').next().unwrap_or_default();
    file.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(".so."))
        .unwrap_or_default()
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// Requests `DIR/NAME.so.<version>` and every symlink `DIR/NAME.so*` that
/// leads to it (`libcuda.so.1`, `libcuda.so` → `libcuda.so.1`...), so the
/// container resolves the same names as the host.
fn versioned_in(dir: &str, name: &str, version: &str, role: FileRole) -> Result<bool, String> {
    let file = format!("{dir}/{name}.so.{version}");
    let found = host::glob(&format!("{dir}/{name}.so*"))?;
    if !found.contains(&file) {
        return Ok(false);
    }
    with_links(dir, &file, &found, role)?;
    Ok(true)
}

/// Requests `file` and every symlink of `found` (in `dir`) that leads to it.
fn with_links(dir: &str, file: &str, found: &[String], role: FileRole) -> Result<(), String> {
    File::new(file, role).request()?;
    let mut links = BTreeMap::new();
    for path in found.iter().filter(|p| *p != file) {
        if host::stat(path)?.kind == FileKind::Symlink {
            links.insert(path.as_str(), host::read_link(path)?);
        }
    }
    for (link, target) in &links {
        if hookhost_plugin::links::leads_to(link, &links, dir, file) {
            inject::symlink(target, link)?;
        }
    }
    Ok(())
}

/// Requests the first `dir/name` of `dirs` that exists, with `role`.
pub fn first_of(dirs: &[String], name: &str, role: FileRole) -> Result<(), String> {
    for dir in dirs {
        let path = format!("{dir}/{name}");
        if exists(&path)? {
            File::new(path, role).request()?;
            return Ok(());
        }
    }
    log::debug!("{name} is not in {}", dirs.join(", "));
    Ok(())
}

/// Whether the plugin can see `path`: a path outside the allow-list counts as
/// missing, so an administrator can narrow what the plugin hands out.
pub fn exists(path: &str) -> Result<bool, String> {
    Ok(!host::glob(path)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn so_versions_compare_as_numbers() {
        let v = |path| so_version("libnvidia-egl-wayland", path);
        assert_eq!(v("/lib/libnvidia-egl-wayland.so.1.1.13"), [1, 1, 13]);
        assert!(
            v("/lib/libnvidia-egl-wayland.so.1.1.13") > v("/lib/libnvidia-egl-wayland.so.1.1.9")
        );
        assert_eq!(v("/lib/libnvidia-egl-wayland.so.1.x"), [1, 0]);
    }

    #[test]
    fn link_chains() {
        let dir = "/lib";
        let file = "/lib/libcuda.so.550.54.14";
        let links = BTreeMap::from([
            ("/lib/libcuda.so", "libcuda.so.1".to_string()),
            ("/lib/libcuda.so.1", "libcuda.so.550.54.14".to_string()),
            ("/lib/libcuda.so.2", "/lib/libcuda.so.550.54.14".to_string()),
            ("/lib/libcuda.so.old", "libcuda.so.535.104.05".to_string()),
            ("/lib/libcuda.so.a", "libcuda.so.b".to_string()),
            ("/lib/libcuda.so.b", "libcuda.so.a".to_string()),
        ]);
        let leading: Vec<&str> = links
            .keys()
            .copied()
            .filter(|link| hookhost_plugin::links::leads_to(link, &links, dir, file))
            .collect();
        assert_eq!(
            leading,
            ["/lib/libcuda.so", "/lib/libcuda.so.1", "/lib/libcuda.so.2"]
        );
    }
}
