//! IMEX channels: the nodes `/dev/nvidia-caps-imex-channels/channel<N>`
//! that let a container's GPUs share memory with other nodes' through the
//! IMEX daemon, named by `NVIDIA_IMEX_CHANNELS` (or, when mounts may name
//! devices, by `/dev/null` mounted on `…/nvidia-container-devices/imex/<N>`).
//!
//! Each channel's node is a character device whose major is the
//! `nvidia-caps-imex-channels` line of `/proc/devices` and whose minor is
//! the channel's number. As in NVIDIA's toolkit, only a container that gets
//! GPUs gets channels.

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::Device;
use hookhost_plugin::{log, Error};

use crate::kubernetes::Mounted;
use crate::mig;

pub const CHANNELS: &str = "NVIDIA_IMEX_CHANNELS";
/// The driver's name for the channels' major in `/proc/devices`.
pub const MAJOR_NAME: &str = "nvidia-caps-imex-channels";
pub const DIR: &str = "/dev/nvidia-caps-imex-channels";

/// `/proc/devices` is short.
const PROC_LIMIT: u32 = 64 * 1024;

/// The channels a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    /// Unset, empty, `void` or `none`.
    Nothing,
    /// `all`: every channel whose node the host has.
    All,
    /// These channel numbers, each once, in the order given.
    List(Vec<u32>),
}

impl Channels {
    /// `NVIDIA_IMEX_CHANNELS`: a comma list of channel numbers, or `all`;
    /// `void` or `none` anywhere, or nothing, ask for no channel (the
    /// special values match in any case, as `NVIDIA_VISIBLE_DEVICES`'
    /// do). Anything else is an error naming the variable and the value.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(Channels::Nothing);
        };
        let entries: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let is = |word: &str| entries.iter().any(|e| e.eq_ignore_ascii_case(word));
        if entries.is_empty() || is("void") || is("none") {
            return Ok(Channels::Nothing);
        }
        if is("all") {
            return Ok(Channels::All);
        }
        let mut channels = Vec::new();
        for entry in entries {
            let channel = parse_number(entry).ok_or_else(|| {
                format!(
                    "{CHANNELS}={value}: `{entry}` is not an IMEX channel number, `all`, \
                     `none` or `void`"
                )
            })?;
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        Ok(Channels::List(channels))
    }

    /// The channels that `imex/<N>` mounts name, or an error naming the
    /// mount whose `<N>` is no channel number.
    pub fn from_mounts(mounted: &[Mounted]) -> Result<Self, String> {
        let mut channels = Vec::new();
        for mount in mounted {
            let channel = parse_number(&mount.id).ok_or_else(|| {
                format!(
                    "mount {}: `{}` is not an IMEX channel number",
                    mount.destination, mount.id
                )
            })?;
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        Ok(if channels.is_empty() {
            Channels::Nothing
        } else {
            Channels::List(channels)
        })
    }

    /// Asks for the channels' nodes, each checked to be the character
    /// device `<major>:<channel>`. A listed channel the host lacks is an
    /// error naming it; `all` gives those the host has, none if its driver
    /// has no channels.
    pub fn request(&self, source: &str) -> Result<(), String> {
        let wanted = match self {
            Channels::Nothing => return Ok(()),
            Channels::All => {
                let present = present()?;
                if present.is_empty() {
                    log::info!("{source} asks for all IMEX channels: this host has none");
                    return Ok(());
                }
                present
            }
            Channels::List(list) => list.clone(),
        };
        let major = major().map_err(|e| format!("{source}: {e}"))?;
        for channel in wanted {
            let path = node(channel);
            let stat = match host::stat(&path) {
                Ok(stat) => stat,
                Err(Error::NotFound(_)) => {
                    return Err(format!(
                        "{source}: this host has no IMEX channel {channel} (no {path})"
                    ))
                }
                Err(e) => return Err(e.to_string()),
            };
            if stat.kind != FileKind::CharDevice || (stat.major, stat.minor) != (major, channel) {
                return Err(format!(
                    "{path} is not the character device {major}:{channel} ({MAJOR_NAME} in \
                     {})",
                    mig::PROC_DEVICES
                ));
            }
            log::debug!("IMEX channel {channel} at {path}");
            Device::new(&path).request()?;
        }
        Ok(())
    }
}

/// The node of channel `channel`.
pub fn node(channel: u32) -> String {
    format!("{DIR}/channel{channel}")
}

/// The channels whose node the host has, in number order.
fn present() -> Result<Vec<u32>, String> {
    let mut channels: Vec<u32> = host::glob(&format!("{DIR}/channel[0-9]*"))?
        .iter()
        .filter_map(|path| path.strip_prefix(&format!("{DIR}/channel")))
        .filter_map(parse_number)
        .collect();
    channels.sort_unstable();
    channels.dedup();
    Ok(channels)
}

/// The channels' major, from `/proc/devices`.
fn major() -> Result<u32, String> {
    let proc_devices = mig::PROC_DEVICES;
    let text = host::read_to_string(proc_devices, PROC_LIMIT)
        .map_err(|e| format!("{proc_devices}: {e}"))?;
    mig::parse_major(&text, MAJOR_NAME).ok_or_else(|| {
        format!(
            "{proc_devices} has no character device {MAJOR_NAME}: this host's driver offers \
             no IMEX channels"
        )
    })
}

/// A channel number: decimal digits only (no sign, no space).
fn parse_number(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_is_numbers_all_or_nothing() {
        let parse = |v: &str| Channels::parse(Some(v));
        assert_eq!(Channels::parse(None), Ok(Channels::Nothing));
        for nothing in ["", " , ", "void", "none", "0,NONE", "Void,all"] {
            assert_eq!(parse(nothing), Ok(Channels::Nothing), "{nothing}");
        }
        assert_eq!(parse("all"), Ok(Channels::All));
        assert_eq!(parse("0, ALL"), Ok(Channels::All));
        assert_eq!(parse("3, 0,3"), Ok(Channels::List(vec![3, 0])));
        for wrong in ["-1", "+1", "0x1", "channel0", "1.0", "99999999999"] {
            assert_eq!(
                parse(&format!("0,{wrong}")),
                Err(format!(
                    "NVIDIA_IMEX_CHANNELS=0,{wrong}: `{wrong}` is not an IMEX channel number, \
                     `all`, `none` or `void`"
                )),
                "{wrong}"
            );
        }
    }

    #[test]
    fn mounts_name_channels_by_number() {
        let mount = |id: &str| Mounted {
            id: id.into(),
            destination: format!("/var/run/nvidia-container-devices/imex/{id}"),
        };
        assert_eq!(Channels::from_mounts(&[]), Ok(Channels::Nothing));
        assert_eq!(
            Channels::from_mounts(&[mount("2"), mount("0"), mount("2")]),
            Ok(Channels::List(vec![2, 0]))
        );
        assert_eq!(
            Channels::from_mounts(&[mount("x")]),
            Err(
                "mount /var/run/nvidia-container-devices/imex/x: `x` is not an IMEX channel \
                 number"
                    .into()
            )
        );
    }
}
