//! The loaded driver, as the kernel module describes it under
//! `/proc/driver/nvidia`.

use hookhost_plugin::{host, Error};

pub const VERSION_FILE: &str = "/proc/driver/nvidia/version";
pub const GPU_INFORMATION: &str = "/proc/driver/nvidia/gpus/*/information";

/// Enough for the few lines of the `/proc` files.
const PROC_LIMIT: u32 = 64 * 1024;

/// One GPU of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// The PCI bus id, e.g. `0000:3b:00.0`.
    pub bus_id: String,
    pub uuid: String,
    /// `/dev/nvidia<minor>` is its node.
    pub minor: u32,
}

/// The kernel module's version and its GPUs, in PCI bus order: a GPU's
/// position is its index, as `nvidia-smi` counts.
#[derive(Debug)]
pub struct Driver {
    pub version: String,
    pub gpus: Vec<Gpu>,
}

impl Driver {
    /// The loaded driver, or `None` when the kernel module is not loaded.
    pub fn probe() -> Result<Option<Driver>, String> {
        let text = match host::read_to_string(VERSION_FILE, PROC_LIMIT) {
            Ok(text) => text,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let version = parse_version(&text)
            .ok_or_else(|| format!("{VERSION_FILE}: no driver version in {:?}", text.trim()))?;
        // The directory names are bus ids of one width: the sorted glob is
        // bus order.
        let gpus = host::glob(GPU_INFORMATION)?
            .iter()
            .map(|path| {
                let text = host::read_to_string(path, PROC_LIMIT)?;
                let bus_id = path.rsplit('/').nth(1).unwrap_or_default();
                parse_information(bus_id, &text).map_err(|e| format!("{path}: {e}"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Some(Driver {
            version: version.to_string(),
            gpus,
        }))
    }
}

/// The version in `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  …`
/// (or `… Open Kernel Module for x86_64  550.54.14  …`): the first word of
/// dotted digits.
fn parse_version(text: &str) -> Option<&str> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// A GPU's `information` file: `Key: value` lines, of which `GPU UUID` and
/// `Device Minor` matter here.
fn parse_information(bus_id: &str, text: &str) -> Result<Gpu, String> {
    let field = |key: &str| {
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, value)| value.trim())
            .ok_or_else(|| format!("no `{key}` line"))
    };
    let minor = field("Device Minor")?;
    Ok(Gpu {
        bus_id: bus_id.to_string(),
        uuid: field("GPU UUID")?.to_string(),
        minor: minor
            .parse()
            .map_err(|_| format!("`Device Minor: {minor}` is not a number"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version(
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  \
                 Thu Feb 22 01:44:30 UTC 2024\nGCC version:  gcc version 12.2.0\n"
            ),
            Some("550.54.14")
        );
        assert_eq!(
            parse_version(
                "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05  \
                 Release Build  (dvs-builder@U16-I3-B03-4-3)  Sat Aug 19 01:13:54 UTC 2023\n"
            ),
            Some("535.104.05")
        );
        assert_eq!(parse_version("GCC version: 12.2.0\n"), None);
    }

    #[test]
    fn information() {
        let text = "Model: \t\t NVIDIA A100-PCIE-40GB\nIRQ:   \t\t 142\n\
                    GPU UUID: \t GPU-6f8c9d2e-0b7a-4c1e-9f3d-2a5b8c7e1d40\n\
                    Bus Location: \t 0000:3b:00.0\nDevice Minor: \t 1\n";
        assert_eq!(
            parse_information("0000:3b:00.0", text),
            Ok(Gpu {
                bus_id: "0000:3b:00.0".into(),
                uuid: "GPU-6f8c9d2e-0b7a-4c1e-9f3d-2a5b8c7e1d40".into(),
                minor: 1,
            })
        );
        assert_eq!(
            parse_information("x", "Model: A100\nGPU UUID: GPU-1\n"),
            Err("no `Device Minor` line".into())
        );
        assert_eq!(
            parse_information("x", "GPU UUID: GPU-1\nDevice Minor: one\n"),
            Err("`Device Minor: one` is not a number".into())
        );
    }
}
