//! What a container asks for: `NVIDIA_VISIBLE_DEVICES` and
//! `NVIDIA_DRIVER_CAPABILITIES`, with NVIDIA's documented meanings.

use crate::driver::Gpu;

/// The value of `NVIDIA_VISIBLE_DEVICES`.
#[derive(Debug, PartialEq, Eq)]
pub enum Visible {
    /// Unset, empty or `void`: the container gets nothing.
    Nothing,
    /// `none`: the driver but no GPU.
    DriverOnly,
    /// `all`.
    All,
    /// A comma list of indices and UUIDs, in the container's order.
    List(Vec<GpuId>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum GpuId {
    Index(usize),
    Uuid(String),
}

impl Visible {
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let value = value.unwrap_or("").trim();
        Ok(match value {
            "" | "void" => Visible::Nothing,
            "none" => Visible::DriverOnly,
            "all" => Visible::All,
            list => Visible::List(
                list.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(GpuId::parse)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The GPUs selected among `gpus` (in bus order), each once.
    pub fn select<'a>(&self, gpus: &'a [Gpu]) -> Result<Vec<&'a Gpu>, String> {
        let ids = match self {
            Visible::Nothing | Visible::DriverOnly => return Ok(Vec::new()),
            Visible::All => return Ok(gpus.iter().collect()),
            Visible::List(ids) => ids,
        };
        let mut selected: Vec<&Gpu> = Vec::new();
        for id in ids {
            let gpu = match id {
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
        if id.starts_with("GPU-") {
            Ok(GpuId::Uuid(id.to_string()))
        } else if let Ok(index) = id.parse() {
            Ok(GpuId::Index(index))
        } else {
            Err(format!(
                "NVIDIA_VISIBLE_DEVICES: `{id}` is neither a GPU index nor a GPU-… UUID \
                 (nor all, none or void)"
            ))
        }
    }
}

fn not_found(what: &str, known: &[String]) -> String {
    let host = match known.len() {
        0 => "this host has none".to_string(),
        n => format!("this host has {n}: {}", known.join(", ")),
    };
    format!("NVIDIA_VISIBLE_DEVICES: no GPU with {what} ({host})")
}

/// A driver capability: each one selects a part of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Utility,
    Compute,
    Video,
    Graphics,
    Display,
    Compat32,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Utility,
        Capability::Compute,
        Capability::Video,
        Capability::Graphics,
        Capability::Display,
        Capability::Compat32,
    ];

    fn name(self) -> &'static str {
        match self {
            Capability::Utility => "utility",
            Capability::Compute => "compute",
            Capability::Video => "video",
            Capability::Graphics => "graphics",
            Capability::Display => "display",
            Capability::Compat32 => "compat32",
        }
    }

    /// The value of `NVIDIA_DRIVER_CAPABILITIES`, sorted and without repeats;
    /// unset or empty means `utility,compute`.
    pub fn parse_list(value: Option<&str>) -> Result<Vec<Capability>, String> {
        let value = value.unwrap_or("").trim();
        if value.is_empty() {
            return Ok(vec![Capability::Utility, Capability::Compute]);
        }
        let mut caps = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                caps.extend(Self::ALL);
                continue;
            }
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
        assert_eq!(Visible::parse(Some(" ")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("void")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("none")), Ok(Visible::DriverOnly));
        assert_eq!(minors("none"), Ok(vec![]));
        assert_eq!(minors("all"), Ok(vec![0, 1]));
    }

    #[test]
    fn lists_keep_the_containers_order_without_repeats() {
        assert_eq!(minors("1,0"), Ok(vec![1, 0]));
        assert_eq!(minors(" 1 , GPU-bbbb,0,"), Ok(vec![1, 0]));
        assert_eq!(minors("GPU-BBBB"), Ok(vec![1]));
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
        assert_eq!(
            Visible::parse(Some("0")).unwrap().select(&[]),
            Err("NVIDIA_VISIBLE_DEVICES: no GPU with index 0 (this host has none)".into())
        );
        assert!(minors("MIG-1234")
            .unwrap_err()
            .contains("`MIG-1234` is neither"));
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
        assert_eq!(
            Capability::parse_list(Some("all")),
            Ok(Capability::ALL.to_vec())
        );
        assert_eq!(
            Capability::parse_list(Some("compute,gpu")),
            Err("NVIDIA_DRIVER_CAPABILITIES: unknown capability `gpu` \
                 (known: utility, compute, video, graphics, display, compat32, all)"
                .into())
        );
    }
}
