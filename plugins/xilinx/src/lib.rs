//! hookhost's policy for Xilinx / AMD Alveo FPGAs run by XRT: the
//! container's `XILINX_VISIBLE_DEVICES` or `XILINX_VISIBLE_CARDS` (with the
//! meanings of Xilinx's container runtime), or the annotation
//! `hookhost.io/xilinx-visible-devices`, pick the devices; each one brings
//! its management node `/dev/xclmgmt<N>` and its user function's
//! `/dev/dri/renderD<N>`, and the host's XRT comes read-only.

mod select;
mod sysfs;

use hookhost_plugin::allocation::{self, Candidates, SpecDevices};
use hookhost_plugin::inject::{self, File, FileRole};
use hookhost_plugin::{container, host, log, Error, PluginInfo, Policy};
use serde::Deserialize;

use select::{Selection, Visible};
use sysfs::Device;

/// What XRT's `setup.sh` sets and its tools look for.
const XILINX_XRT: &str = "XILINX_XRT";

/// The manifest's `settings`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// `host`: every device of the host; `spec`: only those whose render
    /// node the spec's `linux.devices` lists (see
    /// `hookhost_plugin::allocation`).
    candidates: Candidates,
    /// The XRT installation, bind-mounted read-only at the same path and
    /// named by `XILINX_XRT`; `null` when the images bring their own.
    xrt_dir: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            candidates: Candidates::Host,
            xrt_dir: Some("/opt/xilinx/xrt".into()),
        }
    }
}

impl Settings {
    fn parse(json: &str) -> Result<Self, String> {
        let settings: Settings = hookhost_plugin::parse_settings(json)?;
        if let Some(dir) = &settings.xrt_dir {
            // It is looked up with `glob`, hence no pattern characters.
            if !dir.starts_with('/') || dir.ends_with('/') || dir.contains(['*', '?', '[']) {
                return Err(format!(
                    "invalid settings: xrt-dir: `{dir}` is not an absolute path \
                     without a trailing / or pattern characters"
                ));
            }
        }
        Ok(settings)
    }
}

struct Xilinx;

impl Policy for Xilinx {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "xilinx".into(),
            vendor: "hookhost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Xilinx / AMD Alveo FPGAs and XRT, selected by XILINX_VISIBLE_DEVICES, \
                      XILINX_VISIBLE_CARDS or the annotation hookhost.io/xilinx-visible-devices"
                .into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        Settings::parse(&settings).map(drop)
    }

    fn devices() -> Result<Vec<String>, String> {
        let Some(devices) = sysfs::probe()? else {
            log::info!("the xocl driver is not loaded: no devices");
            return Ok(Vec::new());
        };
        let indices = (0..devices.len()).map(|i| i.to_string());
        let addresses = devices.iter().map(|d| d.user.to_string());
        Ok(indices
            .chain(addresses)
            .chain(["all".to_string()])
            .collect())
    }

    fn apply() -> Result<(), String> {
        let settings = Settings::parse(&host::settings())?;
        let selection = Selection::choose(
            container::annotation(select::ANNOTATION),
            container::getenv(select::DEVICES_VAR),
            container::getenv(select::CARDS_VAR),
        )?;
        if selection.visible == Visible::Nothing {
            log::debug!("{}: nothing selected", selection.source);
            return Ok(());
        }
        let spec = match settings.candidates {
            Candidates::Host => None,
            Candidates::Spec => Some(SpecDevices::read()),
        };
        if spec.as_ref().is_some_and(SpecDevices::is_empty) {
            log::info!("{}", nothing_allocated(&selection.source));
            return Ok(());
        }
        let devices = probe()?;
        let allocated = match &spec {
            Some(spec) => {
                let allocated = allocated_devices(spec, &devices)?;
                if allocated.is_empty() {
                    log::info!("{}", nothing_allocated(&selection.source));
                    return Ok(());
                }
                Some(allocated)
            }
            None => None,
        };
        let mut selected = selection.select(&devices)?;
        if let Some(allocated) = &allocated {
            let describe = |device: &&Device| {
                let index = devices.iter().position(|d| std::ptr::eq(d, *device));
                format!(
                    "device {} ({}, {})",
                    index.map_or("?".to_string(), |i| i.to_string()),
                    device.user,
                    device.render.as_deref().unwrap_or("no render node")
                )
            };
            selected = allocation::narrow(
                &selection.source,
                selection.visible == Visible::All,
                selected,
                |device| allocated.iter().any(|a| std::ptr::eq(*a, *device)),
                describe,
                &allocated.iter().map(describe).collect::<Vec<_>>(),
            )?;
        }
        // Only `all` can select nothing; a container that asks for every
        // device surely needs one.
        if selected.is_empty() {
            return Err(format!(
                "{}: all, but this host has no Xilinx device (none is bound to xocl)",
                selection.source
            ));
        }
        give(&settings, selected)
    }

    /// The names are those of XILINX_VISIBLE_DEVICES (an index, a PCI
    /// address, `all`).
    fn plan_devices(names: Vec<String>) -> Result<(), String> {
        hookhost_plugin::check_device_names(&names, &Self::devices()?)?;
        let settings = Settings::parse(&host::settings())?;
        let devices = probe()?;
        let selection = Selection::choose(None, Some(names.join(",")), None)?;
        give(&settings, selection.select(&devices)?)
    }
}

fn probe() -> Result<Vec<Device>, String> {
    sysfs::probe()?.ok_or_else(|| {
        format!(
            "Xilinx XRT driver not loaded on this host (no {})",
            sysfs::XOCL
        )
    })
}

/// The devices' nodes and XRT.
fn give(settings: &Settings, selected: Vec<&Device>) -> Result<(), String> {
    for device in selected {
        device_nodes(device)?;
    }
    if let Some(dir) = &settings.xrt_dir {
        xrt(dir)?;
    }
    Ok(())
}

/// The devices whose user function's render node the spec lists, by
/// number: every device has one (the management function may be missing, in
/// a virtual machine).
fn allocated_devices<'a>(
    spec: &SpecDevices,
    devices: &'a [Device],
) -> Result<Vec<&'a Device>, String> {
    let mut allocated = Vec::new();
    for device in devices {
        if let Some(render) = &device.render {
            if spec.lists_node(render)? {
                allocated.push(device);
            }
        }
    }
    Ok(allocated)
}

fn nothing_allocated(source: &str) -> String {
    format!(
        "the spec's linux.devices allocates no Xilinx device (no user function's render \
         node) and the setting `candidates` is `spec`: nothing to inject, whatever {source} says"
    )
}

/// A device's user function node and, where this host has it, its
/// management node. Their major:minor are the host's, as the host stats them.
fn device_nodes(device: &Device) -> Result<(), String> {
    let context = |e: Error| format!("Xilinx device {}: {e}", device.user);
    let render = device.render.as_deref().ok_or_else(|| {
        format!(
            "Xilinx device {}: xocl has no render node for it (nothing matches {}/{}/{}); \
             is the device still being set up?",
            device.user,
            sysfs::XOCL,
            device.user,
            sysfs::RENDER
        )
    })?;
    inject::Device::new(render).request().map_err(context)?;
    let mgmt = match &device.mgmt {
        Some(mgmt) => {
            inject::Device::new(mgmt.node.as_str())
                .request()
                .map_err(context)?;
            mgmt.node.as_str()
        }
        // A virtual machine is usually given the user function only.
        None => "no management function on this host",
    };
    log::debug!(
        "device {} ({}, serial {}): {render}, {mgmt}",
        device.user,
        device.shell.as_deref().unwrap_or("unknown shell"),
        device.serial.as_deref().unwrap_or("unknown"),
    );
    Ok(())
}

/// The host's XRT, read-only, and `XILINX_XRT` where the back end can set
/// the container's environment.
fn xrt(dir: &str) -> Result<(), String> {
    // `glob` rather than `stat`: an administrator who takes the directory out
    // of the allow-list turns this off instead of breaking the plugin.
    if host::glob(dir)?.is_empty() {
        log::info!("{dir} is not on this host: the image must bring its own XRT");
        return Ok(());
    }
    // A directory given as a file is bind-mounted read-only as a whole.
    File::new(dir, FileRole::Misc).request()?;
    if let Some(value) = container::getenv(XILINX_XRT) {
        log::info!("the container sets {XILINX_XRT}={value} itself: left as it is");
        return Ok(());
    }
    match inject::set_env(XILINX_XRT, dir) {
        Ok(()) => Ok(()),
        // A hook runs after the container's environment is fixed.
        Err(Error::Unsupported(why)) => {
            log::warn!(
                "{XILINX_XRT} is left unset: {why}. {dir} is mounted: `source {dir}/setup.sh` \
                 in the container, or set {XILINX_XRT}={dir} in the image"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

hookhost_plugin::export!(Xilinx);

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> serde_json::Value {
        serde_json::from_str(include_str!("../xilinx.json")).unwrap()
    }

    #[test]
    fn settings() {
        assert_eq!(
            Settings::parse("{}").unwrap().xrt_dir.as_deref(),
            Some("/opt/xilinx/xrt")
        );
        assert_eq!(
            Settings::parse(r#"{"xrt-dir": null}"#).unwrap().xrt_dir,
            None
        );
        assert_eq!(Settings::parse("{}").unwrap().candidates, Candidates::Host);
        assert_eq!(
            Settings::parse(r#"{"candidates": "spec"}"#)
                .unwrap()
                .candidates,
            Candidates::Spec
        );
        let wrong = Settings::parse(r#"{"candidates": "annotation"}"#).unwrap_err();
        assert!(
            wrong.starts_with(
                "invalid settings: unknown variant `annotation`, expected `host` or `spec`"
            ),
            "{wrong}"
        );
        assert_eq!(
            Settings::parse(r#"{"xrt-dir": "/opt/xilinx/xrt_2.16"}"#)
                .unwrap()
                .xrt_dir
                .as_deref(),
            Some("/opt/xilinx/xrt_2.16")
        );
        for bad in ["opt/xilinx/xrt", "/opt/xilinx/xrt/", "/opt/xilinx/xrt*"] {
            assert_eq!(
                Settings::parse(&format!(r#"{{"xrt-dir": "{bad}"}}"#)).unwrap_err(),
                format!(
                    "invalid settings: xrt-dir: `{bad}` is not an absolute path \
                     without a trailing / or pattern characters"
                )
            );
        }
        let unknown = Settings::parse(r#"{"xrt": "/opt/xilinx/xrt"}"#).unwrap_err();
        assert!(
            unknown.starts_with("invalid settings: unknown field `xrt`"),
            "{unknown}"
        );
    }

    /// The manifest's allow-list is exactly what the policy looks at and asks
    /// for, with the manifest's settings.
    #[test]
    fn manifest_allows_exactly_what_the_policy_uses() {
        let manifest = manifest();
        let settings = Settings::parse(&manifest["settings"].to_string()).unwrap();

        let user = format!("{}/{}", sysfs::XOCL, sysfs::PCI_ADDRESS);
        let mut expected = vec![
            sysfs::XOCL.to_string(),
            user.clone(),
            format!("{user}/{}", sysfs::RENDER),
            format!("{user}/{}", sysfs::SERIAL),
            format!("{user}/{}", sysfs::SHELL),
            format!(
                "{}/{}/{}",
                sysfs::XCLMGMT,
                sysfs::PCI_ADDRESS,
                sysfs::INSTANCE
            ),
            format!("{}/renderD[0-9]*", sysfs::DRI),
            format!("{}[0-9]*", sysfs::MGMT_PREFIX),
        ];
        // The host checks the allow-list on what a path resolves to as
        // well: a driver's device link leads into /sys/devices.
        let real = format!("/sys/devices/**/{}", sysfs::PCI_ADDRESS);
        expected.extend([
            format!("{real}/{}", sysfs::RENDER),
            format!("{real}/{}", sysfs::SERIAL),
            format!("{real}/{}", sysfs::SHELL),
            format!("{real}/{}", sysfs::INSTANCE),
        ]);
        expected.extend(settings.xrt_dir);

        hookhost_plugin::testing::assert_allow_list(&manifest, &expected);
    }

    /// The manifest runs the plugin for exactly the variables and the
    /// annotation it reads.
    #[test]
    fn manifest_activates_on_what_the_policy_reads() {
        let activation = &manifest()["activation"];
        assert_eq!(
            activation["env"],
            serde_json::json!([select::DEVICES_VAR, select::CARDS_VAR])
        );
        // Activation keys are regexes over the whole key.
        let key = select::ANNOTATION.replace('.', "\\.");
        assert_eq!(activation["annotations"], serde_json::json!({ key: ".*" }));
    }
}
