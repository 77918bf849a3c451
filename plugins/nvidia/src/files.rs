//! The driver's user-space files, by capability, modelled on NVIDIA's
//! container toolkit (libnvidia-container). A driver release ships only some
//! of them: a missing file is skipped.

use std::collections::BTreeMap;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{self, File, FileRole};
use hookhost_plugin::log;

use crate::root::Root;
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

/// The VDPAU driver, which libvdpau loads from its module directory
/// `<libdir>/vdpau/`, where NVIDIA's installer puts it.
pub const VDPAU: &str = "libvdpau_nvidia";

/// Where `name` is looked for in a library directory `dir`: VDPAU's
/// subdirectory first for the VDPAU driver.
pub fn library_dirs(dirs: &[String], name: &str) -> Vec<String> {
    dirs.iter()
        .flat_map(|dir| {
            let vdpau = (name == VDPAU).then(|| format!("{dir}/vdpau"));
            vdpau.into_iter().chain([dir.clone()])
        })
        .collect()
}

/// The links NVIDIA's toolkit makes beside a library it gives, whether or
/// not the host has them: (library, link, target). `libcuda.so`, because
/// many programs `dlopen` it by that name; `libnvidia-opticalflow.so`,
/// which the driver does not ship; `libGLX_indirect.so.0`, through which
/// GLVND's libGLX finds the vendor library for indirect GLX. An empty
/// target is the library's versioned file, as NVIDIA links it.
pub const ALWAYS_LINKS: [(&str, &str, &str); 3] = [
    ("libcuda", "libcuda.so", "libcuda.so.1"),
    (
        "libnvidia-opticalflow",
        "libnvidia-opticalflow.so",
        "libnvidia-opticalflow.so.1",
    ),
    ("libGLX_nvidia", "libGLX_indirect.so.0", ""),
];

/// Requests `NAME.so.<version>` from the first of `dirs` (standard paths,
/// looked for under `root`) that has it, with its links. Returns whether it
/// was found.
pub fn versioned(
    root: &Root,
    dirs: &[String],
    name: &str,
    version: &str,
    role: FileRole,
) -> Result<bool, String> {
    for dir in dirs {
        if versioned_in(root, dir, name, version, role)? {
            return Ok(true);
        }
    }
    log::debug!(
        "{name}.so.{version} is not in {}",
        root.on_host_all(dirs).join(", ")
    );
    Ok(false)
}

/// Requests the newest regular file `NAME.so.*` of the first of `dirs`
/// (standard paths, looked for under `root`) that has one, with its links:
/// for libraries versioned on their own, not with the driver. Returns
/// whether it was found.
pub fn newest(root: &Root, dirs: &[String], name: &str, role: FileRole) -> Result<bool, String> {
    for dir in dirs {
        let host_dir = root.on_host(dir);
        let mut newest: Option<(Vec<u64>, String)> = None;
        for path in host::glob(&format!("{host_dir}/{name}.so.*"))? {
            if host::stat(&path)?.kind != FileKind::Regular {
                continue;
            }
            let version = so_version(name, &path);
            if newest.as_ref().is_none_or(|(v, _)| version >= *v) {
                newest = Some((version, path));
            }
        }
        if let Some((_, file)) = newest {
            let found = host::glob(&format!("{host_dir}/{name}.so*"))?;
            with_links(root, dir, &file, &found, role)?;
            return Ok(true);
        }
    }
    log::debug!(
        "{name}.so.* is not in {}",
        root.on_host_all(dirs).join(", ")
    );
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
/// container resolves the same names as the host, and the `ALWAYS_LINKS`
/// of `NAME` the host lacks. `DIR` is under `root` on the host, at its
/// standard path in the container.
fn versioned_in(
    root: &Root,
    dir: &str,
    name: &str,
    version: &str,
    role: FileRole,
) -> Result<bool, String> {
    let host_dir = root.on_host(dir);
    let file_name = format!("{name}.so.{version}");
    let file = format!("{host_dir}/{file_name}");
    let found = host::glob(&format!("{host_dir}/{name}.so*"))?;
    if !found.contains(&file) {
        return Ok(false);
    }
    let made = with_links(root, dir, &file, &found, role)?;
    for (_, link, target) in ALWAYS_LINKS.iter().filter(|(lib, _, _)| *lib == name) {
        let link = format!("{dir}/{link}");
        if !made.contains(&link) {
            let target: &str = if target.is_empty() {
                &file_name
            } else {
                target
            };
            inject::symlink(target, &link)?;
        }
    }
    Ok(true)
}

/// Requests `file` (a host path in `dir`, a standard path looked for under
/// `root`) at its standard path, and every symlink of `found` that leads to
/// it. Returns the links made, at their standard paths.
fn with_links(
    root: &Root,
    dir: &str,
    file: &str,
    found: &[String],
    role: FileRole,
) -> Result<Vec<String>, String> {
    let host_dir = root.on_host(dir);
    File::new(file, role)
        .at(root.in_container(file))
        .request()?;
    // Link → its content, and → where it leads on the host: an absolute
    // content is a path under the root.
    let mut links = BTreeMap::new();
    let mut on_host = BTreeMap::new();
    for path in found.iter().filter(|p| *p != file) {
        if host::stat(path)?.kind == FileKind::Symlink {
            let target = host::read_link(path)?;
            let resolved = if target.starts_with('/') {
                root.on_host(&target)
            } else {
                target.clone()
            };
            on_host.insert(path.as_str(), resolved);
            links.insert(path.as_str(), target);
        }
    }
    let mut made = Vec::new();
    for (link, target) in &links {
        if hookhost_plugin::links::leads_to(link, &on_host, &host_dir, file) {
            inject::symlink(target, root.in_container(link))?;
            made.push(root.in_container(link).to_string());
        }
    }
    Ok(made)
}

/// Requests the first `dir/name` of `dirs` (standard paths, looked for
/// under `root`) that exists, with `role`.
pub fn first_of(root: &Root, dirs: &[String], name: &str, role: FileRole) -> Result<(), String> {
    for dir in dirs {
        if if_exists(root, &format!("{dir}/{name}"), role)? {
            return Ok(());
        }
    }
    log::debug!("{name} is not in {}", root.on_host_all(dirs).join(", "));
    Ok(())
}

/// Requests the driver file whose standard path is `path`, found under
/// `root`, with `role`, when the plugin can see it. Returns whether it did.
pub fn if_exists(root: &Root, path: &str, role: FileRole) -> Result<bool, String> {
    let host_path = root.on_host(path);
    if !exists(&host_path)? {
        return Ok(false);
    }
    File::new(host_path, role).at(path).request()?;
    Ok(true)
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
