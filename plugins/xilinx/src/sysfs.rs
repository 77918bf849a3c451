//! The Xilinx devices of this host, as XRT's kernel drivers show them in
//! sysfs.
//!
//! An Alveo device has two PCIe physical functions: the management function,
//! bound to `xclmgmt` (node `/dev/xclmgmt<instance>`), and the user function,
//! bound to `xocl` (a DRM driver: node `/dev/dri/renderD<N>`). Both drivers
//! list the functions they are bound to as links under
//! `/sys/bus/pci/drivers/<driver>/<PCI address>`, which is what XRT's own
//! tools scan. The two functions of one device share the domain, bus and
//! device numbers of their address and differ in the function number (which
//! one is which changed in XRT 2018.3: only the driver tells them apart).

use std::fmt;

use hookhost_plugin::{host, log, Error};

/// The user functions' driver: loaded means the directory exists.
pub const XOCL: &str = "/sys/bus/pci/drivers/xocl";
/// The management functions' driver.
pub const XCLMGMT: &str = "/sys/bus/pci/drivers/xclmgmt";
/// The links a PCI driver has to its devices: `DDDD:BB:DD.F`. The pattern
/// also keeps `bind`, `new_id`, `module` and the like out.
pub const PCI_ADDRESS: &str = "????:??:??.?";
/// Under a user function: its DRM render node's sysfs directory.
pub const RENDER: &str = "drm/renderD*";
/// Under a user function: the board's serial number, from the XMC
/// (the board controller); shared by the devices of a multi-device card.
pub const SERIAL: &str = "xmc.u.*/serial_num";
/// Under a user function: the shell (platform) name, from the feature ROM.
pub const SHELL: &str = "rom.u.*/VBNV";
/// Under a management function: the number of its `/dev/xclmgmt` node.
pub const INSTANCE: &str = "instance";
/// Where the nodes the policy asks for are: `/dev/dri/renderD<N>` with the
/// name of the sysfs directory, `/dev/xclmgmt<instance>`.
pub const DRI: &str = "/dev/dri";
pub const MGMT_PREFIX: &str = "/dev/xclmgmt";

/// Enough for any one-line sysfs attribute.
const ATTRIBUTE_LIMIT: u32 = 4096;

/// A PCI address, `DDDD:BB:DD.F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    /// `DDDD:BB:DD.F`, or `BB:DD.F` in domain 0 (as `lspci` and `xbutil`
    /// print them), in either case.
    pub fn parse(text: &str) -> Option<Bdf> {
        let (rest, function) = text.rsplit_once('.')?;
        let mut parts: Vec<&str> = rest.split(':').collect();
        if parts.len() == 2 {
            parts.insert(0, "0000");
        }
        let [domain, bus, device] = parts[..] else {
            return None;
        };
        let hex = |s: &str, width: usize| {
            (s.len() == width && s.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(s, 16).ok())
                .flatten()
        };
        let device = hex(device, 2)?;
        let function = hex(function, 1)?;
        // A device number has 5 bits, a function number 3.
        if device > 0x1f || function > 7 {
            return None;
        }
        Some(Bdf {
            domain: hex(domain, 4)?,
            bus: hex(bus, 2)? as u8,
            device: device as u8,
            function: function as u8,
        })
    }

    /// The functions of one PCIe device share this.
    fn slot(self) -> (u16, u8, u8) {
        (self.domain, self.bus, self.device)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// One Xilinx device (an FPGA with its management and user functions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The user function, bound to xocl: what identifies the device.
    pub user: Bdf,
    /// `/dev/dri/renderD<N>`; none while xocl has not registered it yet.
    pub render: Option<String>,
    /// The management function, absent where it is not on this host (a
    /// virtual machine is usually given the user function only).
    pub mgmt: Option<Mgmt>,
    pub serial: Option<String>,
    /// The shell, e.g. `xilinx_u250_gen3x16_base_4`, for the logs.
    pub shell: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mgmt {
    pub bdf: Bdf,
    /// `/dev/xclmgmt<instance>`.
    pub node: String,
}

/// The Xilinx devices in PCI address order (a device's position is its
/// index, as Xilinx's container runtime counts), or `None` when the xocl
/// driver is not loaded.
pub fn probe() -> Result<Option<Vec<Device>>, String> {
    if host::glob(XOCL)?.is_empty() {
        return Ok(None);
    }
    let mut mgmts = Vec::new();
    for path in host::glob(&format!("{XCLMGMT}/{PCI_ADDRESS}/{INSTANCE}"))? {
        let Some(bdf) = address_in(&path, XCLMGMT) else {
            continue;
        };
        let instance =
            parse_instance(&read_attribute(&path)?).map_err(|e| format!("{path}: {e}"))?;
        mgmts.push(Mgmt {
            bdf,
            node: format!("{MGMT_PREFIX}{instance}"),
        });
    }
    let mut devices = Vec::new();
    for path in host::glob(&format!("{XOCL}/{PCI_ADDRESS}"))? {
        let Some(user) = address_in(&path, XOCL) else {
            continue;
        };
        let render = host::glob(&format!("{path}/{RENDER}"))?;
        if render.len() > 1 {
            log::warn!("{path} has several render nodes; using the first");
        }
        devices.push(Device {
            user,
            render: render
                .first()
                .and_then(|p| p.rsplit('/').next())
                .map(|name| format!("{DRI}/{name}")),
            mgmt: None,
            serial: first_attribute(&format!("{path}/{SERIAL}"))?,
            shell: first_attribute(&format!("{path}/{SHELL}"))?,
        });
    }
    for mgmt in pair(&mut devices, mgmts) {
        log::debug!(
            "management function {} has no user function bound to xocl",
            mgmt.bdf
        );
    }
    Ok(Some(devices))
}

/// Gives each device the management function in its PCIe slot, and sorts
/// the devices by address. Returns the management functions left over.
fn pair(devices: &mut [Device], mgmts: Vec<Mgmt>) -> Vec<Mgmt> {
    devices.sort_by_key(|d| d.user);
    let mut unpaired = Vec::new();
    for mgmt in mgmts {
        match devices
            .iter_mut()
            .find(|d| d.user.slot() == mgmt.bdf.slot())
        {
            Some(device) => device.mgmt = Some(mgmt),
            None => unpaired.push(mgmt),
        }
    }
    unpaired
}

/// The PCI address that names `path`'s first component below `driver`.
fn address_in(path: &str, driver: &str) -> Option<Bdf> {
    let rest = path.strip_prefix(driver)?.strip_prefix('/')?;
    Bdf::parse(rest.split('/').next()?)
}

/// A management function's `instance`: a decimal number.
fn parse_instance(text: &str) -> Result<u32, String> {
    let text = text.trim();
    text.parse()
        .map_err(|_| format!("`{text}` is not an instance number"))
}

fn read_attribute(path: &str) -> Result<String, Error> {
    host::read_to_string(path, ATTRIBUTE_LIMIT)
}

/// The trimmed content of the first file matching `pattern`, if any and not
/// empty. (A device that cannot say is still a device.)
fn first_attribute(pattern: &str) -> Result<Option<String>, String> {
    let Some(path) = host::glob(pattern)?.into_iter().next() else {
        return Ok(None);
    };
    let text = read_attribute(&path)?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf(text: &str) -> Bdf {
        Bdf::parse(text).unwrap()
    }

    #[test]
    fn pci_addresses() {
        assert_eq!(
            bdf("0000:3b:00.1"),
            Bdf {
                domain: 0,
                bus: 0x3b,
                device: 0,
                function: 1
            }
        );
        assert_eq!(bdf("3B:00.1"), bdf("0000:3b:00.1"));
        assert_eq!(bdf("0001:d8:1f.7").to_string(), "0001:d8:1f.7");
        for bad in [
            "",
            "3b:00",
            "0000:3b:00:1",
            "3b:20.0",
            "3b:00.8",
            "x:00.0",
            "3b:0.0",
        ] {
            assert_eq!(Bdf::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn addresses_in_driver_links() {
        assert_eq!(
            address_in("/sys/bus/pci/drivers/xocl/0000:3b:00.1", XOCL),
            Some(bdf("0000:3b:00.1"))
        );
        assert_eq!(
            address_in(
                "/sys/bus/pci/drivers/xclmgmt/0000:3b:00.0/instance",
                XCLMGMT
            ),
            Some(bdf("0000:3b:00.0"))
        );
        assert_eq!(address_in("/sys/bus/pci/drivers/xocl/bind", XOCL), None);
    }

    #[test]
    fn instances() {
        assert_eq!(parse_instance("15104\n"), Ok(15104));
        assert_eq!(
            parse_instance("0x3b00\n"),
            Err("`0x3b00` is not an instance number".into())
        );
    }

    fn device(user: &str) -> Device {
        Device {
            user: bdf(user),
            render: None,
            mgmt: None,
            serial: None,
            shell: None,
        }
    }

    #[test]
    fn functions_pair_by_slot_whatever_their_numbers() {
        let mut devices = vec![device("0000:d8:00.1"), device("0000:3b:00.0")];
        let mgmt = |b: &str, n: &str| Mgmt {
            bdf: bdf(b),
            node: n.into(),
        };
        let unpaired = pair(
            &mut devices,
            vec![
                // Before XRT 2018.3 the management function was function 1.
                mgmt("0000:3b:00.1", "/dev/xclmgmt15105"),
                // A management function whose user function is not bound.
                mgmt("0000:86:00.0", "/dev/xclmgmt34304"),
            ],
        );
        assert_eq!(unpaired, [mgmt("0000:86:00.0", "/dev/xclmgmt34304")]);
        assert_eq!(devices[0].user, bdf("0000:3b:00.0"));
        assert_eq!(
            devices[0].mgmt.as_ref().map(|m| m.node.as_str()),
            Some("/dev/xclmgmt15105")
        );
        // Only the user function: a device passed through to a VM.
        assert_eq!(devices[1].user, bdf("0000:d8:00.1"));
        assert_eq!(devices[1].mgmt, None);
    }
}
