//! What a container asks for: `XILINX_VISIBLE_DEVICES` or
//! `XILINX_VISIBLE_CARDS`, with the meanings of Xilinx's container runtime,
//! or the annotation that an orchestrator sets.

use crate::sysfs::{Bdf, Device};

pub const DEVICES_VAR: &str = "XILINX_VISIBLE_DEVICES";
pub const CARDS_VAR: &str = "XILINX_VISIBLE_CARDS";
/// Same grammar as `XILINX_VISIBLE_DEVICES`. It wins over the environment:
/// an annotation is set by whoever starts the container, while the
/// environment may come from the image.
pub const ANNOTATION: &str = "hookhost.io/xilinx-visible-devices";

/// Whether a selection counts devices (one FPGA each) or cards (one board,
/// which may carry several devices, as the U30 does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Device,
    Card,
}

/// The container's choice and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    /// `XILINX_VISIBLE_DEVICES`, or `annotation …`: what error messages name.
    pub source: String,
    pub unit: Unit,
    pub visible: Visible,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Visible {
    /// Unset, empty, `none` or `void`.
    Nothing,
    /// `all`.
    All,
    /// A comma list, in the container's order.
    List(Vec<Id>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Id {
    /// A device's (or card's) position, counted from 0.
    Index(usize),
    /// The PCI address of either function of a device.
    Address(Bdf),
    /// A board's serial number: every device of that card.
    Serial(String),
}

impl Selection {
    /// The annotation when it is present; otherwise the first of the two
    /// variables that is set and not empty, `XILINX_VISIBLE_DEVICES` first
    /// (as Xilinx's container runtime reads them).
    pub fn choose(
        annotation: Option<String>,
        devices: Option<String>,
        cards: Option<String>,
    ) -> Result<Selection, String> {
        let non_empty = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        let (source, unit, value) = if let Some(value) = annotation {
            (format!("annotation {ANNOTATION}"), Unit::Device, value)
        } else if non_empty(&devices) || !non_empty(&cards) {
            (
                DEVICES_VAR.to_string(),
                Unit::Device,
                devices.unwrap_or_default(),
            )
        } else {
            (CARDS_VAR.to_string(), Unit::Card, cards.unwrap_or_default())
        };
        let visible = Visible::parse(&source, unit, &value)?;
        Ok(Selection {
            source,
            unit,
            visible,
        })
    }

    /// The devices selected among `devices` (in index order), each once, in
    /// the container's order.
    pub fn select<'a>(&self, devices: &'a [Device]) -> Result<Vec<&'a Device>, String> {
        let ids = match &self.visible {
            Visible::Nothing => return Ok(Vec::new()),
            Visible::All => return Ok(devices.iter().collect()),
            Visible::List(ids) => ids,
        };
        let mut selected: Vec<&Device> = Vec::new();
        for id in ids {
            for device in self.find(id, devices)? {
                if !selected.iter().any(|s| std::ptr::eq(*s, device)) {
                    selected.push(device);
                }
            }
        }
        Ok(selected)
    }

    fn find<'a>(&self, id: &Id, devices: &'a [Device]) -> Result<Vec<&'a Device>, String> {
        let found: Vec<&Device> = match (id, self.unit) {
            (Id::Index(index), Unit::Device) => devices.get(*index).into_iter().collect(),
            (Id::Index(index), Unit::Card) => cards(devices)
                .get(*index)
                .map(|card| card.iter().map(|&i| &devices[i]).collect())
                .unwrap_or_default(),
            (Id::Address(bdf), _) => devices
                .iter()
                .filter(|d| d.user == *bdf || d.mgmt.as_ref().is_some_and(|m| m.bdf == *bdf))
                .collect(),
            (Id::Serial(serial), _) => devices
                .iter()
                .filter(|d| {
                    d.serial
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(serial))
                })
                .collect(),
        };
        if !found.is_empty() {
            return Ok(found);
        }
        // Name what was asked for and list what this host has of that kind.
        let (what, known): (String, Vec<String>) = match (id, self.unit) {
            (Id::Index(index), Unit::Device) => (
                format!("no device with index {index}"),
                (0..devices.len()).map(|i| i.to_string()).collect(),
            ),
            (Id::Index(index), Unit::Card) => (
                format!("no card with index {index}"),
                (0..cards(devices).len()).map(|i| i.to_string()).collect(),
            ),
            (Id::Address(bdf), _) => (
                format!("no device at PCI address {bdf}"),
                devices.iter().map(|d| d.user.to_string()).collect(),
            ),
            (Id::Serial(serial), _) => {
                let mut serials: Vec<String> = Vec::new();
                for serial in devices.iter().filter_map(|d| d.serial.clone()) {
                    if !serials.contains(&serial) {
                        serials.push(serial);
                    }
                }
                (format!("no card with serial number {serial}"), serials)
            }
        };
        let host = match known.len() {
            0 => "this host has none".to_string(),
            n => format!("this host has {n}: {}", known.join(", ")),
        };
        Err(format!("{}: {what} ({host})", self.source))
    }
}

impl Visible {
    fn parse(source: &str, unit: Unit, value: &str) -> Result<Visible, String> {
        let value = value.trim();
        // Xilinx's runtime takes `all` in any case; so do the others here.
        match value.to_ascii_lowercase().as_str() {
            "" | "none" | "void" => return Ok(Visible::Nothing),
            "all" => return Ok(Visible::All),
            _ => {}
        }
        let ids = value
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| Id::parse(source, unit, id))
            .collect::<Result<_, _>>()?;
        Ok(Visible::List(ids))
    }
}

impl Id {
    fn parse(source: &str, unit: Unit, id: &str) -> Result<Id, String> {
        if id.chars().all(|c| c.is_ascii_digit()) {
            return id
                .parse()
                .map(Id::Index)
                .map_err(|_| format!("{source}: index `{id}` is too large"));
        }
        if unit == Unit::Card {
            return Err(format!(
                "{source}: `{id}` is not a card index (nor all, none or void)"
            ));
        }
        // Serial numbers are letters and digits: a colon means an address.
        if id.contains(':') {
            return Bdf::parse(id).map(Id::Address).ok_or_else(|| {
                format!("{source}: `{id}` is not a PCI address (DDDD:BB:DD.F or BB:DD.F)")
            });
        }
        Ok(Id::Serial(id.to_string()))
    }
}

/// The cards: the indices of the devices that share a serial number (a
/// device without one is a card of its own), in the order of their first
/// device, as Xilinx's container runtime groups them.
fn cards(devices: &[Device]) -> Vec<Vec<usize>> {
    let mut cards: Vec<Vec<usize>> = Vec::new();
    for (i, device) in devices.iter().enumerate() {
        let same_card = device.serial.as_ref().and_then(|serial| {
            cards
                .iter_mut()
                .find(|card| devices[card[0]].serial.as_ref() == Some(serial))
        });
        match same_card {
            Some(card) => card.push(i),
            None => cards.push(vec![i]),
        }
    }
    cards
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::Mgmt;

    /// A U250 and the two devices of a U30, as on the fixture host, but with
    /// the U30's second management function missing.
    fn devices() -> Vec<Device> {
        let device = |user: &str, mgmt: Option<&str>, serial: &str| Device {
            user: Bdf::parse(user).unwrap(),
            render: None,
            mgmt: mgmt.map(|m| Mgmt {
                bdf: Bdf::parse(m).unwrap(),
                node: String::new(),
            }),
            serial: Some(serial.into()),
            shell: None,
        };
        vec![
            device("0000:3b:00.1", Some("0000:3b:00.0"), "21330621T04E"),
            device("0000:88:00.1", Some("0000:88:00.0"), "XFL1YV0M20E0"),
            device("0000:8a:00.1", None, "XFL1YV0M20E0"),
        ]
    }

    fn env(devices: Option<&str>, cards: Option<&str>) -> Result<Selection, String> {
        Selection::choose(None, devices.map(Into::into), cards.map(Into::into))
    }

    /// The indices of the devices `selection` picks.
    fn picks(selection: Result<Selection, String>) -> Result<Vec<usize>, String> {
        let all = devices();
        let picked = selection?.select(&all)?;
        Ok(picked
            .iter()
            .map(|d| all.iter().position(|a| a == *d).unwrap())
            .collect())
    }

    #[test]
    fn special_values() {
        for nothing in [None, Some(""), Some(" "), Some("none"), Some("void")] {
            assert_eq!(env(nothing, None).unwrap().visible, Visible::Nothing);
        }
        assert_eq!(picks(env(Some("all"), None)), Ok(vec![0, 1, 2]));
        assert_eq!(picks(env(Some("ALL"), None)), Ok(vec![0, 1, 2]));
        assert_eq!(picks(env(None, Some("all"))), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn devices_by_index_address_and_serial_in_the_containers_order() {
        assert_eq!(picks(env(Some("2, 0,2,"), None)), Ok(vec![2, 0]));
        assert_eq!(picks(env(Some("0000:8a:00.1"), None)), Ok(vec![2]));
        // Either function names the device; the domain may be left out.
        assert_eq!(picks(env(Some("88:00.0"), None)), Ok(vec![1]));
        // A serial number is the whole card.
        assert_eq!(picks(env(Some("xfl1yv0m20e0"), None)), Ok(vec![1, 2]));
    }

    #[test]
    fn cards_group_devices_by_serial_number() {
        assert_eq!(cards(&devices()), vec![vec![0], vec![1, 2]]);
        assert_eq!(picks(env(None, Some("1"))), Ok(vec![1, 2]));
        assert_eq!(picks(env(Some(""), Some("1,0"))), Ok(vec![1, 2, 0]));
        // Devices without a serial number are cards of their own.
        let mut anonymous = devices();
        anonymous.iter_mut().for_each(|d| d.serial = None);
        assert_eq!(cards(&anonymous), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn the_annotation_wins_and_devices_win_over_cards() {
        let selection =
            Selection::choose(Some("1".into()), Some("all".into()), Some("0".into())).unwrap();
        assert_eq!(selection.source, format!("annotation {ANNOTATION}"));
        assert_eq!(picks(Ok(selection)), Ok(vec![1]));
        // An annotation that is present but empty gives nothing.
        let selection = Selection::choose(Some("".into()), Some("all".into()), None).unwrap();
        assert_eq!(selection.visible, Visible::Nothing);
        assert_eq!(picks(env(Some("0"), Some("1"))), Ok(vec![0]));
    }

    #[test]
    fn unknown_ids_are_errors_that_list_what_the_host_has() {
        assert_eq!(
            picks(env(Some("3"), None)),
            Err("XILINX_VISIBLE_DEVICES: no device with index 3 (this host has 3: 0, 1, 2)".into())
        );
        assert_eq!(
            picks(env(None, Some("2"))),
            Err("XILINX_VISIBLE_CARDS: no card with index 2 (this host has 2: 0, 1)".into())
        );
        assert_eq!(
            picks(env(Some("0000:d8:00.1"), None)),
            Err(
                "XILINX_VISIBLE_DEVICES: no device at PCI address 0000:d8:00.1 \
                 (this host has 3: 0000:3b:00.1, 0000:88:00.1, 0000:8a:00.1)"
                    .into()
            )
        );
        assert_eq!(
            picks(env(Some("XFL1ABCDEF"), None)),
            Err(
                "XILINX_VISIBLE_DEVICES: no card with serial number XFL1ABCDEF \
                 (this host has 2: 21330621T04E, XFL1YV0M20E0)"
                    .into()
            )
        );
        let none = env(Some("0"), None).unwrap().select(&[]);
        assert_eq!(
            none,
            Err("XILINX_VISIBLE_DEVICES: no device with index 0 (this host has none)".into())
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(
            env(Some("3b:00"), None),
            Err(
                "XILINX_VISIBLE_DEVICES: `3b:00` is not a PCI address (DDDD:BB:DD.F or BB:DD.F)"
                    .into()
            )
        );
        assert_eq!(
            env(None, Some("0,u30")),
            Err("XILINX_VISIBLE_CARDS: `u30` is not a card index (nor all, none or void)".into())
        );
        assert_eq!(
            env(Some("99999999999999999999999"), None),
            Err("XILINX_VISIBLE_DEVICES: index `99999999999999999999999` is too large".into())
        );
    }
}
