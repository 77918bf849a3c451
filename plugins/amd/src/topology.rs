//! The GPUs of this host as the amdgpu driver's KFD (the kernel half of
//! ROCm) lists them in its sysfs topology, and the DRM nodes of each.
//!
//! Every KFD node, CPU or GPU, has a `properties` file of `name value` lines
//! with decimal values. A GPU node names its PCI function (`domain`,
//! `location_id`), its render node (`drm_render_minor`) and, on GPUs that
//! have one, its `unique_id`. The card node is not in the topology: sysfs
//! finds it beside the render node, under the same device.

use std::collections::BTreeMap;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::Error;

/// One `properties` file per KFD node.
pub const NODE_PROPERTIES: &str = "/sys/class/kfd/kfd/topology/nodes/*/properties";
/// Where the nodes are, for messages.
pub const NODES_DIR: &str = "/sys/class/kfd/kfd/topology/nodes";
/// The compute interface, one for all GPUs. Its major is dynamic: the host
/// takes it from this node, as it does for every device.
pub const KFD: &str = "/dev/kfd";
/// The DRM nodes of the GPUs. The paths asked for are made from these
/// patterns (the allow-list's), so the two cannot drift apart.
pub const CARD_NODES: &str = "/dev/dri/card[0-9]*";
pub const RENDER_NODES: &str = "/dev/dri/renderD[0-9]*";

/// `/dev/dri/card<number>`.
pub fn card_node(number: u32) -> String {
    CARD_NODES.replace("[0-9]*", &number.to_string())
}
/// `renderD<minor>/device` is the device that owns the render node (a PCI
/// function, or a partition's platform device); its `drm/` directory holds
/// that device's card node too. [`cards`] looks at one render node's.
pub const DEVICE_CARDS: &str = "/sys/class/drm/renderD[0-9]*/device/drm/card[0-9]*";

/// The [`DEVICE_CARDS`] of one render node.
fn device_cards(render_minor: u32) -> String {
    DEVICE_CARDS.replace("renderD[0-9]*", &format!("renderD{render_minor}"))
}

/// A properties file is about 1 KiB; this leaves room for new fields.
const PROPERTIES_LIMIT: u32 = 64 * 1024;

/// One GPU (or GPU partition) of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// The KFD node number (the directory name under [`NODES_DIR`]).
    pub node: u32,
    /// PCI domain and `location_id` (bus << 8 | device << 3 | function):
    /// together the PCI address, and in this order its sort key.
    pub domain: u32,
    pub location_id: u32,
    /// The 64-bit ID the driver reads from the GPU, when it has one.
    pub unique_id: Option<u64>,
    /// `/dev/dri/renderD<render_minor>` is its render node.
    pub render_minor: u32,
}

impl Gpu {
    /// The PCI address, e.g. `0000:c3:00.0`.
    pub fn bus_id(&self) -> String {
        let bus = (self.location_id >> 8) & 0xff;
        let device = (self.location_id >> 3) & 0x1f;
        let function = self.location_id & 0x7;
        format!("{:04x}:{bus:02x}:{device:02x}.{function:x}", self.domain)
    }

    pub fn render_node(&self) -> String {
        RENDER_NODES.replace("[0-9]*", &self.render_minor.to_string())
    }
}

/// A unique ID as `rocm-smi --showuniqueid` and AMD's container toolkit
/// print it: `0x` and lower-case hex. (KFD itself writes it in decimal.)
pub fn format_unique_id(id: u64) -> String {
    format!("0x{id:x}")
}

/// This host's GPUs in PCI bus order (partitions of one device by render
/// minor), or `None` when there is no KFD topology, i.e. no driver.
pub fn gpus() -> Result<Option<Vec<Gpu>>, String> {
    let files = host::glob(NODE_PROPERTIES)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut gpus = Vec::new();
    for path in &files {
        let Some(node) = node_number(path) else {
            continue;
        };
        let text = host::read_to_string(path, PROPERTIES_LIMIT)?;
        if let Some(gpu) = parse_gpu(node, &text).map_err(|e| format!("{path}: {e}"))? {
            gpus.push(gpu);
        }
    }
    sort(&mut gpus);
    Ok(Some(gpus))
}

/// The numbering of GPUs: PCI bus order, as AMD's container toolkit counts
/// (it walks the amdgpu driver's PCI devices sorted by address). KFD's own
/// node order is probe order, which can differ from it.
fn sort(gpus: &mut [Gpu]) {
    gpus.sort_by_key(|gpu| (gpu.domain, gpu.location_id, gpu.render_minor, gpu.node));
}

/// `7` for `/sys/class/kfd/kfd/topology/nodes/7/properties`; `None` for
/// anything else the glob might meet.
fn node_number(path: &str) -> Option<u32> {
    let rest = path.strip_prefix(NODES_DIR)?.strip_prefix('/')?;
    let digits = rest.strip_suffix("/properties")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// The `name value` lines of a properties file. A line that is not two
/// words is ignored: only the fields read below must be well-formed.
pub fn parse_properties(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(name), Some(value), None) => Some((name, value)),
                _ => None,
            }
        })
        .collect()
}

/// The GPU a node's properties describe, or `None` for a CPU node (one
/// without SIMDs, as ROCm's runtime tells them apart).
fn parse_gpu(node: u32, text: &str) -> Result<Option<Gpu>, String> {
    let properties = parse_properties(text);
    let number = |name: &str| -> Result<Option<u64>, String> {
        properties
            .get(name)
            .map(|value| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("`{name} {value}` is not a number"))
            })
            .transpose()
    };
    let required = |name: &str| number(name)?.ok_or_else(|| format!("no `{name}` line"));
    let small = |name: &str, value: u64| {
        u32::try_from(value).map_err(|_| format!("`{name} {value}` is out of range"))
    };

    if number("simd_count")?.unwrap_or(0) == 0 {
        return Ok(None);
    }
    let render_minor = small("drm_render_minor", required("drm_render_minor")?)?;
    if render_minor == 0 {
        return Err("`drm_render_minor 0`: the GPU has no render node".into());
    }
    Ok(Some(Gpu {
        node,
        // Kernels before `domain` was added only knew domain 0.
        domain: small("domain", number("domain")?.unwrap_or(0))?,
        location_id: small("location_id", required("location_id")?)?,
        // 0 means the GPU has none.
        unique_id: number("unique_id")?.filter(|&id| id != 0),
        render_minor,
    }))
}

/// The card numbers (`N` of `/dev/dri/cardN`) of the device that owns the
/// render node `renderD<render_minor>`. Normally one; none when the device
/// has no card node.
pub fn cards(render_minor: u32) -> Result<Vec<u32>, String> {
    let mut cards: Vec<u32> = host::glob(&device_cards(render_minor))?
        .iter()
        .filter_map(|path| card_number(path.rsplit('/').next()?))
        .collect();
    cards.sort_unstable();
    Ok(cards)
}

/// `1` for `card1`; `None` for a connector like `card1-DP-1`.
fn card_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("card")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `/dev/kfd` is there: the KFD part of amdgpu creates it.
pub fn kfd_present() -> Result<bool, String> {
    match host::stat(KFD) {
        Ok(stat) if stat.kind == FileKind::CharDevice => Ok(true),
        Ok(_) => Err(format!("{KFD} is not a character device")),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The error for a host without (all of) the driver, naming what is missing.
pub fn driver_missing(topology: bool, kfd: bool) -> Option<String> {
    let mut missing = Vec::new();
    if !kfd {
        missing.push(format!("no {KFD}"));
    }
    if !topology {
        missing.push(format!("no KFD topology in {NODES_DIR}"));
    }
    (!missing.is_empty()).then(|| {
        format!(
            "AMD GPU driver (amdgpu with KFD) not loaded on this host ({})",
            missing.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GPU node as an MI210 on a 6.x kernel writes it (abridged).
    const GPU_NODE: &str = "cpu_cores_count 0\nsimd_count 416\nmem_banks_count 1\n\
        wave_front_size 64\ngfx_target_version 90010\nvendor_id 4098\ndevice_id 29711\n\
        location_id 49920\ndomain 0\ndrm_render_minor 128\nhive_id 0\n\
        num_cp_queues 24\nunique_id 11800994664013805385\nnum_xcc 1\n\
        max_engine_clk_ccompute 2600\n";

    const CPU_NODE: &str = "cpu_cores_count 64\nsimd_count 0\nmem_banks_count 1\n\
        location_id 0\ndomain 0\ndrm_render_minor 0\nmax_engine_clk_ccompute 2450\n";

    #[test]
    fn properties() {
        let properties = parse_properties("simd_count 416\n\nbroken\nname a b\ndomain  1\n");
        assert_eq!(
            properties.into_iter().collect::<Vec<_>>(),
            [("domain", "1"), ("simd_count", "416")]
        );
    }

    #[test]
    fn gpu_nodes() {
        let gpu = parse_gpu(1, GPU_NODE).unwrap().unwrap();
        assert_eq!(
            gpu,
            Gpu {
                node: 1,
                domain: 0,
                location_id: 0xc300,
                unique_id: Some(0xa3c58e1f60d2b749),
                render_minor: 128,
            }
        );
        assert_eq!(gpu.bus_id(), "0000:c3:00.0");
        assert_eq!(gpu.render_node(), "/dev/dri/renderD128");
        assert_eq!(
            format_unique_id(gpu.unique_id.unwrap()),
            "0xa3c58e1f60d2b749"
        );

        // Domain, device and function all land in the address.
        let gpu = Gpu {
            domain: 0x10002,
            location_id: 0x8b << 8 | 0x1f << 3 | 3,
            ..gpu
        };
        assert_eq!(gpu.bus_id(), "10002:8b:1f.3");
    }

    #[test]
    fn cpu_nodes_are_not_gpus() {
        assert_eq!(parse_gpu(0, CPU_NODE), Ok(None));
        assert_eq!(parse_gpu(0, "cpu_cores_count 8\n"), Ok(None));
    }

    #[test]
    fn optional_and_broken_fields() {
        // Old kernels: no domain, no unique_id; 0 means no unique ID.
        let old = "simd_count 256\nlocation_id 768\ndrm_render_minor 129\n";
        let gpu = parse_gpu(2, old).unwrap().unwrap();
        assert_eq!((gpu.domain, gpu.unique_id), (0, None));
        let zero = format!("{old}unique_id 0\n");
        assert_eq!(parse_gpu(2, &zero).unwrap().unwrap().unique_id, None);

        assert_eq!(
            parse_gpu(2, "simd_count 256\ndrm_render_minor 129\n"),
            Err("no `location_id` line".into())
        );
        assert_eq!(
            parse_gpu(2, "simd_count 256\nlocation_id 768\ndrm_render_minor x\n"),
            Err("`drm_render_minor x` is not a number".into())
        );
        assert_eq!(
            parse_gpu(2, "simd_count 256\nlocation_id 768\ndrm_render_minor 0\n"),
            Err("`drm_render_minor 0`: the GPU has no render node".into())
        );
        assert_eq!(
            parse_gpu(
                2,
                "simd_count 256\nlocation_id 99999999999\ndrm_render_minor 1\n"
            ),
            Err("`location_id 99999999999` is out of range".into())
        );
    }

    #[test]
    fn bus_order_not_node_order() {
        let gpu = |node, domain, location_id, render_minor| Gpu {
            node,
            domain,
            location_id,
            unique_id: None,
            render_minor,
        };
        let mut gpus = vec![
            gpu(1, 0, 0xc300, 128),
            gpu(2, 0, 0x0300, 129),
            gpu(3, 1, 0x0100, 130),
            // Two partitions of one device: by render minor.
            gpu(5, 0, 0x8300, 132),
            gpu(4, 0, 0x8300, 131),
        ];
        sort(&mut gpus);
        let nodes: Vec<u32> = gpus.iter().map(|g| g.node).collect();
        assert_eq!(nodes, [2, 4, 5, 1, 3]);
    }

    #[test]
    fn node_numbers_and_card_names() {
        assert_eq!(
            node_number("/sys/class/kfd/kfd/topology/nodes/12/properties"),
            Some(12)
        );
        assert_eq!(
            node_number("/sys/class/kfd/kfd/topology/nodes/x/properties"),
            None
        );
        assert_eq!(card_node(3), "/dev/dri/card3");
        assert_eq!(card_number("card1"), Some(1));
        assert_eq!(card_number("card12"), Some(12));
        assert_eq!(card_number("card1-DP-1"), None);
        assert_eq!(card_number("card"), None);
        assert_eq!(card_number("renderD128"), None);
        assert_eq!(
            device_cards(130),
            "/sys/class/drm/renderD130/device/drm/card[0-9]*"
        );
    }

    #[test]
    fn missing_driver_messages() {
        assert_eq!(driver_missing(true, true), None);
        assert_eq!(
            driver_missing(true, false).unwrap(),
            "AMD GPU driver (amdgpu with KFD) not loaded on this host (no /dev/kfd)"
        );
        assert_eq!(
            driver_missing(false, false).unwrap(),
            "AMD GPU driver (amdgpu with KFD) not loaded on this host \
             (no /dev/kfd, no KFD topology in /sys/class/kfd/kfd/topology/nodes)"
        );
    }
}
