//! The plan, lowered: the ordered, typed operations that carry it out,
//! each attributed to its plugin. Pure: no file descriptors, no system
//! calls. Every back end consumes the same lowering: the hook executes it,
//! the spec-edit and CDI back ends translate it into config.json and CDI
//! edits, the dry run prints it.
//!
//! The order is the one a container needs: directories, then device nodes,
//! then files (binds and copies), then symlinks (their targets exist by
//! then), then the ld.so.conf.d drop-in and ldconfig, once, last. Device
//! rules (the cgroup's side of the device nodes) are a list of their own:
//! the hook writes them before it touches the rootfs, a spec edit puts them
//! in `linux.resources.devices`.

use std::fmt;

use crate::context::IdMapping;
use crate::plan::{DeviceType, Plan, Transfer};

/// The drop-in listing the injected library directories, so that later
/// ldconfig runs in the container (a package install) keep them.
pub const LDCONFIG_DROP_IN: &str = "/etc/ld.so.conf.d/000-hookhost.conf";

/// Where the linker cache is (what the ldconfig step is reported as).
pub const LDCONFIG_CACHE: &str = "/etc/ld.so.cache";

/// A plan, lowered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lowered {
    /// The device cgroup's rules, one per device node.
    pub rules: Vec<Attributed<DeviceRule>>,
    /// The rootfs's operations, in the order they must run.
    pub ops: Vec<Attributed<Op>>,
    /// Environment variables for the container's process (only back ends
    /// that write the spec can honour them; the request gate refuses them
    /// elsewhere).
    pub env: Vec<Attributed<(String, String)>>,
}

/// Something done on behalf of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributed<T> {
    /// The plugin that asked (several, comma-separated, for ldconfig).
    pub plugin: String,
    pub what: T,
}

/// One device cgroup rule: `c 195:0 rwm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceType,
    pub major: u32,
    pub minor: u32,
    /// A subset of "rwm".
    pub access: String,
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} {}",
            self.kind.letter(),
            self.major,
            self.minor,
            self.access
        )
    }
}

/// One change to the container's rootfs. Paths are the container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Directory {
        path: String,
        mode: u32,
    },
    /// A device node, owned by host ids (mapped through the container's
    /// user namespace).
    DeviceNode {
        path: String,
        kind: DeviceType,
        major: u32,
        minor: u32,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A read-only bind of a host file or directory.
    Bind {
        host_path: String,
        path: String,
        directory: bool,
    },
    /// A copy of a host regular file.
    Copy {
        host_path: String,
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A file of hookhost's own (the ld.so.conf.d drop-in).
    Write {
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
    /// The host's ldconfig over the rootfs, for these directories.
    Ldconfig {
        dirs: Vec<String>,
    },
}

impl Op {
    /// The audit log's and error messages' name for it.
    pub fn action(&self) -> &'static str {
        match self {
            Op::Directory { .. } => "mkdir",
            Op::DeviceNode { .. } => "mknod",
            Op::Bind { .. } => "bind",
            Op::Copy { .. } => "copy",
            Op::Symlink { .. } => "symlink",
            Op::Write { .. } => "write",
            Op::Ldconfig { .. } => "ldconfig",
        }
    }

    /// The container path it changes.
    pub fn path(&self) -> &str {
        match self {
            Op::Directory { path, .. }
            | Op::DeviceNode { path, .. }
            | Op::Bind { path, .. }
            | Op::Copy { path, .. }
            | Op::Symlink { path, .. }
            | Op::Write { path, .. } => path,
            Op::Ldconfig { .. } => LDCONFIG_CACHE,
        }
    }
}

/// A plan that cannot be lowered for this container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "plugin `{plugin}`: mknod {path}: {what} {id} is not mapped in the container's user namespace"
)]
pub struct Unmapped {
    pub plugin: String,
    pub path: String,
    pub what: &'static str,
    pub id: u32,
}

/// Lowers `plan` for a container with these user-namespace mappings (none:
/// ids are the host's).
pub fn lower(
    plan: &Plan,
    uid_mappings: &[IdMapping],
    gid_mappings: &[IdMapping],
) -> Result<Lowered, Unmapped> {
    let mut lowered = Lowered::default();
    let mut op = |plugin: &str, what: Op| {
        lowered.ops.push(Attributed {
            plugin: plugin.to_string(),
            what,
        })
    };
    for d in &plan.directories {
        op(
            &d.plugin,
            Op::Directory {
                path: d.container_path.clone(),
                mode: d.mode,
            },
        );
    }
    for d in &plan.devices {
        let unmapped = |what, id| Unmapped {
            plugin: d.plugin.clone(),
            path: d.container_path.clone(),
            what,
            id,
        };
        op(
            &d.plugin,
            Op::DeviceNode {
                path: d.container_path.clone(),
                kind: d.kind,
                major: d.major,
                minor: d.minor,
                mode: d.file_mode,
                uid: map_id(d.uid, uid_mappings).ok_or_else(|| unmapped("uid", d.uid))?,
                gid: map_id(d.gid, gid_mappings).ok_or_else(|| unmapped("gid", d.gid))?,
            },
        );
    }
    for f in &plan.files {
        let (host_path, path) = (f.host_path.clone(), f.container_path.clone());
        let what = match f.transfer {
            Transfer::Bind => Op::Bind {
                host_path,
                path,
                directory: f.directory,
            },
            Transfer::Copy => Op::Copy { host_path, path },
        };
        op(&f.plugin, what);
    }
    for l in &plan.symlinks {
        op(
            &l.plugin,
            Op::Symlink {
                path: l.container_path.clone(),
                target: l.target.clone(),
            },
        );
    }
    if let Some(ld) = &plan.ldconfig {
        let plugins = ld.plugins.join(",");
        for what in ldconfig_ops(&ld.dirs()) {
            op(&plugins, what);
        }
    }
    lowered.rules = plan
        .devices
        .iter()
        .map(|d| Attributed {
            plugin: d.plugin.clone(),
            what: DeviceRule {
                kind: d.kind,
                major: d.major,
                minor: d.minor,
                access: d.permissions.clone(),
            },
        })
        .collect();
    lowered.env = plan
        .env
        .iter()
        .map(|e| Attributed {
            plugin: e.plugin.clone(),
            what: (e.name.clone(), e.value.clone()),
        })
        .collect();
    Ok(lowered)
}

/// The linker cache's refresh for the library directories `dirs`: the
/// ld.so.conf.d drop-in that lists them, then ldconfig, both in this order
/// (the first directory with a library of a name wins).
pub fn ldconfig_ops(dirs: &[String]) -> [Op; 2] {
    let content: String = dirs.iter().map(|d| format!("{d}\n")).collect();
    [
        Op::Write {
            path: LDCONFIG_DROP_IN.into(),
            content: content.into_bytes(),
            mode: 0o644,
        },
        Op::Ldconfig {
            dirs: dirs.to_vec(),
        },
    ]
}

/// The host id of container id `id` under `mappings` (no mappings: the same).
fn map_id(id: u32, mappings: &[IdMapping]) -> Option<u32> {
    if mappings.is_empty() {
        return Some(id);
    }
    mappings.iter().find_map(|m| {
        // A range past the last host id maps nothing there (the kernel
        // refuses such a mapping; a spec is the container owner's).
        (id >= m.container_id && id - m.container_id < m.size)
            .then(|| m.host_id.checked_add(id - m.container_id))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, FileRole};

    fn plan() -> Plan {
        let mut plan = Plan::default();
        plan.add_symlink(plan::Symlink {
            plugin: "b".into(),
            container_path: "/usr/lib/libx.so.1".into(),
            target: "libx.so.1.0".into(),
        })
        .unwrap();
        plan.add_file(plan::File {
            plugin: "b".into(),
            host_path: "/host/libx.so.1.0".into(),
            container_path: "/usr/lib/libx.so.1.0".into(),
            role: FileRole::Library,
            transfer: Transfer::Bind,
            directory: false,
        })
        .unwrap();
        plan.add_file(plan::File {
            plugin: "a".into(),
            host_path: "/etc/a.conf".into(),
            container_path: "/etc/a.conf".into(),
            role: FileRole::Misc,
            transfer: Transfer::Copy,
            directory: false,
        })
        .unwrap();
        plan.add_device(plan::Device {
            plugin: "a".into(),
            container_path: "/dev/a0".into(),
            host_path: "/dev/a0".into(),
            kind: DeviceType::Char,
            major: 195,
            minor: 0,
            file_mode: 0o666,
            uid: 0,
            gid: 44,
            permissions: "rw".into(),
        })
        .unwrap();
        plan.add_directory(plan::Directory {
            plugin: "a".into(),
            container_path: "/var/lib/a".into(),
            mode: 0o700,
        })
        .unwrap();
        plan.request_ldconfig("b");
        plan
    }

    #[test]
    fn operations_come_in_the_order_a_container_needs_each_with_its_plugin() {
        let lowered = lower(&plan(), &[], &[]).unwrap();
        let order: Vec<(&str, &str, &str)> = lowered
            .ops
            .iter()
            .map(|o| (o.plugin.as_str(), o.what.action(), o.what.path()))
            .collect();
        assert_eq!(
            order,
            [
                ("a", "mkdir", "/var/lib/a"),
                ("a", "mknod", "/dev/a0"),
                ("b", "bind", "/usr/lib/libx.so.1.0"),
                ("a", "copy", "/etc/a.conf"),
                ("b", "symlink", "/usr/lib/libx.so.1"),
                ("b", "write", LDCONFIG_DROP_IN),
                ("b", "ldconfig", LDCONFIG_CACHE),
            ]
        );
        assert_eq!(
            lowered.ops[5].what,
            Op::Write {
                path: LDCONFIG_DROP_IN.into(),
                content: b"/usr/lib\n".to_vec(),
                mode: 0o644
            }
        );
        assert_eq!(
            lowered.ops[6].what,
            Op::Ldconfig {
                dirs: vec!["/usr/lib".into()]
            }
        );
    }

    #[test]
    fn each_device_node_has_its_cgroup_rule() {
        let lowered = lower(&plan(), &[], &[]).unwrap();
        assert_eq!(lowered.rules.len(), 1);
        assert_eq!(lowered.rules[0].plugin, "a");
        assert_eq!(lowered.rules[0].what.to_string(), "c 195:0 rw");
    }

    #[test]
    fn device_owners_are_mapped_through_the_user_namespace() {
        let mapping = [IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        let lowered = lower(&plan(), &mapping, &mapping).unwrap();
        let Op::DeviceNode { uid, gid, .. } = &lowered.ops[1].what else {
            panic!("{:?}", lowered.ops[1]);
        };
        assert_eq!((*uid, *gid), (100_000, 100_044));

        let narrow = [IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 10,
        }];
        let err = lower(&plan(), &mapping, &narrow).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `a`: mknod /dev/a0: gid 44 is not mapped in the container's user namespace"
        );
    }

    #[test]
    fn ids_map_only_inside_a_mapping_and_as_themselves_without_one() {
        let mappings = [IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        assert_eq!(map_id(0, &mappings), Some(100_000));
        assert_eq!(map_id(65_535, &mappings), Some(165_535));
        assert_eq!(map_id(65_536, &mappings), None);
        assert_eq!(map_id(44, &[]), Some(44));
        let past_the_end = [IdMapping {
            container_id: 0,
            host_id: u32::MAX - 10,
            size: 65_536,
        }];
        assert_eq!(map_id(10, &past_the_end), Some(u32::MAX));
        assert_eq!(map_id(11, &past_the_end), None, "not wrapped round to 0");
    }

    #[test]
    fn an_empty_plan_lowers_to_nothing() {
        assert_eq!(
            lower(&Plan::default(), &[], &[]).unwrap(),
            Lowered::default()
        );
    }
}
