//! `cdi generate` for one plugin: its devices planned ([`offer`]), built
//! into a spec, validated and written; or, when it offers no device on this
//! host, the spec written for it before removed.

use std::path::{Path, PathBuf};

use super::offer::{self, OfferError};
use super::{build, remove, write, CdiError, Format, HookCommand};
use crate::config::PluginConfig;
use crate::runtime::{Failure, LogLine, PluginError, Runtime};

/// Where a plugin's spec goes: `dir/<file_stem>.<format>`.
pub struct Target<'a> {
    pub dir: &'a Path,
    pub file_stem: String,
    pub format: Format,
}

/// What became of a plugin's spec.
#[derive(Debug)]
pub enum Generated {
    Written {
        path: PathBuf,
        kind: String,
        version: String,
        devices: usize,
    },
    /// No device on this host: the spec files of before that were removed.
    NoDevices { removed: Vec<PathBuf> },
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error(transparent)]
    Cdi(#[from] CdiError),
}

impl GenerateError {
    /// A plugin of a world before 0.2, which cannot plan named devices.
    pub fn plans_no_devices(&self) -> bool {
        matches!(
            self,
            GenerateError::Offer(OfferError::Plugin(PluginError {
                failure: Failure::PlansNoDevices { .. },
                ..
            }))
        )
    }
}

/// The spec of `plugin`, of kind `kind`, at `target`; and what the plugin
/// logged while planning.
pub fn generate(
    runtime: &Runtime,
    plugin: &PluginConfig,
    kind: &str,
    hook: &HookCommand,
    target: &Target,
) -> (Vec<LogLine>, Result<Generated, GenerateError>) {
    let offer = match offer::plan(runtime, plugin) {
        Ok(offer) => offer,
        Err(e) => return (Vec::new(), Err(e.into())),
    };
    let result = (|| {
        if offer.devices.is_empty() {
            // A spec of hookhost's own from before would offer devices the
            // host no longer has.
            let removed = remove(target.dir, &target.file_stem)?;
            return Ok(Generated::NoDevices { removed });
        }
        let host_root = runtime.host().root();
        let spec = build(kind, &offer.common, &offer.devices, hook, host_root)?;
        let path = write(target.dir, &target.file_stem, &spec, target.format)?;
        Ok(Generated::Written {
            path,
            kind: spec.kind().to_string(),
            version: spec.version().to_string(),
            devices: offer.devices.len(),
        })
    })();
    (offer.logs, result)
}
