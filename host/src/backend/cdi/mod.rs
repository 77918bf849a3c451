//! The CDI back end: lowered plans translated into a Container Device
//! Interface spec ([`spec`]), checked with the reference crate's own parser
//! and validation, written atomically ([`write`]), and the specs already
//! installed listed by device ([`list`]).
//!
//! A CDI spec has env, device nodes, mounts and hooks, but nothing that
//! writes a file into the rootfs: directories, symlinks and ldconfig go to a
//! createContainer hook entry of hookhost's (`hookhost cdi-hook`), and
//! copies are refused (see [`super::Capabilities`]).

pub mod generate;
pub mod hook;
pub mod list;
pub mod offer;
pub mod spec;
pub mod write;

use std::io;
use std::path::{Path, PathBuf};

use container_device_interface::spec::new_spec;
use container_device_interface::specs::config;

pub use list::{list, Listed, DEFAULT_DIRS};
pub use spec::{build, version, HookCommand, Spec, HOOK_ENV};
pub use write::{remove, write};

/// Why a CDI spec cannot be built, written or read.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// An operation a CDI spec cannot express.
    #[error(
        "plugin `{plugin}`: {action} {path}: a CDI spec cannot write a file into the container"
    )]
    Unsupported {
        plugin: String,
        action: &'static str,
        path: String,
    },
    /// A device node whose cgroup rule is missing from the lowering: the
    /// runtime would grant "rwm" for an absent `permissions`.
    #[error("plugin `{plugin}`: mknod {path}: no device cgroup rule for {device}")]
    NoRule {
        plugin: String,
        path: String,
        device: String,
    },
    /// CDI refuses a spec without devices.
    #[error("{kind}: a CDI spec needs at least one device")]
    NoDevices { kind: String },
    /// CDI refuses a device whose containerEdits are empty.
    #[error("{kind}={name}: a CDI device needs at least one edit")]
    EmptyDevice { kind: String, name: String },
    /// The CDI crate's parser or validation refused the spec.
    #[error("{kind}: invalid CDI spec: {reason}")]
    Invalid { kind: String, reason: String },
    /// A spec file name that is not a plain name in its directory.
    #[error("`{0}` is not a CDI spec file name (a plain name, no `/`)")]
    FileName(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// An installed spec that does not parse or validate.
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
}

/// How a spec file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The file's extension, which is also how runtimes pick the parser.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

/// `spec` serialized as `format`, once that very text has been parsed back
/// and passed the CDI crate's validation (its JSON schema, the declared
/// version against the fields used, names, per-device edits).
pub fn validate(spec: &Spec, format: Format) -> Result<Vec<u8>, CdiError> {
    let invalid = |reason: String| CdiError::Invalid {
        kind: spec.kind().to_string(),
        reason,
    };
    let bytes = match format {
        Format::Json => serde_json::to_vec_pretty(spec.document())
            .map(|mut b| {
                b.push(b'\n');
                b
            })
            .map_err(|e| invalid(e.to_string()))?,
        Format::Yaml => serde_yaml::to_string(spec.document())
            .map(String::into_bytes)
            .map_err(|e| invalid(e.to_string()))?,
    };
    let name = format!("spec.{}", format.extension());
    check(&bytes, Path::new(&name)).map_err(invalid)?;
    Ok(bytes)
}

/// Parses `bytes` as the spec file `path` (by its extension) and validates
/// it with the CDI crate: the fully-qualified names of its devices, or the
/// crate's reason.
fn check(bytes: &[u8], path: &Path) -> Result<Vec<String>, String> {
    let json = path.extension().is_some_and(|e| e == "json");
    let raw: config::Spec = if json {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?
    } else {
        serde_yaml::from_slice(bytes).map_err(|e| e.to_string())?
    };
    let parsed = new_spec(&raw, &path.to_path_buf(), 0).map_err(|e| format!("{e:#}"))?;
    Ok(parsed
        .devices
        .values()
        .map(|d| d.get_qualified_name())
        .collect())
}
