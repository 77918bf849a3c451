//! MIG: the nodes `/dev/nvidia-caps/nvidia-cap<N>` that let a container use
//! a MIG device (a compute instance of a GPU instance of a GPU), and the
//! GPU-wide ones of `NVIDIA_MIG_CONFIG_DEVICES` and
//! `NVIDIA_MIG_MONITOR_DEVICES`.
//!
//! The kernel module says which minor each capability has (`DeviceFileMinor`
//! in `/proc/driver/nvidia/capabilities/…`, or `/proc/driver/nvidia-caps/mig-minors`)
//! and the major of them all (`nvidia-caps` in `/proc/devices`). Which GPU
//! instance and compute instance a MIG UUID or a MIG index names only NVML
//! knows, and a plugin cannot call NVML: that comes from an inventory the
//! administrator's tooling writes (see `Inventory`).

use std::collections::BTreeSet;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::Device;
use hookhost_plugin::{log, Error};
use serde::Deserialize;

use crate::driver::Gpu;

pub const PROC_DEVICES: &str = "/proc/devices";
pub const CAPS: &str = "/proc/driver/nvidia/capabilities";
pub const MIG_MINORS: &str = "/proc/driver/nvidia-caps/mig-minors";
pub const CONFIG: &str = "/proc/driver/nvidia/capabilities/mig/config";
pub const MONITOR: &str = "/proc/driver/nvidia/capabilities/mig/monitor";
pub const DEFAULT_INVENTORY: &str = "/run/hookhost/nvidia-mig.json";

pub const CONFIG_DEVICES: &str = "NVIDIA_MIG_CONFIG_DEVICES";
pub const MONITOR_DEVICES: &str = "NVIDIA_MIG_MONITOR_DEVICES";

/// Enough for the inventory of a host with 8 GPUs of 7 MIG devices each,
/// many times over.
const INVENTORY_LIMIT: u32 = 1024 * 1024;
/// `mig-minors` has a line for every possible instance of 32 GPUs.
const PROC_LIMIT: u32 = 256 * 1024;

/// A MIG device as `NVIDIA_VISIBLE_DEVICES` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigId {
    /// `MIG-<uuid>`, in any case.
    Uuid(String),
    /// `<gpu index>:<mig index>`.
    Index(usize, usize),
}

impl MigId {
    pub fn parse(id: &str) -> Option<Self> {
        let uuid_prefix = id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("MIG-"));
        if uuid_prefix && id.len() > 4 {
            return Some(MigId::Uuid(id.to_string()));
        }
        let (gpu, mig) = id.split_once(':')?;
        let number = |n: &str| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
        };
        Some(MigId::Index(number(gpu)?, number(mig)?))
    }
}

impl std::fmt::Display for MigId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigId::Uuid(uuid) => write!(f, "{uuid}"),
            MigId::Index(gpu, mig) => write!(f, "{gpu}:{mig}"),
        }
    }
}

/// One MIG device of the inventory: a JSON array of these objects, which
/// the administrator's tooling writes from NVML (`nvidia-smi -L` and
/// `nvidia-smi mig -lgi`/`-lci` say the same).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MigDevice {
    /// The parent GPU's index (PCI bus order, as `nvidia-smi` counts) and
    /// UUID, which must match this host's GPU at that index.
    pub gpu_index: usize,
    pub gpu_uuid: String,
    /// The device's index among its GPU's MIG devices, as NVML counts.
    pub mig_index: usize,
    pub mig_uuid: String,
    /// GPU instance and compute instance ids.
    pub gi: u32,
    pub ci: u32,
}

pub struct Inventory(Vec<MigDevice>);

/// A selected MIG device: its parent GPU, its GPU and compute instances.
#[derive(Debug)]
pub struct Selected<'a> {
    pub parent: &'a Gpu,
    pub gi: u32,
    pub ci: u32,
}

/// The MIG devices `ids` name, through the inventory at `path` (read only
/// when there are some). On a host without GPUs they name none, as a list
/// of whole GPUs does there.
pub fn resolve<'a>(
    ids: &[&MigId],
    gpus: &'a [Gpu],
    path: &str,
) -> Result<Vec<Selected<'a>>, String> {
    let (Some(first), false) = (ids.first(), gpus.is_empty()) else {
        return Ok(Vec::new());
    };
    let inventory = Inventory::read(path, first)?;
    ids.iter()
        .map(|id| {
            let (device, parent) = inventory.resolve(id, gpus, path)?;
            log::debug!(
                "MIG device {id}: {} on GPU {}, gi {} ci {}",
                device.mig_uuid,
                parent.uuid,
                device.gi,
                device.ci
            );
            Ok(Selected {
                parent,
                gi: device.gi,
                ci: device.ci,
            })
        })
        .collect()
}

impl Inventory {
    /// The inventory at `path` (the setting `mig-inventory`); its absence
    /// is an error naming the setting, for a container that names a MIG
    /// device must never start without it.
    pub fn read(path: &str, wanted: &MigId) -> Result<Self, String> {
        let text = host::read_to_string(path, INVENTORY_LIMIT).map_err(|e| {
            let why = match e {
                Error::NotFound(_) => "it does not exist".to_string(),
                e => e.to_string(),
            };
            format!(
                "NVIDIA_VISIBLE_DEVICES: the MIG device {wanted} needs the MIG inventory that \
                 the setting `mig-inventory` names ({path}), and {why}: only NVML knows which \
                 GPU and compute instances a MIG device is, so the host's tooling must write \
                 that file (see the NVIDIA policy's MIG section in plugins/README.md)"
            )
        })?;
        Self::parse(&text).map_err(|e| format!("the MIG inventory {path}: {e}"))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let devices: Vec<MigDevice> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (i, a) in devices.iter().enumerate() {
            let twin = devices[..i].iter().find(|b| {
                b.mig_uuid.eq_ignore_ascii_case(&a.mig_uuid)
                    || (b.gpu_index, b.mig_index) == (a.gpu_index, a.mig_index)
            });
            if let Some(b) = twin {
                return Err(format!(
                    "{} ({}:{}) and {} ({}:{}) share a UUID or an index",
                    b.mig_uuid, b.gpu_index, b.mig_index, a.mig_uuid, a.gpu_index, a.mig_index
                ));
            }
        }
        Ok(Inventory(devices))
    }

    /// The device `id` names, with its parent among this host's `gpus`.
    pub fn resolve<'a>(
        &self,
        id: &MigId,
        gpus: &'a [Gpu],
        path: &str,
    ) -> Result<(&MigDevice, &'a Gpu), String> {
        let found = self.0.iter().find(|d| match id {
            MigId::Uuid(uuid) => d.mig_uuid.eq_ignore_ascii_case(uuid),
            MigId::Index(gpu, mig) => (d.gpu_index, d.mig_index) == (*gpu, *mig),
        });
        let device = found.ok_or_else(|| {
            let known: Vec<String> = self
                .0
                .iter()
                .map(|d| format!("{}:{} {}", d.gpu_index, d.mig_index, d.mig_uuid))
                .collect();
            format!(
                "NVIDIA_VISIBLE_DEVICES: no MIG device {id} in the MIG inventory {path} \
                 (it has {}: {})",
                known.len(),
                known.join(", ")
            )
        })?;
        let parent = gpus
            .get(device.gpu_index)
            .filter(|gpu| gpu.uuid.eq_ignore_ascii_case(&device.gpu_uuid))
            .ok_or_else(|| {
                format!(
                    "NVIDIA_VISIBLE_DEVICES: the MIG inventory {path} puts {} on GPU {} ({}), \
                     which this host does not have at that index: the inventory is stale",
                    device.mig_uuid, device.gpu_index, device.gpu_uuid
                )
            })?;
        Ok((device, parent))
    }
}

/// The minors of the capabilities a container gets, gathered before the
/// nodes are asked for (a GPU-wide grant covers a device's own).
#[derive(Debug, Default)]
pub struct Caps {
    /// Those whose node must exist.
    needed: BTreeSet<u32>,
    /// A GPU-wide grant's: every instance the GPU may have, of which only
    /// those made so far have a node.
    if_present: BTreeSet<u32>,
}

impl Caps {
    /// The GPU instance's and the compute instance's capabilities of a MIG
    /// device of the GPU `parent`.
    pub fn add_device(&mut self, parent: &Gpu, gi: u32, ci: u32) -> Result<(), String> {
        let gi_dir = format!("{CAPS}/gpu{}/mig/gi{gi}", parent.minor);
        for access in [
            format!("{gi_dir}/access"),
            format!("{gi_dir}/ci{ci}/access"),
        ] {
            let minor = access_minor(&access).map_err(|e| {
                format!(
                    "MIG device gi {gi} ci {ci} of GPU {}: {e} (the MIG inventory may be stale)",
                    parent.uuid
                )
            })?;
            self.needed.insert(minor);
        }
        Ok(())
    }

    /// Every MIG device the GPU has now (each compute instance, with its
    /// GPU instance), from `/proc`: what `all` gives, without the inventory.
    pub fn add_all_devices(&mut self, gpu: &Gpu) -> Result<(), String> {
        let gpu_dir = format!("{CAPS}/gpu{}/mig", gpu.minor);
        for ci_access in host::glob(&format!("{gpu_dir}/gi*/ci*/access"))? {
            let gi_dir = ci_access.rsplitn(3, '/').nth(2).unwrap_or_default();
            for access in [format!("{gi_dir}/access"), ci_access.clone()] {
                self.needed.insert(access_minor(&access)?);
            }
        }
        Ok(())
    }

    /// `config` or `monitor` (the file `CONFIG` or `MONITOR`), and every
    /// MIG capability of `gpus`: what NVIDIA_MIG_CONFIG_DEVICES and
    /// NVIDIA_MIG_MONITOR_DEVICES give.
    pub fn add_gpu_wide(&mut self, global: &str, gpus: &[&Gpu]) -> Result<(), String> {
        self.needed.insert(access_minor(global)?);
        let table = host::read_to_string(MIG_MINORS, PROC_LIMIT)
            .map_err(|e| format!("{MIG_MINORS}: {e}"))?;
        for gpu in gpus {
            let minors = gpu_minors(&table, gpu.minor);
            log::debug!("GPU {}: {} MIG capabilities", gpu.uuid, minors.len());
            self.if_present.extend(minors);
        }
        Ok(())
    }

    /// Asks for the node of each capability, checked to be the one the
    /// kernel module gave it.
    pub fn request(&self) -> Result<(), String> {
        if self.needed.is_empty() && self.if_present.is_empty() {
            return Ok(());
        }
        let major = caps_major()?;
        for &minor in self.needed.union(&self.if_present) {
            let path = format!("/dev/nvidia-caps/nvidia-cap{minor}");
            let stat = match host::stat(&path) {
                Ok(stat) => stat,
                Err(Error::NotFound(_)) if !self.needed.contains(&minor) => continue,
                Err(Error::NotFound(_)) => {
                    return Err(format!(
                        "{path} does not exist: the driver made the capability but not its \
                         node (nvidia-modprobe -f makes it)"
                    ))
                }
                Err(e) => return Err(e.to_string()),
            };
            if stat.kind != FileKind::CharDevice || (stat.major, stat.minor) != (major, minor) {
                return Err(format!(
                    "{path} is not the character device {major}:{minor} (nvidia-caps in \
                     {PROC_DEVICES})"
                ));
            }
            Device::new(path).request()?;
        }
        Ok(())
    }
}

/// The `DeviceFileMinor` of a capability's `/proc` file.
fn access_minor(path: &str) -> Result<u32, String> {
    let text = host::read_to_string(path, PROC_LIMIT).map_err(|e| e.to_string())?;
    parse_access(&text).ok_or_else(|| format!("{path}: no `DeviceFileMinor: <number>` line"))
}

/// `DeviceFileMinor: 12` among `DeviceFileMode: 292`, `DeviceFileModify: 1`.
fn parse_access(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "DeviceFileMinor")
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// The minors `mig-minors` gives the GPU whose minor is `gpu`: its lines
/// `gpu<gpu>/gi<I>/access <minor>` and `gpu<gpu>/gi<I>/ci<C>/access <minor>`.
fn gpu_minors(table: &str, gpu: u32) -> Vec<u32> {
    let prefix = format!("gpu{gpu}/");
    table
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(cap, _)| cap.starts_with(&prefix))
        .filter_map(|(_, minor)| minor.trim().parse().ok())
        .collect()
}

/// The major of `nvidia-caps` among the character devices of
/// `/proc/devices`.
fn caps_major() -> Result<u32, String> {
    let text = host::read_to_string(PROC_DEVICES, PROC_LIMIT)
        .map_err(|e| format!("{PROC_DEVICES}: {e}"))?;
    parse_major(&text, "nvidia-caps").ok_or_else(|| {
        format!(
            "{PROC_DEVICES} has no character device nvidia-caps: this driver hands MIG \
             capabilities out through /proc (before 450.80.02), which hookhost does not support"
        )
    })
}

pub fn parse_major(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .skip_while(|line| line.trim() != "Character devices:")
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(_, driver)| driver.trim() == name)
        .and_then(|(major, _)| major.trim().parse().ok())
}

/// `NVIDIA_MIG_CONFIG_DEVICES` or `NVIDIA_MIG_MONITOR_DEVICES`: whether it
/// asks for anything (set and not empty), refused for an unprivileged
/// container as NVIDIA's toolkit refuses it. Only `all` is a value, as in
/// libnvidia-container.
pub fn gpu_wide_wanted(name: &str, value: Option<&str>, privileged: bool) -> Result<bool, String> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    if !privileged {
        return Err(format!(
            "{name}={value}: only a privileged container (CAP_SYS_ADMIN in its bounding set) \
             may configure or monitor MIG, as in NVIDIA's toolkit"
        ));
    }
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() || !entries.iter().all(|e| e.eq_ignore_ascii_case("all")) {
        return Err(format!(
            "{name}={value}: only `all` (the visible GPUs) is a value, as in NVIDIA's toolkit"
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mig_ids_are_uuids_or_index_pairs() {
        assert_eq!(
            MigId::parse("MIG-4f6e1a2b"),
            Some(MigId::Uuid("MIG-4f6e1a2b".into()))
        );
        assert_eq!(MigId::parse("mig-ab"), Some(MigId::Uuid("mig-ab".into())));
        assert_eq!(MigId::parse("0:1"), Some(MigId::Index(0, 1)));
        assert_eq!(MigId::parse("12:0"), Some(MigId::Index(12, 0)));
        for wrong in ["MIG-", "0:", ":1", "0:1:2", "a:1", "0:+1", "3b:00.0", "0"] {
            assert_eq!(MigId::parse(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn access_files_give_their_minor() {
        let text = "DeviceFileMinor: 21\nDeviceFileMode: 292\nDeviceFileModify: 1\n";
        assert_eq!(parse_access(text), Some(21));
        assert_eq!(parse_access("DeviceFileMode: 292\n"), None);
        assert_eq!(parse_access("DeviceFileMinor: x\n"), None);
    }

    #[test]
    fn the_caps_major_is_a_character_device_of_proc_devices() {
        let text = "Character devices:\n  1 mem\n195 nvidia\n237 nvidia-caps\n\n\
                    Block devices:\n238 nvidia-caps\n";
        assert_eq!(parse_major(text, "nvidia-caps"), Some(237));
        let block_only = "Character devices:\n195 nvidia\n\nBlock devices:\n237 nvidia-caps\n";
        assert_eq!(parse_major(block_only, "nvidia-caps"), None);
    }

    #[test]
    fn mig_minors_lines_of_one_gpu() {
        let table = "config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\n\
                     gpu1/gi0/access 138\ngpu10/gi0/access 1353\ngpu1/gi2/ci0/access 156\n";
        assert_eq!(gpu_minors(table, 1), [138, 156]);
        assert_eq!(gpu_minors(table, 0), [3, 4]);
    }

    #[test]
    fn the_inventory_is_an_array_of_devices_each_named_once() {
        let one = r#"{"gpu-index": 0, "gpu-uuid": "GPU-a", "mig-index": 0,
                      "mig-uuid": "MIG-x", "gi": 1, "ci": 0}"#;
        let inventory = Inventory::parse(&format!("[{one}]")).unwrap();
        let gpus = [Gpu {
            bus_id: "0000:3b:00.0".into(),
            uuid: "GPU-A".into(),
            minor: 2,
        }];
        let (device, parent) = inventory
            .resolve(&MigId::Uuid("mig-X".into()), &gpus, "/inv")
            .unwrap();
        assert_eq!((device.gi, device.ci, parent.minor), (1, 0, 2));
        assert!(inventory
            .resolve(&MigId::Index(0, 0), &gpus, "/inv")
            .is_ok());
        assert_eq!(
            inventory.resolve(&MigId::Index(0, 1), &gpus, "/inv").err(),
            Some(
                "NVIDIA_VISIBLE_DEVICES: no MIG device 0:1 in the MIG inventory /inv \
                 (it has 1: 0:0 MIG-x)"
                    .into()
            )
        );
        let other_gpu = [Gpu {
            uuid: "GPU-b".into(),
            ..gpus[0].clone()
        }];
        assert!(inventory
            .resolve(&MigId::Index(0, 0), &other_gpu, "/inv")
            .unwrap_err()
            .ends_with("the inventory is stale"));

        let twice = Inventory::parse(&format!("[{one}, {one}]")).err().unwrap();
        assert!(twice.contains("share a UUID or an index"), "{twice}");
        let unknown = Inventory::parse(r#"[{"gpu": 0}]"#).err().unwrap();
        assert!(unknown.starts_with("unknown field `gpu`"), "{unknown}");
    }

    #[test]
    fn gpu_wide_grants_need_a_privileged_container_and_all() {
        let wanted = |v, p| gpu_wide_wanted(CONFIG_DEVICES, v, p);
        assert_eq!(wanted(None, false), Ok(false));
        assert_eq!(wanted(Some(""), false), Ok(false));
        assert_eq!(wanted(Some("all"), true), Ok(true));
        assert_eq!(wanted(Some("ALL, all"), true), Ok(true));
        assert!(wanted(Some("all"), false)
            .unwrap_err()
            .contains("only a privileged container"));
        assert!(wanted(Some("0"), true).unwrap_err().contains("only `all`"));
        assert!(wanted(Some("all,0"), true)
            .unwrap_err()
            .contains("only `all`"));
    }
}
