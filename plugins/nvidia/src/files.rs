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

/// The vendor files through which the GL, EGL and Vulkan loaders find the
/// graphics libraries.
pub const GRAPHICS_CONFIG: [&str; 4] = [
    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    "/usr/share/vulkan/icd.d/nvidia_icd.json",
    "/etc/vulkan/icd.d/nvidia_icd.json",
    "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
];

/// The X server's driver and GLX module, under a library directory.
pub const XORG_DRIVER: &str = "xorg/modules/drivers/nvidia_drv.so";
pub const XORG_GLX_DIR: &str = "xorg/modules/extensions";
pub const XORG_GLX: &str = "libglxserver_nvidia";

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

/// Requests `DIR/NAME.so.<version>` and every symlink `DIR/NAME.so*` that
/// leads to it (`libcuda.so.1`, `libcuda.so` → `libcuda.so.1`...), so the
/// container resolves the same names as the host.
fn versioned_in(dir: &str, name: &str, version: &str, role: FileRole) -> Result<bool, String> {
    let file = format!("{dir}/{name}.so.{version}");
    let found = host::glob(&format!("{dir}/{name}.so*"))?;
    if !found.contains(&file) {
        return Ok(false);
    }
    File::new(file.as_str(), role).request()?;
    let mut links = BTreeMap::new();
    for path in found.iter().filter(|p| **p != file) {
        if host::stat(path)?.kind == FileKind::Symlink {
            links.insert(path.as_str(), host::read_link(path)?);
        }
    }
    for (link, target) in &links {
        if hookhost_plugin::links::leads_to(link, &links, dir, &file) {
            inject::symlink(target, link)?;
        }
    }
    Ok(true)
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
