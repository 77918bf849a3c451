//! The back ends: what carries a lowered plan (see [`crate::lowering`]) out.
//!
//! - [`hook`]: the OCI hook executor (prestart, createRuntime,
//!   createContainer), which changes a starting container's rootfs and
//!   device cgroup itself;
//! - [`shim`]: the runtime shim, which writes the plan into config.json
//!   (its [`shim::spec_edit`]) before the real runtime reads it;
//! - [`cdi`]: a CDI spec (env, device nodes, mounts, and a createContainer
//!   hook entry of hookhost's for the rest), which CDI-aware engines apply
//!   themselves, written and listed;
//! - [`dry_run`]: shows the plan and compares it with an expected one.
//!
//! What each can honour is stated once, in [`Capabilities`], and the request
//! gate ([`crate::requests`]) refuses the rest when the plugin asks.

pub mod cdi;
pub mod dry_run;
pub mod hook;
pub mod shim;

use crate::context::Stage;
use crate::hostfs::{HostError, HostFs};
use crate::lowering::{Lowered, Op};

/// A bind source that is no longer what the allow-list passed.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}`: bind {path}: {source}")]
pub struct BindSourceError {
    pub plugin: String,
    /// The container path of the bind.
    pub path: String,
    pub source: HostError,
}

/// For the back ends that hand a runtime bind sources by path (spec edits,
/// CDI): each must still resolve to itself, through directories only root
/// writes, when the back end writes it down (the hook opens its sources
/// instead, see `hook::sources`).
pub fn check_bind_sources(host: &HostFs, lowered: &Lowered) -> Result<(), BindSourceError> {
    for op in &lowered.ops {
        if let Op::Bind { host_path, .. } = &op.what {
            host.find_planned(host_path)
                .map_err(|source| BindSourceError {
                    plugin: op.plugin.clone(),
                    path: op.what.path().to_string(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// What a back end can carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// How messages name it: "a prestart hook".
    pub name: &'static str,
    /// Set the container's environment (only before the container exists).
    pub env: bool,
    /// Allow devices on a cgroup v1 host (`devices.allow`).
    pub devices_v1: bool,
    /// Allow devices on a cgroup v2 host (the spec's rules, or a BPF program).
    pub devices_v2: bool,
    /// Copy host files into the rootfs.
    pub copies: bool,
    /// Make symlinks in the rootfs.
    pub symlinks: bool,
    /// Refresh the linker cache.
    pub ldconfig: bool,
    /// Read the container's image (a CDI spec is made for none).
    pub image: bool,
}

impl Capabilities {
    /// What the back end that serves `stage` can do.
    pub fn of(stage: Stage) -> Self {
        // A hook runs once the process's environment is fixed. On cgroup v2
        // it replaces runc's BPF device program with one built from the
        // spec's rules and the plan's (hook::devices_bpf).
        let hook = |name| Capabilities {
            name,
            env: false,
            devices_v1: true,
            devices_v2: true,
            copies: true,
            symlinks: true,
            ldconfig: true,
            image: true,
        };
        match stage {
            Stage::Prestart => hook("a prestart hook"),
            Stage::CreateRuntime => hook("a createRuntime hook"),
            Stage::CreateContainer => hook("a createContainer hook"),
            // Spec edits: env, devices and binds in config.json; the rest
            // through a hook entry of hookhost's.
            Stage::RuntimeShim => Capabilities {
                name: "the runtime shim",
                env: true,
                devices_v1: true,
                devices_v2: true,
                copies: true,
                symlinks: true,
                ldconfig: true,
                image: true,
            },
            // CDI has env, device nodes, mounts and hooks, but no way to
            // write a file into the rootfs.
            Stage::Cdi => Capabilities {
                name: "a CDI spec",
                env: true,
                devices_v1: true,
                devices_v2: true,
                copies: false,
                symlinks: true,
                ldconfig: true,
                image: false,
            },
        }
    }

    /// Whether devices can be allowed on some cgroup version; which one the
    /// host has is the back end's to check when it runs.
    pub fn devices(&self) -> bool {
        self.devices_v1 || self.devices_v2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_back_ends_that_write_the_spec_can_set_env() {
        for stage in [
            Stage::Prestart,
            Stage::CreateRuntime,
            Stage::CreateContainer,
        ] {
            assert!(!Capabilities::of(stage).env, "{stage:?}");
            assert!(Capabilities::of(stage).copies, "{stage:?}");
        }
        assert!(Capabilities::of(Stage::RuntimeShim).env);
        assert!(Capabilities::of(Stage::Cdi).env);
        assert!(!Capabilities::of(Stage::Cdi).copies);
    }
}
