//! The container context: what hookhost knows of the container being started,
//! read from the OCI state and the bundle's `config.json`.
//!
//! Everything a plugin can ask through the WIT `container` interface is
//! answered from here, so it is read once, checked once, and then immutable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::fcntl::AT_FDCWD;

use oci_spec::runtime::{Capability, LinuxIdMapping, Spec, State};
use serde::{Deserialize, Serialize};

use crate::input::{self, Follow};

/// The most of an OCI state hookhost reads: real ones are a few KiB.
pub const STATE_LIMIT: u64 = 4 << 20;
/// The most of a `config.json` hookhost reads: real ones are tens of KiB.
pub const SPEC_LIMIT: u64 = 16 << 20;

/// How errors name the state a hook reads on stdin.
pub const STATE_ON_STDIN: &str = "the OCI state on stdin";

/// Where in the container's life the plan will be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    RuntimeShim,
    Cdi,
}

impl Stage {
    /// The stage as the command line and the WIT interface name it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "create-runtime",
            Stage::CreateContainer => "create-container",
            Stage::RuntimeShim => "runtime-shim",
            Stage::Cdi => "cdi",
        }
    }
}

/// One line of a user-namespace mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

impl From<&LinuxIdMapping> for IdMapping {
    fn from(m: &LinuxIdMapping) -> Self {
        IdMapping {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        }
    }
}

/// A mount of the spec, as far as a plugin sees it (WIT `spec-mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecMount {
    pub destination: String,
    pub source: Option<String>,
}

// The causes are part of the messages and deliberately not `source`s: the
// top level prints the whole chain, which would then say them twice.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read {what}: {error}")]
    Read { what: String, error: std::io::Error },
    #[error("{what} is not valid JSON for an OCI {kind}: {error}")]
    Parse {
        what: String,
        kind: &'static str,
        error: serde_json::Error,
    },
    #[error("{what}: field `{field}` {problem}")]
    Field {
        what: String,
        field: &'static str,
        problem: &'static str,
    },
    #[error("bundle {0} is not a directory")]
    NotABundle(PathBuf),
}

/// The container being started, as the plugins see it.
#[derive(Debug, Clone)]
pub struct ContainerContext {
    pub id: String,
    pub stage: Stage,
    pub bundle: PathBuf,
    /// The container's init process, when the runtime has created it.
    pub pid: Option<i32>,
    /// Absolute path of the rootfs (a relative `root.path` is taken from the bundle).
    pub rootfs: PathBuf,
    pub rootfs_readonly: bool,
    /// `process.env`, as `NAME=VALUE` strings in spec order.
    pub env: Vec<String>,
    pub args: Vec<String>,
    /// The spec's annotations, overlaid with those of the state.
    pub annotations: BTreeMap<String, String>,
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    /// The whole spec, for the back ends that edit or mirror it.
    pub spec: Spec,
}

/// The parts of the OCI state hookhost uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciState {
    pub id: String,
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    pub annotations: BTreeMap<String, String>,
}

impl OciState {
    /// Reads the state the runtime hands a hook: from `path`, or from stdin
    /// when `None`; at most [`STATE_LIMIT`] bytes of either. A file may be a
    /// pipe (`--state <(...)`): it is the user's own command line.
    pub fn read(path: Option<&Path>) -> Result<Self, ContextError> {
        let (what, bytes) = match path {
            Some(path) => {
                let what = path.display().to_string();
                let bytes = std::fs::File::open(path)
                    .and_then(|file| input::read_limited(file, STATE_LIMIT, 0))
                    .map_err(|error| read_error(&what, error))?;
                (what, bytes)
            }
            None => (STATE_ON_STDIN.to_string(), Self::read_stdin()?),
        };
        Self::parse(&what, &bytes)
    }

    /// The bytes of the state on stdin, at most [`STATE_LIMIT`].
    pub fn read_stdin() -> Result<Vec<u8>, ContextError> {
        input::read_limited(std::io::stdin().lock(), STATE_LIMIT, 0)
            .map_err(|error| read_error(STATE_ON_STDIN, error))
    }

    /// The state in `bytes`, read from `what` (named in errors).
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Self, ContextError> {
        let state: State = parse(what, "state", bytes)?;
        if state.id().is_empty() {
            return Err(field(what, "id", "is missing or empty"));
        }
        if state.bundle().as_os_str().is_empty() {
            return Err(field(what, "bundle", "is missing or empty"));
        }
        Ok(OciState {
            id: state.id().clone(),
            pid: *state.pid(),
            bundle: state.bundle().clone(),
            annotations: state
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }

    /// The state of a bundle no runtime has seen, as `hookhost test` uses:
    /// the id is the bundle's directory name and there is no pid.
    pub fn for_bundle(bundle: &Path) -> Self {
        let id = std::path::absolute(bundle)
            .ok()
            .and_then(|b| b.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "container".into());
        OciState {
            id,
            bundle: bundle.to_path_buf(),
            ..OciState::default()
        }
    }
}

impl ContainerContext {
    /// A context with nothing in it, for calls that need no container
    /// (`plugins check` validating settings, enumerating devices).
    pub fn empty() -> Self {
        // oci-spec's default spec has runc's default mounts: a context with
        // nothing in it has none.
        let mut spec = Spec::default();
        spec.set_mounts(None);
        ContainerContext {
            id: String::new(),
            stage: Stage::Prestart,
            bundle: PathBuf::new(),
            pid: None,
            rootfs: PathBuf::new(),
            rootfs_readonly: false,
            env: Vec::new(),
            args: Vec::new(),
            annotations: BTreeMap::new(),
            uid_mappings: Vec::new(),
            gid_mappings: Vec::new(),
            spec,
        }
    }

    /// Reads the spec of `bundle` (normally `state.bundle`) and builds the
    /// context of the container `state` describes.
    pub fn load(bundle: &Path, state: OciState, stage: Stage) -> Result<Self, ContextError> {
        let bundle = Self::bundle_dir(bundle)?;
        let bytes = Self::read_config(&bundle)?;
        Self::from_config(&bundle, &bytes, state, stage)
    }

    /// `bundle`, made absolute, checked to be a directory.
    pub fn bundle_dir(bundle: &Path) -> Result<PathBuf, ContextError> {
        let bundle = std::path::absolute(bundle)
            .map_err(|error| read_error(&bundle.display().to_string(), error))?;
        if !bundle.is_dir() {
            return Err(ContextError::NotABundle(bundle));
        }
        Ok(bundle)
    }

    /// The bytes of the bundle's config.json, at most [`SPEC_LIMIT`].
    pub fn read_config(bundle: &Path) -> Result<Vec<u8>, ContextError> {
        let config = bundle.join("config.json");
        // Not followed if a symlink, and only a regular file: a FIFO would
        // hang the hook, /dev/zero would fill its memory.
        input::read_regular(AT_FDCWD, &config, Follow::No, SPEC_LIMIT)
            .map_err(|error| read_error(&config.display().to_string(), error))
    }

    /// The context of the container `state` describes, whose config.json
    /// (in the absolute directory `bundle`) holds `bytes`.
    pub fn from_config(
        bundle: &Path,
        bytes: &[u8],
        state: OciState,
        stage: Stage,
    ) -> Result<Self, ContextError> {
        let what = bundle.join("config.json").display().to_string();
        let spec: Spec = parse(&what, "runtime spec", bytes)?;

        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| field(&what, "root", "is missing"))?;
        if root.path().as_os_str().is_empty() {
            return Err(field(&what, "root.path", "is empty"));
        }
        let rootfs = bundle.join(root.path());
        let process = spec.process().as_ref();
        let linux = spec.linux().as_ref();
        let mappings = |m: Option<&Vec<LinuxIdMapping>>| {
            m.map(|v| v.iter().map(IdMapping::from).collect())
                .unwrap_or_default()
        };

        let mut annotations: BTreeMap<String, String> = spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        annotations.extend(state.annotations);

        Ok(ContainerContext {
            id: state.id,
            stage,
            bundle: bundle.to_path_buf(),
            pid: state.pid,
            rootfs_readonly: root.readonly().unwrap_or(false),
            rootfs,
            env: process.and_then(|p| p.env().clone()).unwrap_or_default(),
            args: process.and_then(|p| p.args().clone()).unwrap_or_default(),
            annotations,
            uid_mappings: mappings(linux.and_then(|l| l.uid_mappings().as_ref())),
            gid_mappings: mappings(linux.and_then(|l| l.gid_mappings().as_ref())),
            spec,
        })
    }

    /// Whether the container is privileged as NVIDIA's toolkit judges it:
    /// `CAP_SYS_ADMIN` in the process's bounding set.
    pub fn privileged(&self) -> bool {
        let bounding = self
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref());
        bounding.is_some_and(|caps| caps.contains(&Capability::SysAdmin))
    }

    /// The spec's `mounts`, in spec order.
    pub fn mounts(&self) -> Vec<SpecMount> {
        let mounts = self.spec.mounts().as_deref().unwrap_or_default();
        mounts
            .iter()
            .map(|m| SpecMount {
                destination: m.destination().display().to_string(),
                source: m.source().as_ref().map(|s| s.display().to_string()),
            })
            .collect()
    }

    /// The value a process in the container would get from `getenv(name)`:
    /// the first entry wins, as with glibc.
    pub fn getenv(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|entry| match entry.split_once('=') {
                Some((key, value)) if key == name => Some(value),
                _ => None,
            })
    }

    /// oci-injector-hook's activation flag: `VAR` matches when VAR is set,
    /// `VAR=value` when it is set to exactly `value`. Nothing is a pattern.
    pub fn env_match(&self, flag: &str) -> bool {
        match flag.split_once('=') {
            Some((name, value)) => self.getenv(name) == Some(value),
            None => self.getenv(flag).is_some(),
        }
    }
}

fn read_error(what: &str, error: std::io::Error) -> ContextError {
    ContextError::Read {
        what: what.to_string(),
        error,
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    kind: &'static str,
    bytes: &[u8],
) -> Result<T, ContextError> {
    serde_json::from_slice(bytes).map_err(|error| ContextError::Parse {
        what: what.to_string(),
        kind,
        error,
    })
}

fn field(what: &str, field: &'static str, problem: &'static str) -> ContextError {
    ContextError::Field {
        what: what.to_string(),
        field,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(env: &[&str]) -> ContainerContext {
        ContainerContext {
            env: env.iter().map(|s| s.to_string()).collect(),
            ..ContainerContext::empty()
        }
    }

    #[test]
    fn env_flag_without_value_matches_any_value_even_empty() {
        let ctx = with_env(&["OCI_FOO=", "PATH=/bin"]);
        assert!(ctx.env_match("OCI_FOO"));
        assert!(ctx.env_match("PATH"));
        assert!(!ctx.env_match("OCI_BAR"));
    }

    #[test]
    fn env_flag_with_value_matches_exactly_and_literally() {
        let ctx = with_env(&["MODE=a.c", "X=1"]);
        assert!(ctx.env_match("MODE=a.c"));
        assert!(!ctx.env_match("MODE=abc"), "a dot is not a regex wildcard");
        assert!(!ctx.env_match("MODE=a"));
        assert!(!ctx.env_match("X=1 "));
    }

    #[test]
    fn a_read_error_says_the_system_error_once_in_the_whole_chain() {
        let err = OciState::read(Some(Path::new("/nonexistent/state.json"))).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(
            chain,
            "cannot read /nonexistent/state.json: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn mounts_are_the_specs_in_order_and_none_without_a_container() {
        let config = r#"{"root": {"path": "rootfs"}, "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/var/run/nvidia-container-devices/GPU-1", "source": "/dev/null",
             "options": ["bind", "ro"]},
            {"destination": "/dev/shm", "type": "tmpfs"}
        ]}"#;
        let ctx = ContainerContext::from_config(
            Path::new("/bundle"),
            config.as_bytes(),
            OciState::for_bundle(Path::new("/bundle")),
            Stage::Prestart,
        )
        .unwrap();
        let mount = |destination: &str, source: Option<&str>| SpecMount {
            destination: destination.into(),
            source: source.map(Into::into),
        };
        assert_eq!(
            ctx.mounts(),
            [
                mount("/proc", Some("proc")),
                mount("/var/run/nvidia-container-devices/GPU-1", Some("/dev/null")),
                mount("/dev/shm", None),
            ]
        );
        // plan-devices' context (the stage `cdi`, nothing else).
        let cdi = ContainerContext {
            stage: Stage::Cdi,
            ..ContainerContext::empty()
        };
        assert_eq!(cdi.mounts(), []);
    }

    #[test]
    fn getenv_takes_the_first_entry_like_glibc() {
        let ctx = with_env(&["A=1", "A=2"]);
        assert_eq!(ctx.getenv("A"), Some("1"));
        assert_eq!(ctx.getenv("B"), None);
    }
}
