//! What a container asks for: `NVIDIA_VISIBLE_DEVICES` and
//! `NVIDIA_DRIVER_CAPABILITIES`, with NVIDIA's documented meanings.

use crate::driver::Gpu;
use crate::mig::MigId;

/// The value of `NVIDIA_VISIBLE_DEVICES`.
#[derive(Debug, PartialEq, Eq)]
pub enum Visible {
    /// Unset, empty or `void`: the container gets nothing.
    Nothing,
    /// `none`: the driver but no GPU.
    DriverOnly,
    /// `all`.
    All,
    /// A comma list of indices, UUIDs, PCI bus ids and MIG devices, in the
    /// container's order.
    List(Vec<GpuId>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum GpuId {
    Index(usize),
    Uuid(String),
    /// `[domain:]bus:device.function`, in hex.
    BusId(PciAddress),
    /// A MIG device: see `crate::mig`, which resolves it.
    Mig(MigId),
}

/// A PCI address, compared by value: `0000:3B:00.0`, `3b:00.0` and NVML's
/// `00000000:3B:00.0` are the same GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// `[domain:]bus:device.function`: hex numbers of at most 8, 2, 2 and 1
    /// digits, in either case; the domain defaults to 0.
    pub fn parse(text: &str) -> Option<Self> {
        fn hex(part: &str, max_digits: usize) -> Option<u32> {
            let digits_only = part.chars().all(|c| c.is_ascii_hexdigit());
            if part.is_empty() || part.len() > max_digits || !digits_only {
                return None;
            }
            u32::from_str_radix(part, 16).ok()
        }
        let (rest, function) = text.split_once('.')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts[..] {
            [bus, device] => (0, bus, device),
            [domain, bus, device] => (hex(domain, 8)?, bus, device),
            _ => return None,
        };
        let address = PciAddress {
            domain,
            bus: hex(bus, 2)? as u8,
            device: hex(device, 2)? as u8,
            function: hex(function, 1)? as u8,
        };
        (address.device < 0x20 && address.function < 8).then_some(address)
    }
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let PciAddress {
            domain,
            bus,
            device,
            function,
        } = self;
        write!(f, "{domain:04x}:{bus:02x}:{device:02x}.{function:x}")
    }
}

/// Whether the image is what NVIDIA's toolkit calls a legacy CUDA image:
/// `CUDA_VERSION` set and not empty, `NVIDIA_REQUIRE_CUDA` unset or empty.
/// Such an image predates the NVIDIA_* variables; when it leaves one unset
/// it gets everything: every GPU, every capability.
pub fn is_legacy_image(cuda_version: Option<&str>, require_cuda: Option<&str>) -> bool {
    !cuda_version.unwrap_or("").is_empty() && require_cuda.unwrap_or("").is_empty()
}

impl Visible {
    /// The variable's value in an image that is `legacy` or not: unset in
    /// a legacy image it means `all` (set, even empty, it means what it
    /// says).
    pub fn from_env(value: Option<&str>, legacy: bool) -> Result<Self, String> {
        match value {
            None if legacy => Ok(Visible::All),
            value => Self::parse(value),
        }
    }

    /// NVIDIA's toolkit reads the variable as a comma list: `void` anywhere
    /// in it (or no entry at all) gives nothing, else `none` anywhere gives
    /// the driver only, else `all` anywhere gives every GPU; the special
    /// words match in any case here.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let ids: Vec<&str> = value
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .collect();
        let has = |word: &str| ids.iter().any(|id| id.eq_ignore_ascii_case(word));
        Ok(if ids.is_empty() || has("void") {
            Visible::Nothing
        } else if has("none") {
            Visible::DriverOnly
        } else if has("all") {
            Visible::All
        } else {
            Visible::List(
                ids.into_iter()
                    .map(GpuId::parse)
                    .collect::<Result<_, _>>()?,
            )
        })
    }

    /// The MIG devices of a list.
    pub fn mig_ids(&self) -> Vec<&MigId> {
        match self {
            Visible::List(ids) => ids
                .iter()
                .filter_map(|id| match id {
                    GpuId::Mig(mig) => Some(mig),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The whole GPUs selected among `gpus` (in bus order), each once; a
    /// MIG device's parent is `crate::mig`'s to add. On a host
    /// without GPUs a list selects none, as NVIDIA's toolkit does (the
    /// container still gets the driver).
    pub fn select<'a>(&self, gpus: &'a [Gpu]) -> Result<Vec<&'a Gpu>, String> {
        let ids = match self {
            Visible::Nothing | Visible::DriverOnly => return Ok(Vec::new()),
            Visible::All => return Ok(gpus.iter().collect()),
            Visible::List(_) if gpus.is_empty() => return Ok(Vec::new()),
            Visible::List(ids) => ids,
        };
        let mut selected: Vec<&Gpu> = Vec::new();
        for id in ids {
            let gpu = match id {
                GpuId::Mig(_) => continue,
                GpuId::Index(index) => gpus.get(*index).ok_or_else(|| {
                    let known: Vec<String> = (0..gpus.len()).map(|i| i.to_string()).collect();
                    not_found(&format!("index {index}"), &known)
                })?,
                GpuId::Uuid(uuid) => gpus
                    .iter()
                    .find(|gpu| gpu.uuid.eq_ignore_ascii_case(uuid))
                    .ok_or_else(|| {
                        let known: Vec<String> = gpus.iter().map(|gpu| gpu.uuid.clone()).collect();
                        not_found(&format!("UUID {uuid}"), &known)
                    })?,
                GpuId::BusId(address) => gpus
                    .iter()
                    .find(|gpu| PciAddress::parse(&gpu.bus_id) == Some(*address))
                    .ok_or_else(|| {
                        let known: Vec<String> =
                            gpus.iter().map(|gpu| gpu.bus_id.clone()).collect();
                        not_found(&format!("PCI bus id {address}"), &known)
                    })?,
            };
            if !selected.iter().any(|s| std::ptr::eq(*s, gpu)) {
                selected.push(gpu);
            }
        }
        Ok(selected)
    }
}

impl GpuId {
    fn parse(id: &str) -> Result<Self, String> {
        let uuid_prefix = id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("GPU-"));
        if uuid_prefix && id.len() > 4 {
            Ok(GpuId::Uuid(id.to_string()))
        } else if let Some(address) = PciAddress::parse(id) {
            Ok(GpuId::BusId(address))
        } else if let Ok(index) = id.parse() {
            Ok(GpuId::Index(index))
        } else if let Some(mig) = MigId::parse(id) {
            Ok(GpuId::Mig(mig))
        } else {
            Err(format!(
                "NVIDIA_VISIBLE_DEVICES: `{id}` is neither a GPU index, a GPU-… UUID, a PCI \
                 bus id nor a MIG device (MIG-… or <gpu>:<mig>) (nor all, none or void)"
            ))
        }
    }
}

/// The error for a GPU this host lacks (it has some: see `select`).
fn not_found(what: &str, known: &[String]) -> String {
    format!(
        "NVIDIA_VISIBLE_DEVICES: no GPU with {what} (this host has {}: {})",
        known.len(),
        known.join(", ")
    )
}

/// A driver capability: each one selects a part of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Utility,
    Compute,
    Video,
    Graphics,
    Display,
    Ngx,
    Compat32,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::Utility,
        Capability::Compute,
        Capability::Video,
        Capability::Graphics,
        Capability::Display,
        Capability::Ngx,
        Capability::Compat32,
    ];

    fn name(self) -> &'static str {
        match self {
            Capability::Utility => "utility",
            Capability::Compute => "compute",
            Capability::Video => "video",
            Capability::Graphics => "graphics",
            Capability::Display => "display",
            Capability::Ngx => "ngx",
            Capability::Compat32 => "compat32",
        }
    }

    /// The capabilities whose libraries (and the nodes those need) this one
    /// brings, as libnvidia-container's option table has it: `video` brings
    /// compute's libraries too (not its executables), `display` graphics'.
    fn brings_libraries_of(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Utility => &[Utility],
            Compute => &[Compute],
            Video => &[Compute, Video],
            Graphics => &[Graphics],
            Display => &[Graphics, Display],
            Ngx => &[Ngx],
            Compat32 => &[Compat32],
        }
    }

    /// The capabilities whose libraries `caps` bring, sorted and without
    /// repeats.
    pub fn libraries_of(caps: &[Capability]) -> Vec<Capability> {
        let mut all: Vec<Capability> = caps
            .iter()
            .flat_map(|cap| cap.brings_libraries_of())
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The variable's value in an image that is `legacy` or not: unset in
    /// a legacy image it means every capability (set but empty, the
    /// default).
    pub fn from_env(value: Option<&str>, legacy: bool) -> Result<Vec<Capability>, String> {
        match value {
            None if legacy => Ok(Self::ALL.to_vec()),
            value => Self::parse_list(value),
        }
    }

    /// The value of `NVIDIA_DRIVER_CAPABILITIES`, sorted and without repeats;
    /// unset or empty means `utility,compute`. `all` anywhere in the list
    /// means every capability, whatever else the list names, as in NVIDIA's
    /// toolkit.
    pub fn parse_list(value: Option<&str>) -> Result<Vec<Capability>, String> {
        let names: Vec<&str> = value
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(vec![Capability::Utility, Capability::Compute]);
        }
        if names.contains(&"all") {
            return Ok(Self::ALL.to_vec());
        }
        let mut caps = Vec::new();
        for name in names {
            let cap = Self::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                    format!(
                        "NVIDIA_DRIVER_CAPABILITIES: unknown capability `{name}` (known: {}, all)",
                        known.join(", ")
                    )
                })?;
            caps.push(cap);
        }
        caps.sort();
        caps.dedup();
        Ok(caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus() -> Vec<Gpu> {
        ["GPU-aaaa", "GPU-bbbb"]
            .iter()
            .enumerate()
            .map(|(i, uuid)| Gpu {
                bus_id: format!("0000:0{i}:00.0"),
                uuid: uuid.to_string(),
                minor: i as u32,
            })
            .collect()
    }

    fn minors(visible: &str) -> Result<Vec<u32>, String> {
        let gpus = gpus();
        let selected = Visible::parse(Some(visible))?.select(&gpus)?;
        Ok(selected.iter().map(|gpu| gpu.minor).collect())
    }

    #[test]
    fn special_values() {
        assert_eq!(Visible::parse(None), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some(" ")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some(" , ,")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("void")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("none")), Ok(Visible::DriverOnly));
        assert_eq!(minors("none"), Ok(vec![]));
        assert_eq!(minors("all"), Ok(vec![0, 1]));
    }

    #[test]
    fn special_values_anywhere_in_the_list_decide_void_then_none_then_all() {
        assert_eq!(Visible::parse(Some("0,all")), Ok(Visible::All));
        assert_eq!(Visible::parse(Some("all, 1")), Ok(Visible::All));
        assert_eq!(Visible::parse(Some("0,none")), Ok(Visible::DriverOnly));
        assert_eq!(Visible::parse(Some("all,none")), Ok(Visible::DriverOnly));
        assert_eq!(Visible::parse(Some("1,void")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("none,all,void")), Ok(Visible::Nothing));
        // Whatever else the list holds, even what is no GPU id.
        assert_eq!(Visible::parse(Some("MIG-1,all")), Ok(Visible::All));
    }

    #[test]
    fn special_values_match_in_any_case() {
        assert_eq!(Visible::parse(Some("ALL")), Ok(Visible::All));
        assert_eq!(Visible::parse(Some("None")), Ok(Visible::DriverOnly));
        assert_eq!(Visible::parse(Some("0,VOID")), Ok(Visible::Nothing));
    }

    #[test]
    fn lists_keep_the_containers_order_without_repeats() {
        assert_eq!(minors("1,0"), Ok(vec![1, 0]));
        assert_eq!(minors(" 1 , GPU-bbbb,0,"), Ok(vec![1, 0]));
        assert_eq!(minors("GPU-BBBB"), Ok(vec![1]));
        assert_eq!(minors("gpu-bbbb,gPu-AAAA"), Ok(vec![1, 0]));
    }

    #[test]
    fn pci_bus_ids_select_gpus_in_any_case_with_or_without_the_domain() {
        assert_eq!(minors("0000:01:00.0"), Ok(vec![1]));
        assert_eq!(minors("01:00.0,0000:00:00.0"), Ok(vec![1, 0]));
        assert_eq!(minors("00000000:01:00.0,1"), Ok(vec![1]));
        let gpus = vec![Gpu {
            bus_id: "0000:3b:00.0".into(),
            uuid: "GPU-aaaa".into(),
            minor: 0,
        }];
        for id in ["0000:3B:00.0", "3b:00.0", "00000000:3B:00.0", "0:3b:0.0"] {
            let selected = Visible::parse(Some(id)).unwrap().select(&gpus);
            assert_eq!(selected, Ok(vec![&gpus[0]]), "{id}");
        }
        assert_eq!(
            minors("0000:3b:00.1"),
            Err(
                "NVIDIA_VISIBLE_DEVICES: no GPU with PCI bus id 0000:3b:00.1 \
                 (this host has 2: 0000:00:00.0, 0000:01:00.0)"
                    .into()
            )
        );
    }

    #[test]
    fn pci_addresses() {
        let parse = |text| PciAddress::parse(text).map(|a| a.to_string());
        assert_eq!(parse("0000:3B:00.0").as_deref(), Some("0000:3b:00.0"));
        assert_eq!(parse("3b:1f.7").as_deref(), Some("0000:3b:1f.7"));
        assert_eq!(parse("10000:3b:00.0").as_deref(), Some("10000:3b:00.0"));
        for wrong in [
            "3b:00",
            "3b.0",
            "0000:3b:00.8",
            "0000:3b:20.0",
            "0000:13b:00.0",
            ":3b:00.0",
            "0:0:3b:00.0",
            "+3b:00.0",
            "3b:00.0.0",
            "000000000:3b:00.0",
            "0000:3b:00.",
        ] {
            assert_eq!(PciAddress::parse(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn unknown_gpus_are_errors() {
        assert_eq!(
            minors("5"),
            Err("NVIDIA_VISIBLE_DEVICES: no GPU with index 5 (this host has 2: 0, 1)".into())
        );
        assert_eq!(
            minors("GPU-cccc"),
            Err("NVIDIA_VISIBLE_DEVICES: no GPU with UUID GPU-cccc \
                 (this host has 2: GPU-aaaa, GPU-bbbb)"
                .into())
        );
        assert!(minors("MIG-").unwrap_err().contains("`MIG-` is neither"));
        assert!(minors("GPU-").unwrap_err().contains("`GPU-` is neither"));
        assert!(minors("0:1:2").unwrap_err().contains("`0:1:2` is neither"));
    }

    #[test]
    fn mig_devices_are_listed_apart_and_select_no_whole_gpu() {
        let visible = Visible::parse(Some("1, MIG-abc,0:1")).unwrap();
        assert_eq!(
            visible.mig_ids(),
            [&MigId::Uuid("MIG-abc".into()), &MigId::Index(0, 1)]
        );
        assert_eq!(minors("MIG-abc,0:1"), Ok(vec![]));
        assert_eq!(minors("mig-abc,1"), Ok(vec![1]));
        assert!(Visible::All.mig_ids().is_empty());
    }

    #[test]
    fn on_a_host_without_gpus_a_list_selects_none() {
        for list in ["0", "GPU-aaaa", "3b:00.0", "0,1"] {
            let visible = Visible::parse(Some(list)).unwrap();
            assert_eq!(visible.select(&[]), Ok(vec![]), "{list}");
        }
        assert_eq!(Visible::All.select(&[]), Ok(vec![]));
    }

    #[test]
    fn legacy_images_have_cuda_version_without_nvidia_require_cuda() {
        assert!(is_legacy_image(Some("12.4.1"), None));
        assert!(is_legacy_image(Some("9.0"), Some("")));
        assert!(!is_legacy_image(Some("12.4.1"), Some("cuda>=12.4")));
        assert!(!is_legacy_image(Some(""), None));
        assert!(!is_legacy_image(None, None));
    }

    #[test]
    fn unset_in_a_legacy_image_means_all() {
        assert_eq!(Visible::from_env(None, true), Ok(Visible::All));
        assert_eq!(Visible::from_env(None, false), Ok(Visible::Nothing));
        assert_eq!(Visible::from_env(Some(""), true), Ok(Visible::Nothing));
        assert_eq!(Visible::from_env(Some("void"), true), Ok(Visible::Nothing));
        assert_eq!(
            Visible::from_env(Some("0"), true),
            Ok(Visible::List(vec![GpuId::Index(0)]))
        );
        use Capability::*;
        assert_eq!(
            Capability::from_env(None, true),
            Ok(Capability::ALL.to_vec())
        );
        assert_eq!(
            Capability::from_env(None, false),
            Ok(vec![Utility, Compute])
        );
        assert_eq!(
            Capability::from_env(Some(""), true),
            Ok(vec![Utility, Compute])
        );
        assert_eq!(Capability::from_env(Some("video"), true), Ok(vec![Video]));
    }

    #[test]
    fn capabilities() {
        use Capability::*;
        assert_eq!(Capability::parse_list(None), Ok(vec![Utility, Compute]));
        assert_eq!(Capability::parse_list(Some("")), Ok(vec![Utility, Compute]));
        assert_eq!(
            Capability::parse_list(Some("video, utility,video")),
            Ok(vec![Utility, Video])
        );
        assert_eq!(Capability::parse_list(Some("ngx")), Ok(vec![Ngx]));
        assert_eq!(
            Capability::parse_list(Some("all")),
            Ok(Capability::ALL.to_vec())
        );
        assert!(Capability::ALL.contains(&Ngx));
        assert_eq!(
            Capability::parse_list(Some("compute,gpu")),
            Err("NVIDIA_DRIVER_CAPABILITIES: unknown capability `gpu` \
                 (known: utility, compute, video, graphics, display, ngx, compat32, all)"
                .into())
        );
    }

    #[test]
    fn all_with_other_names_is_all() {
        for list in ["all,ngx", "video,all", "all,compute,all", "all,future"] {
            assert_eq!(
                Capability::parse_list(Some(list)),
                Ok(Capability::ALL.to_vec()),
                "{list}"
            );
        }
    }

    #[test]
    fn video_brings_computes_libraries_and_display_graphics() {
        use Capability::*;
        assert_eq!(Capability::libraries_of(&[Video]), [Compute, Video]);
        assert_eq!(Capability::libraries_of(&[Display]), [Graphics, Display]);
        assert_eq!(
            Capability::libraries_of(&[Utility, Video, Display]),
            [Utility, Compute, Video, Graphics, Display]
        );
        assert_eq!(Capability::libraries_of(&[Utility, Ngx]), [Utility, Ngx]);
        assert_eq!(Capability::libraries_of(&Capability::ALL), Capability::ALL);
    }
}
