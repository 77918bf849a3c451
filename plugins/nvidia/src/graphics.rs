//! What `graphics` and `display` add beside the driver's versioned
//! libraries, as NVIDIA's container toolkit gives them: each selected GPU's
//! DRM nodes, the EGL external platform libraries, the loaders' vendor
//! files, OptiX's data file and, for `display`, the X server's modules.
//! The driver's files are looked for under the setting `driver-root` and
//! given at their standard paths (see `root`); the DRM nodes and sysfs are
//! the host's own, wherever the driver is.

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{self, Device, File, FileRole};
use hookhost_plugin::{log, Error};

use crate::driver::Gpu;
use crate::files;
use crate::root::Root;

/// A PCI device's DRM nodes are the entries of its sysfs `drm` directory
/// (`card1`, `renderD128`), named as in `/dev/dri`. The kernel's sysfs
/// rather than `/dev/dri/by-path`, which udev makes and some hosts lack.
pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// The patterns of those entries, and of the nodes.
pub const DRM_NODES: [&str; 2] = ["card[0-9]*", "renderD[0-9]*"];
pub const DRI: &str = "/dev/dri";
/// `/sys/bus/pci/devices/<bus>` is a link into the device tree: where the
/// `drm` entries really are (the allow-list is checked there too).
#[cfg(test)]
pub const PCI_DEVICE_TREE: &str = "/sys/devices/pci[0-9a-f]*/**";
/// udev's links to a PCI device's nodes, `pci-<bus>-card` → `../card1`.
pub const BY_PATH: &str = "/dev/dri/by-path";
pub const BY_PATH_KINDS: [&str; 2] = ["card", "render"];

/// The EGL external platform libraries (GBM, Wayland, XCB, Xlib). They are
/// versioned on their own (`libnvidia-egl-wayland.so.1.1.13`), not with
/// the driver.
pub const EGL_PLATFORM_LIBRARIES: [&str; 4] = [
    "libnvidia-egl-gbm",
    "libnvidia-egl-wayland",
    "libnvidia-egl-xcb",
    "libnvidia-egl-xlib",
];

/// libgbm's backend for NVIDIA, under a library directory: a link to
/// `../libnvidia-allocator.so.1`, the allocator that EGL's GBM platform
/// needs.
pub const GBM_BACKEND: &str = "gbm/nvidia-drm_gbm.so";
pub const ALLOCATOR: &str = "libnvidia-allocator";

/// Where the loaders' files are looked for, in this order.
pub const CONFIG_DIRS: [&str; 2] = ["/etc", "/usr/share"];

/// A file under one of `CONFIG_DIRS`, taken from the first that has it.
pub struct Config {
    pub name: &'static str,
    /// Bound under `/etc` in the container, wherever the host keeps it:
    /// the Vulkan loader reads both, and NVIDIA's toolkit binds there.
    pub under_etc: bool,
}

const fn at_host_path(name: &'static str) -> Config {
    Config {
        name,
        under_etc: false,
    }
}

const fn under_etc(name: &'static str) -> Config {
    Config {
        name,
        under_etc: true,
    }
}

/// The GLVND, EGL platform and Vulkan vendor files, and OptiX's data.
pub const GRAPHICS_CONFIGS: [Config; 10] = [
    at_host_path("glvnd/egl_vendor.d/10_nvidia.json"),
    at_host_path("egl/egl_external_platform.d/10_nvidia_wayland.json"),
    at_host_path("egl/egl_external_platform.d/15_nvidia_gbm.json"),
    at_host_path("egl/egl_external_platform.d/20_nvidia_xcb.json"),
    at_host_path("egl/egl_external_platform.d/20_nvidia_xlib.json"),
    at_host_path("nvidia/nvoptix.bin"),
    under_etc("vulkan/icd.d/nvidia_icd.json"),
    // RPM packages name it after the architecture.
    under_etc("vulkan/icd.d/nvidia_icd.x86_64.json"),
    under_etc("vulkan/icd.d/nvidia_layers.json"),
    under_etc("vulkan/implicit_layer.d/nvidia_layers.json"),
];

/// The X server's configuration snippets for the NVIDIA driver.
pub const DISPLAY_CONFIGS: [Config; 2] = [
    at_host_path("X11/xorg.conf.d/10-nvidia.conf"),
    at_host_path("X11/xorg.conf.d/nvidia-drm-outputclass.conf"),
];

/// The X server's driver and GLX module, under a library directory.
pub const XORG_DRIVER: &str = "xorg/modules/drivers/nvidia_drv.so";
pub const XORG_GLX_DIR: &str = "xorg/modules/extensions";
pub const XORG_GLX: &str = "libglxserver_nvidia";

/// `gpu`'s DRM nodes, `/dev/dri/cardN` and `/dev/dri/renderDN`, and udev's
/// `by-path` links to them where the host has those. None when the host
/// has none (nvidia-drm not loaded): the rest of graphics works without.
pub fn dri_nodes(gpu: &Gpu) -> Result<(), String> {
    let drm = format!("{PCI_DEVICES}/{}/drm", gpu.bus_id);
    let mut given = Vec::new();
    for pattern in DRM_NODES {
        for entry in host::glob(&format!("{drm}/{pattern}"))? {
            let name = entry.rsplit('/').next().unwrap_or_default();
            if !is_node_name(name) {
                continue;
            }
            let node = format!("{DRI}/{name}");
            match host::stat(&node) {
                Ok(stat) if stat.kind == FileKind::CharDevice => {
                    Device::new(node.as_str()).request()?;
                    given.push(name.to_string());
                }
                Ok(_) => log::warn!("{node} is not a character device: not given"),
                Err(Error::NotFound(_)) => {
                    log::warn!("{entry} has no node {node} on this host: not given")
                }
                Err(e) => return Err(format!("{node}: {e}")),
            }
        }
    }
    if given.is_empty() {
        log::debug!("GPU {} has no DRM node ({drm})", gpu.bus_id);
    }
    by_path_links(gpu, &given)
}

/// `card` or `renderD` and a number: sysfs's `drm` directory holds other
/// entries too (`controlD64` on old kernels).
fn is_node_name(name: &str) -> bool {
    let number = name
        .strip_prefix("card")
        .or_else(|| name.strip_prefix("renderD"));
    number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The host's `/dev/dri/by-path/pci-<bus>-{card,render}` links of `gpu`,
/// recreated when they lead to one of its nodes given (`names`).
fn by_path_links(gpu: &Gpu, names: &[String]) -> Result<(), String> {
    for kind in BY_PATH_KINDS {
        let link = format!("{BY_PATH}/pci-{}-{kind}", gpu.bus_id);
        if !files::exists(&link)? {
            continue;
        }
        if host::stat(&link)?.kind != FileKind::Symlink {
            log::warn!("{link} is not a symlink: not given");
            continue;
        }
        let target = host::read_link(&link)?;
        let leads_to_given = names
            .iter()
            .any(|name| target == format!("../{name}") || target == format!("{DRI}/{name}"));
        if leads_to_given {
            inject::symlink(&target, &link)?;
        } else {
            log::warn!(
                "{link} leads to {target}, not to a DRM node of GPU {}: not given",
                gpu.bus_id
            );
        }
    }
    Ok(())
}

/// The EGL platform libraries, from the first of `dirs` (standard paths,
/// looked for under `root`) that has each, and libgbm's backend link with
/// the allocator it leads to.
pub fn libraries(root: &Root, dirs: &[String], version: &str) -> Result<bool, String> {
    let mut any = false;
    for name in EGL_PLATFORM_LIBRARIES {
        any |= files::newest(root, dirs, name, FileRole::Library)?;
    }
    for dir in dirs {
        let backend = format!("{dir}/{GBM_BACKEND}");
        let host_backend = root.on_host(&backend);
        if !files::exists(&host_backend)? || host::stat(&host_backend)?.kind != FileKind::Symlink {
            continue;
        }
        let target = host::read_link(&host_backend)?;
        if target.starts_with(&format!("../{ALLOCATOR}.so"))
            && files::versioned(
                root,
                std::slice::from_ref(dir),
                ALLOCATOR,
                version,
                FileRole::Library,
            )?
        {
            inject::symlink(&target, &backend)?;
            any = true;
        } else {
            log::warn!(
                "{host_backend} leads to {target}, not to this driver's {ALLOCATOR}: not given"
            );
        }
        break;
    }
    Ok(any)
}

/// The vendor files of `configs`, each from the first of `CONFIG_DIRS`
/// (looked for under `root`) that has it, at its standard path.
pub fn configs(root: &Root, configs: &[Config]) -> Result<(), String> {
    for config in configs {
        for dir in CONFIG_DIRS {
            let path = format!("{dir}/{}", config.name);
            let host_path = root.on_host(&path);
            if !files::exists(&host_path)? {
                continue;
            }
            let at = if config.under_etc {
                format!("/etc/{}", config.name)
            } else {
                path
            };
            File::new(host_path, FileRole::Misc).at(at).request()?;
            break;
        }
    }
    Ok(())
}

/// The X server's driver and GLX module (with its links), from the first
/// of the library directories (looked for under `root`) that has each.
pub fn xorg_modules(root: &Root, library_dirs: &[String], version: &str) -> Result<(), String> {
    files::first_of(root, library_dirs, XORG_DRIVER, FileRole::Misc)?;
    let glx_dirs: Vec<String> = library_dirs
        .iter()
        .map(|dir| format!("{dir}/{XORG_GLX_DIR}"))
        .collect();
    files::versioned(root, &glx_dirs, XORG_GLX, version, FileRole::Misc)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_card_and_render_nodes_count() {
        for name in ["card0", "card12", "renderD128"] {
            assert!(is_node_name(name), "{name}");
        }
        for name in ["card", "card1-DP-1", "renderD", "controlD64", "version"] {
            assert!(!is_node_name(name), "{name}");
        }
    }
}
