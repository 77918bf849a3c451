//! hookhost's policy for Intel FPGAs (OPAE): the container's
//! `FPGA_REGION_N` / `FPGA_AFU_N` pairs, as Intel's FPGA admission webhook
//! writes them for its CRI-O hook, each choose a port whose region has that
//! interface ID and that runs that AFU; the container gets its node
//! (`/dev/dfl-port.N`, or `/dev/intel-fpga-port.N` with the older driver).
//!
//! The pairs are read from the whole environment, in pair number order
//! (gaps allowed). When the spec's `linux.devices` already lists FPGA ports
//! (Intel's device plugin in `region` mode allocated them), only those are
//! candidates, as with Intel's hook; otherwise every port of the host is.
//!
//! Unlike Intel's hook, this policy never programs an FPGA: a port must
//! already run the AFU asked for.

mod select;
mod sysfs;

use hookhost_plugin::host::FileKind;
use hookhost_plugin::inject::Device;
use hookhost_plugin::{container, host, log, Error, PluginInfo, Policy};
use serde::Deserialize;

use select::{Allocated, CharNode, AFU_PREFIX, REGION_PREFIX};

/// The manifest's `settings`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// Also give the FME of each chosen port's FPGA, as Intel's device
    /// plugin does in its `regiondevel` mode: with it the container can
    /// reprogram the region itself. Off, the container gets the ports only,
    /// as in Intel's `af` and `region` modes.
    fme: bool,
}

impl Settings {
    fn parse(json: &str) -> Result<Self, String> {
        hookhost_plugin::parse_settings(json)
    }
}

struct IntelFpga;

impl Policy for IntelFpga {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "intel-fpga".into(),
            vendor: "hookhost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Intel FPGA ports (OPAE: DFL and intel-fpga drivers), selected by \
                      FPGA_REGION_N and FPGA_AFU_N"
                .into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        Settings::parse(&settings).map(drop)
    }

    fn devices() -> Result<Vec<String>, String> {
        let fpgas = sysfs::probe()?;
        if fpgas.is_empty() {
            log::info!("no Intel FPGA driver is loaded: no devices");
        }
        Ok(fpgas
            .iter()
            .flat_map(|f| f.ports.iter().map(|p| p.name.clone()))
            .collect())
    }

    fn apply() -> Result<(), String> {
        let settings = Settings::parse(&host::settings())?;
        let requests = select::requests(&container::environment())?;
        if requests.is_empty() {
            log::debug!("no {REGION_PREFIX}N / {AFU_PREFIX}N pair: nothing to inject");
            return Ok(());
        }
        let fpgas = sysfs::probe()?;
        if fpgas.is_empty() {
            let classes: Vec<String> = sysfs::LAYOUTS
                .iter()
                .map(|l| {
                    let class = l.fpgas.rsplit_once('/').map_or(l.fpgas, |(dir, _)| dir);
                    format!("{class} ({})", l.driver)
                })
                .collect();
            return Err(format!(
                "Intel FPGA driver not loaded on this host (no FPGA under {})",
                classes.join(" or ")
            ));
        }
        let allocated = allocated_ports(&fpgas)?;
        if !allocated.is_empty() {
            let paths: Vec<&str> = allocated.iter().map(|a| a.path.as_str()).collect();
            log::debug!(
                "the spec allocates FPGA ports, the only candidates: {}",
                paths.join(", ")
            );
        }
        let assigned = select::assign(&requests, &fpgas, &allocated)?;
        for (request, (fpga, port)) in requests.iter().zip(&assigned) {
            log::debug!(
                "{}: {} on {} ({} driver)",
                request.pair(),
                port.name,
                fpga.name,
                fpga.driver
            );
        }
        give(&settings, &assigned)
    }

    /// The names are the ports' (`dfl-port.0`), as `devices` lists them.
    fn plan_devices(names: Vec<String>) -> Result<(), String> {
        hookhost_plugin::check_device_names(&names, &Self::devices()?)?;
        let settings = Settings::parse(&host::settings())?;
        let fpgas = sysfs::probe()?;
        let ports: Vec<_> = fpgas
            .iter()
            .flat_map(|fpga| fpga.ports.iter().map(move |port| (fpga, port)))
            .filter(|(_, port)| names.contains(&port.name))
            .collect();
        give(&settings, &ports)
    }
}

/// The ports' nodes, and with the setting `fme` their FPGAs' FME nodes.
fn give(settings: &Settings, ports: &[(&sysfs::Fpga, &sysfs::Port)]) -> Result<(), String> {
    let mut fmes: Vec<&str> = Vec::new();
    for (fpga, port) in ports {
        node(&port.name)?;
        if settings.fme && !fmes.contains(&fpga.fme.as_str()) {
            fmes.push(&fpga.fme);
            node(&fpga.fme)?;
        }
    }
    Ok(())
}

/// The FPGA ports that the spec's `linux.devices` gives the container (see
/// [`select::allocated`]); none when it lists no port. The host's port
/// nodes are stat'ed for their device numbers only when the spec lists
/// character devices.
fn allocated_ports(fpgas: &[sysfs::Fpga]) -> Result<Vec<Allocated>, String> {
    let spec: Vec<CharNode> = container::spec_devices()
        .into_iter()
        .filter(|d| d.kind == FileKind::CharDevice)
        .map(|d| CharNode {
            path: d.path,
            major: d.major,
            minor: d.minor,
        })
        .collect();
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    let mut ports = Vec::new();
    for port in fpgas.iter().flat_map(|f| &f.ports) {
        let path = sysfs::node(&port.name);
        match host::stat(&path) {
            Ok(stat) if stat.kind == FileKind::CharDevice => ports.push(CharNode {
                path,
                major: stat.major,
                minor: stat.minor,
            }),
            // No spec device can match it (requesting it would fail too).
            Ok(_) => log::debug!("{path} is not a character device"),
            Err(Error::NotFound(_)) => log::debug!("{path} does not exist"),
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(select::allocated(&spec, &ports))
}

/// The node of an FME or port; the host stats it for its major:minor.
fn node(name: &str) -> Result<(), String> {
    Device::new(sysfs::node(name))
        .request()
        .map_err(|e| format!("{name}: {e}"))
}

hookhost_plugin::export!(IntelFpga);

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> serde_json::Value {
        serde_json::from_str(include_str!("../intel-fpga.json")).unwrap()
    }

    #[test]
    fn settings() {
        assert!(!Settings::parse("{}").unwrap().fme);
        assert!(Settings::parse(r#"{"fme": true}"#).unwrap().fme);
        let wrong = Settings::parse(r#"{"fme": "yes"}"#).unwrap_err();
        assert!(
            wrong.starts_with("invalid settings: invalid type: string"),
            "{wrong}"
        );
        let unknown = Settings::parse(r#"{"fmes": true}"#).unwrap_err();
        assert!(
            unknown.starts_with("invalid settings: unknown field `fmes`"),
            "{unknown}"
        );
    }

    /// The manifest's allow-list is exactly what the policy looks at and asks
    /// for.
    #[test]
    fn manifest_allows_exactly_what_the_policy_uses() {
        let manifest = manifest();
        Settings::parse(&manifest["settings"].to_string()).unwrap();
        let mut expected = Vec::new();
        for layout in &sysfs::LAYOUTS {
            // The host checks the allow-list on what a path resolves to as
            // well: a /sys/class link leads into /sys/devices.
            let real = |class: String| class.replacen("/sys/class/", "/sys/devices/**/", 1);
            expected.extend([
                layout.interface_ids(),
                layout.afu_ids(),
                real(layout.interface_ids()),
                real(layout.afu_ids()),
                format!("{}[0-9]*", sysfs::node(layout.fme)),
                format!("{}[0-9]*", sysfs::node(layout.port)),
            ]);
        }
        hookhost_plugin::testing::assert_allow_list(&manifest, &expected);
    }

    /// The manifest runs the plugin when the environment has a variable of
    /// either family, whatever its number (the plugin itself refuses a
    /// malformed one), or when Intel's device plugin in `region` mode
    /// annotates the container.
    #[test]
    fn manifest_activates_on_any_pair_variable_or_the_region_mode_annotation() {
        assert_eq!(REGION_PREFIX, "FPGA_REGION_");
        assert_eq!(AFU_PREFIX, "FPGA_AFU_");
        assert_eq!(
            manifest()["activation"],
            serde_json::json!({
                "env-names": ["FPGA_(REGION|AFU)_.+"],
                "annotations": { r"com\.intel\.fpga\.mode": r"fpga\.intel\.com/region" },
            })
        );
    }
}
