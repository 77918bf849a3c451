//! hookhost's policy for AMD GPUs (ROCm): the container's
//! `AMD_VISIBLE_DEVICES` picks the GPUs, with the grammar of AMD's container
//! toolkit. A container with any GPU gets `/dev/kfd` (ROCm's compute
//! interface, shared by all GPUs) and each selected GPU's `/dev/dri/cardN`
//! and `/dev/dri/renderDN`; the ROCm libraries only when the manifest's
//! settings ask for them.

mod libraries;
mod select;
mod topology;

use hookhost_plugin::allocation::{self, Candidates, SpecDevices};
use hookhost_plugin::inject::{self, Device};
use hookhost_plugin::{container, log, PluginInfo, Policy};
use serde::Deserialize;

use libraries::Group;
use select::{Visible, VISIBLE_DEVICES};
use topology::Gpu;

/// The manifest's `settings`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// `host`: every GPU of the host; `spec`: only those whose render node
    /// the spec's `linux.devices` lists (see `hookhost_plugin::allocation`).
    candidates: Candidates,
    /// The library groups every GPU container gets; none by default.
    libraries: Vec<Group>,
    /// Where the libraries are, searched in order.
    library_dirs: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            candidates: Candidates::Host,
            libraries: Vec::new(),
            library_dirs: vec!["/opt/rocm/lib".to_string()],
        }
    }
}

impl Settings {
    fn parse(json: &str) -> Result<Self, String> {
        let settings: Settings = hookhost_plugin::parse_settings(json)?;
        hookhost_plugin::check_dirs("library-dirs", &settings.library_dirs)?;
        Ok(settings)
    }
}

struct Amd;

impl Policy for Amd {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "amd".into(),
            vendor: "hookhost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "AMD GPUs (ROCm): /dev/kfd and the GPUs' DRM nodes, \
                      selected by AMD_VISIBLE_DEVICES"
                .into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        Settings::parse(&settings).map(drop)
    }

    fn devices() -> Result<Vec<String>, String> {
        let gpus = match topology::gpus()? {
            Some(gpus) if topology::kfd_present()? => gpus,
            _ => {
                log::info!("the AMD GPU driver is not loaded: no devices");
                return Ok(Vec::new());
            }
        };
        let indices = (0..gpus.len()).map(|i| i.to_string());
        Ok(indices
            .chain(select::unique_ids(&gpus))
            .chain(["all".to_string()])
            .collect())
    }

    fn apply() -> Result<(), String> {
        let settings = Settings::parse(&hookhost_plugin::host::settings())?;
        // The value is checked before the host, so a typo is reported as
        // such on any host.
        let visible = Visible::parse(container::getenv(VISIBLE_DEVICES).as_deref())?;
        if visible == Visible::Nothing {
            log::debug!("{VISIBLE_DEVICES} is empty: nothing to inject");
            return Ok(());
        }
        let spec = match settings.candidates {
            Candidates::Host => None,
            Candidates::Spec => Some(SpecDevices::read()),
        };
        if spec.as_ref().is_some_and(SpecDevices::is_empty) {
            log::info!("{}", nothing_allocated());
            return Ok(());
        }
        let gpus = probe()?;
        let allocated = match &spec {
            Some(spec) => {
                let allocated = allocated_gpus(spec, &gpus)?;
                if allocated.is_empty() {
                    log::info!("{}", nothing_allocated());
                    return Ok(());
                }
                Some(allocated)
            }
            None => None,
        };
        let mut selected = visible.select(&gpus)?;
        if let Some(allocated) = &allocated {
            let describe = |&(index, gpu): &(usize, &Gpu)| {
                format!("GPU {index} ({}, {})", gpu.bus_id(), gpu.render_node())
            };
            let allocation: Vec<String> = allocated
                .iter()
                .map(|&i| describe(&(i, &gpus[i])))
                .collect();
            selected = allocation::narrow(
                VISIBLE_DEVICES,
                visible == Visible::All,
                selected,
                |(index, _)| allocated.contains(index),
                describe,
                &allocation,
            )?;
        }

        give(&settings, selected)
    }

    /// The names are those of AMD_VISIBLE_DEVICES (an index, a unique id,
    /// `all`).
    fn plan_devices(names: Vec<String>) -> Result<(), String> {
        hookhost_plugin::check_device_names(&names, &Self::devices()?)?;
        let settings = Settings::parse(&hookhost_plugin::host::settings())?;
        let gpus = probe()?;
        let selected = Visible::parse(Some(&names.join(",")))?.select(&gpus)?;
        give(&settings, selected)
    }
}

/// The host's GPUs, or why the driver is missing.
fn probe() -> Result<Vec<Gpu>, String> {
    let gpus = topology::gpus()?;
    let kfd = topology::kfd_present()?;
    if let Some(missing) = topology::driver_missing(gpus.is_some(), kfd) {
        return Err(missing);
    }
    Ok(gpus.unwrap_or_default())
}

/// /dev/kfd, the GPUs' nodes and the ROCm libraries.
fn give(settings: &Settings, selected: Vec<(usize, &Gpu)>) -> Result<(), String> {
    Device::new(topology::KFD).request()?;
    for (index, gpu) in selected {
        gpu_nodes(gpu).map_err(|e| format!("GPU {index} ({}): {e}", gpu.bus_id()))?;
    }
    rocm_libraries(settings)
}

/// The indices of the GPUs whose render node (the node ROCm computes
/// through, which every GPU has) the spec lists, by number.
fn allocated_gpus(spec: &SpecDevices, gpus: &[Gpu]) -> Result<Vec<usize>, String> {
    let mut allocated = Vec::new();
    for (index, gpu) in gpus.iter().enumerate() {
        if spec.lists_node(&gpu.render_node())? {
            allocated.push(index);
        }
    }
    Ok(allocated)
}

fn nothing_allocated() -> String {
    format!(
        "the spec's linux.devices allocates no AMD GPU (no GPU's render node) and the \
         setting `candidates` is `spec`: nothing to inject, whatever {VISIBLE_DEVICES} says"
    )
}

/// The GPU's card and render nodes. The render node is what compute uses
/// and must be there; a device without a card node only gets a warning.
fn gpu_nodes(gpu: &Gpu) -> Result<(), String> {
    let cards = topology::cards(gpu.render_minor)?;
    if cards.is_empty() {
        log::warn!(
            "GPU {} (KFD node {}): sysfs shows no card node beside {}",
            gpu.bus_id(),
            gpu.node,
            gpu.render_node()
        );
    }
    for card in cards {
        Device::new(topology::card_node(card)).request()?;
    }
    Device::new(gpu.render_node()).request()?;
    log::debug!(
        "GPU {} (KFD node {}, unique ID {}) with {}",
        gpu.bus_id(),
        gpu.node,
        gpu.unique_id
            .map_or("none".to_string(), topology::format_unique_id),
        gpu.render_node()
    );
    Ok(())
}

/// The library groups of the settings, and ldconfig when any was found.
fn rocm_libraries(settings: &Settings) -> Result<(), String> {
    let mut groups = settings.libraries.clone();
    groups.sort();
    groups.dedup();
    let mut any = false;
    for group in groups {
        for name in group.libraries() {
            any |= libraries::request(&settings.library_dirs, name)?;
        }
    }
    if any {
        inject::run_ldconfig()?;
    } else if !settings.libraries.is_empty() {
        log::warn!(
            "the settings ask for ROCm libraries but none is in {}",
            settings.library_dirs.join(", ")
        );
    }
    Ok(())
}

hookhost_plugin::export!(Amd);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let settings = Settings::parse("{}").unwrap();
        assert!(settings.libraries.is_empty());
        assert_eq!(settings.candidates, Candidates::Host);
        let settings = Settings::parse(r#"{"candidates": "spec"}"#).unwrap();
        assert_eq!(settings.candidates, Candidates::Spec);
        let wrong = Settings::parse(r#"{"candidates": "all"}"#).unwrap_err();
        assert!(
            wrong.starts_with("invalid settings: unknown variant `all`, expected `host` or `spec`"),
            "{wrong}"
        );
        assert_eq!(settings.library_dirs, ["/opt/rocm/lib"]);
        let settings = Settings::parse(
            r#"{"libraries": ["smi", "runtime"], "library-dirs": ["/opt/rocm-6.2.0/lib"]}"#,
        )
        .unwrap();
        assert_eq!(settings.libraries, [Group::Smi, Group::Runtime]);
        assert_eq!(settings.library_dirs, ["/opt/rocm-6.2.0/lib"]);

        let unknown = Settings::parse(r#"{"library": ["runtime"]}"#).unwrap_err();
        assert!(
            unknown.starts_with("invalid settings: unknown field `library`"),
            "{unknown}"
        );
        let group = Settings::parse(r#"{"libraries": ["hip"]}"#).unwrap_err();
        assert!(
            group.starts_with(
                "invalid settings: unknown variant `hip`, expected `runtime` or `smi`"
            ),
            "{group}"
        );
        let wrong_type = Settings::parse(r#"{"libraries": true}"#).unwrap_err();
        assert!(
            wrong_type.starts_with("invalid settings: invalid type: boolean"),
            "{wrong_type}"
        );
        assert_eq!(
            Settings::parse(r#"{"library-dirs": ["/opt/rocm/lib/"]}"#).unwrap_err(),
            "invalid settings: library-dirs: `/opt/rocm/lib/` is not an absolute path \
             without a trailing /"
        );
    }

    /// The manifest's allow-list is exactly what the policy looks at and asks
    /// for, with the manifest's settings; and it activates on the variable.
    #[test]
    fn manifest_allows_exactly_what_the_policy_uses() {
        let manifest: serde_json::Value =
            serde_json::from_str(include_str!("../amd.json")).unwrap();
        assert_eq!(
            manifest["activation"],
            serde_json::json!({ "env": [VISIBLE_DEVICES] })
        );
        let settings = Settings::parse(&manifest["settings"].to_string()).unwrap();

        let mut expected: Vec<String> = [
            topology::NODE_PROPERTIES,
            topology::KFD,
            topology::DEVICE_CARDS,
            topology::CARD_NODES,
            topology::RENDER_NODES,
        ]
        .map(String::from)
        .to_vec();
        // The host checks the allow-list on what a path resolves to as
        // well: sysfs class and `device` links lead into /sys/devices, and
        // /opt/rocm is a link to the versioned install.
        expected.extend([
            "/sys/devices/**/kfd/kfd/topology/nodes/*/properties".to_string(),
            "/sys/devices/**/drm/card[0-9]*".to_string(),
        ]);
        // Every group, so that turning one on needs no allow-list change.
        for group in Group::ALL {
            for name in group.libraries() {
                expected.extend(
                    settings
                        .library_dirs
                        .iter()
                        .chain(["/opt/rocm-[0-9]*/lib".to_string()].iter())
                        .map(|dir| format!("{dir}/{name}.so*")),
                );
            }
        }

        hookhost_plugin::testing::assert_allow_list(&manifest, &expected);
    }
}
