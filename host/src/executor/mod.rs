//! The hook executor: carries a plan out in a container that runc is
//! starting (prestart / createRuntime hooks).
//!
//! It reads like the checklist it is:
//!
//! 1. Check the whole plan before the first change: the container's pid and
//!    mount namespace, every host source (opened now, under the host root,
//!    never from the image), every device's number, the device cgroup.
//! 2. Allow the devices in the container's device cgroup (host side).
//! 3. In a thread of its own that has entered the container's mount
//!    namespace, create directories, device nodes, files and symlinks inside
//!    the rootfs, every path resolved with `RESOLVE_IN_ROOT` (see [`rootfs`]);
//!    last, the host's ldconfig in a sandbox of its own (see [`ldconfig`]).
//! 4. On any failure, undo what was done in reverse order, and fail with one
//!    message that names the plugin, the request and the path.
//!
//! The privileged calls sit behind [`Container`] and [`DeviceCgroup`] so the
//! checklist itself is tested with a recording fake.

pub mod cgroup;
pub mod ldconfig;
mod namespace;
pub mod rootfs;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::context::{ContainerContext, Stage};
use crate::hostfs::HostFs;
use crate::plan::{self, Plan};

/// What to put at a container path.
pub enum Node {
    Directory {
        mode: u32,
    },
    Device(plan::Device),
    Symlink {
        target: String,
    },
    /// A new file with this content (a copy of an open host file, or a file
    /// of hookhost's own such as the ld.so.conf.d drop-in).
    Write {
        source: Box<dyn std::io::Read + Send>,
        mode: u32,
    },
    /// A read-only bind mount of a detached mount of the host source
    /// (`open_tree` made in the host's mount namespace).
    Bind {
        tree: OwnedFd,
        directory: bool,
    },
    /// Not a node: the host's ldconfig (`binary`, an absolute path) run on
    /// the rootfs once everything else is in place, for these directories.
    Ldconfig {
        binary: PathBuf,
        dirs: Vec<String>,
    },
}

/// How the container's rootfs is changed: the privileged calls of step 3.
pub trait Container {
    /// What a creation left behind, for its undo: the real container holds
    /// file descriptors, so an undo never looks a path up again.
    type Made;
    /// Creates `node` at `at`, parents included; fails if `at` exists
    /// (except a directory, or what an earlier start of the same rootfs
    /// made: the same device node, link or file).
    fn create(&mut self, at: &Path, node: Node) -> Result<Self::Made, String>;
    /// Undoes one creation.
    fn undo(&mut self, made: Self::Made) -> Result<(), String>;
}

/// The container's device cgroup: step 2.
pub trait DeviceCgroup {
    fn allow(&mut self, rule: &str) -> Result<(), String>;
    fn deny(&mut self, rule: &str) -> Result<(), String>;
}

/// One action of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub plugin: String,
    pub action: &'static str,
    pub path: String,
    pub outcome: Outcome,
    pub micros: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    Failed,
    Undone,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot inject into container {id}: {reason}")]
    Target { id: String, reason: String },
    #[error("plugin `{plugin}`: {action} {path}: {reason}")]
    Step {
        plugin: String,
        action: &'static str,
        path: String,
        reason: String,
    },
}

/// A step of the plan, ready to run: its source already opened.
pub struct Step {
    pub plugin: String,
    pub action: &'static str,
    pub at: PathBuf,
    pub node: Node,
}

/// Runs `steps` in the container, undoing everything on the first failure.
/// Returns the audit actions; on failure also the error.
pub fn run_steps<C: Container>(
    container: &mut C,
    steps: Vec<Step>,
) -> (Vec<Action>, Result<(), ExecError>) {
    let mut actions = Vec::new();
    let mut done: Vec<(usize, C::Made)> = Vec::new();
    for step in steps {
        let start = Instant::now();
        let path = step.at.display().to_string();
        match container.create(&step.at, step.node) {
            Ok(created) => {
                actions.push(action(
                    &step.plugin,
                    step.action,
                    &path,
                    Outcome::Done,
                    start,
                ));
                done.push((actions.len() - 1, created));
            }
            Err(reason) => {
                actions.push(action(
                    &step.plugin,
                    step.action,
                    &path,
                    Outcome::Failed,
                    start,
                ));
                let undo_errors = undo_all(container, &mut actions, done);
                let reason = if undo_errors.is_empty() {
                    reason
                } else {
                    format!("{reason} (and undoing failed: {})", undo_errors.join("; "))
                };
                let err = ExecError::Step {
                    plugin: step.plugin,
                    action: step.action,
                    path,
                    reason,
                };
                return (actions, Err(err));
            }
        }
    }
    (actions, Ok(()))
}

/// Undoes `done` in reverse order, marking each action undone. Returns the
/// undo steps that failed (best effort: the others are still undone).
fn undo_all<C: Container>(
    container: &mut C,
    actions: &mut [Action],
    done: Vec<(usize, C::Made)>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (index, made) in done.into_iter().rev() {
        match container.undo(made) {
            Ok(()) => actions[index].outcome = Outcome::Undone,
            Err(e) => errors.push(format!("{}: {e}", actions[index].path)),
        }
    }
    errors
}

/// An error with all its causes, on one line: pathrs says "rename failed"
/// and keeps the EEXIST or ELOOP that explains it in its source.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

fn action(
    plugin: &str,
    action: &'static str,
    path: &str,
    outcome: Outcome,
    start: Instant,
) -> Action {
    Action {
        plugin: plugin.to_string(),
        action,
        path: path.to_string(),
        outcome,
        micros: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

/// The device cgroup rules of a plan: `c 195:0 rwm`.
pub fn cgroup_rules(plan: &Plan) -> Vec<(String, String)> {
    plan.devices
        .iter()
        .map(|d| {
            (
                d.plugin.clone(),
                format!(
                    "{} {}:{} {}",
                    d.kind.letter(),
                    d.major,
                    d.minor,
                    d.permissions
                ),
            )
        })
        .collect()
}

/// Allows every rule, or none: a failure revokes those already written.
pub fn allow_devices(
    cgroup: &mut dyn DeviceCgroup,
    rules: &[(String, String)],
) -> Result<Vec<Action>, (Vec<Action>, ExecError)> {
    let mut actions = Vec::new();
    for (i, (plugin, rule)) in rules.iter().enumerate() {
        let start = Instant::now();
        if let Err(reason) = cgroup.allow(rule) {
            actions.push(action(plugin, "cgroup-allow", rule, Outcome::Failed, start));
            revoke_devices(cgroup, &rules[..i], &mut actions);
            let err = ExecError::Step {
                plugin: plugin.clone(),
                action: "cgroup-allow",
                path: rule.clone(),
                reason,
            };
            return Err((actions, err));
        }
        actions.push(action(plugin, "cgroup-allow", rule, Outcome::Done, start));
    }
    Ok(actions)
}

/// Revokes rules written by [`allow_devices`], marking their actions undone.
pub fn revoke_devices(
    cgroup: &mut dyn DeviceCgroup,
    rules: &[(String, String)],
    actions: &mut [Action],
) {
    for (_, rule) in rules.iter().rev() {
        if cgroup.deny(rule).is_ok() {
            if let Some(a) = actions
                .iter_mut()
                .find(|a| a.action == "cgroup-allow" && &a.path == rule)
            {
                a.outcome = Outcome::Undone;
            }
        }
    }
}

/// One JSON line of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    pub container: &'a str,
    pub stage: crate::context::Stage,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub micros: u64,
    pub actions: &'a [Action],
}

/// Appends one record to the audit log. O_APPEND makes each line atomic
/// against other hooks writing at the same time.
pub fn audit(log: &Path, record: &AuditRecord) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(record).expect("an audit record always serialises");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    file.write_all(&line)
}

/// Carries `plan` out in the container of `ctx`: from a prestart or
/// createRuntime hook (runc's namespaces, the container's init at
/// `ctx.pid`), or from a createContainer hook (already in the container's
/// mount namespace and cgroup). All or nothing; returns the audit actions
/// either way.
pub fn inject(
    plan: &Plan,
    ctx: &ContainerContext,
    host: &HostFs,
    ldconfig: &Path,
) -> (Vec<Action>, Result<(), ExecError>) {
    let target_error = |reason: String| ExecError::Target {
        id: ctx.id.clone(),
        reason,
    };
    // 1. Check everything and open every source, still in our namespace.
    let prepared = (|| {
        // A createContainer hook already runs in the container's mount
        // namespace and cgroup; the others find them through its init.
        let init = match ctx.stage {
            Stage::CreateContainer => None,
            _ => Some(ctx.pid.ok_or_else(|| {
                "the OCI state has no pid; run hookhost as a prestart or createRuntime hook"
                    .to_string()
            })?),
        };
        let mount_ns = match init {
            Some(pid) => namespace::container_mount_ns(pid)?,
            None => namespace::own_mount_ns(ctx.pid)?,
        };
        let steps = prepare_steps(plan, ctx, host, ldconfig)?;
        let cgroup = match (plan.devices.is_empty(), init) {
            (true, _) => None,
            (false, Some(pid)) => Some(cgroup::V1::of_pid(pid)?),
            (false, None) => Some(cgroup::V1::of_self()?),
        };
        Ok::<_, String>((mount_ns, steps, cgroup))
    })();
    let (mount_ns, steps, mut cgroup) = match prepared {
        Ok(p) => p,
        Err(reason) => return (Vec::new(), Err(target_error(reason))),
    };

    // 2. The device cgroup, from the host side.
    let rules = cgroup_rules(plan);
    let mut actions = match cgroup.as_mut().map(|c| allow_devices(c, &rules)) {
        Some(Err((actions, err))) => return (actions, Err(err)),
        Some(Ok(actions)) => actions,
        None => Vec::new(),
    };

    // 3. The rootfs, from inside the container's mount namespace.
    let rootfs = ctx.rootfs.clone();
    let (step_actions, result) = namespace::in_mount_ns(mount_ns, move || {
        let mut container = rootfs::Rootfs::open(&rootfs)?;
        Ok(run_steps(&mut container, steps))
    })
    .unwrap_or_else(|reason| (Vec::new(), Err(target_error(reason))));
    actions.extend(step_actions);

    // 4. A failure in the rootfs takes the cgroup rules back too.
    if result.is_err() {
        if let Some(cgroup) = cgroup.as_mut() {
            revoke_devices(cgroup, &rules, &mut actions);
        }
    }
    (actions, result)
}

/// Turns the plan into steps, in the order they must run, opening every
/// host source now (under the host root, never in the image).
fn prepare_steps(
    plan: &Plan,
    ctx: &ContainerContext,
    host: &HostFs,
    ldconfig: &Path,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for d in &plan.directories {
        steps.push(Step {
            plugin: d.plugin.clone(),
            action: "mkdir",
            at: d.container_path.clone().into(),
            node: Node::Directory { mode: d.mode },
        });
    }
    for d in &plan.devices {
        let mut device = d.clone();
        device.uid = map_id(d.uid, &ctx.uid_mappings).ok_or_else(|| {
            format!(
                "{}: uid {} is not mapped in the container",
                d.container_path, d.uid
            )
        })?;
        device.gid = map_id(d.gid, &ctx.gid_mappings).ok_or_else(|| {
            format!(
                "{}: gid {} is not mapped in the container",
                d.container_path, d.gid
            )
        })?;
        steps.push(Step {
            plugin: d.plugin.clone(),
            action: "mknod",
            at: d.container_path.clone().into(),
            node: Node::Device(device),
        });
    }
    for f in &plan.files {
        let node = match f.transfer {
            plan::Transfer::Bind => Node::Bind {
                tree: host.bind_source(&f.host_path).map_err(|e| e.to_string())?,
                directory: f.directory,
            },
            plan::Transfer::Copy => {
                let (source, mode) = host.open_source(&f.host_path).map_err(|e| e.to_string())?;
                Node::Write {
                    source: Box::new(source),
                    mode,
                }
            }
        };
        steps.push(Step {
            plugin: f.plugin.clone(),
            action: match f.transfer {
                plan::Transfer::Bind => "bind",
                plan::Transfer::Copy => "copy",
            },
            at: f.container_path.clone().into(),
            node,
        });
    }
    for l in &plan.symlinks {
        steps.push(Step {
            plugin: l.plugin.clone(),
            action: "symlink",
            at: l.container_path.clone().into(),
            node: Node::Symlink {
                target: l.target.clone(),
            },
        });
    }
    if let Some(ld) = &plan.ldconfig {
        let plugin = ld.plugins.join(",");
        // Later ldconfig runs in the container (a package install) keep the
        // injected directories, where the image includes ld.so.conf.d.
        let conf = ld
            .library_dirs
            .iter()
            .map(|d| format!("{d}\n"))
            .collect::<String>();
        steps.push(Step {
            plugin: plugin.clone(),
            action: "write",
            at: LDCONFIG_DROP_IN.into(),
            node: Node::Write {
                source: Box::new(std::io::Cursor::new(conf.into_bytes())),
                mode: 0o644,
            },
        });
        steps.push(Step {
            plugin,
            action: "ldconfig",
            at: "/etc/ld.so.cache".into(),
            node: Node::Ldconfig {
                binary: ldconfig.to_path_buf(),
                dirs: ld.library_dirs.clone(),
            },
        });
    }
    Ok(steps)
}

/// The drop-in listing the injected library directories.
pub const LDCONFIG_DROP_IN: &str = "/etc/ld.so.conf.d/000-hookhost.conf";

/// The host id of container id `id` under `mappings` (no mappings: the same).
fn map_id(id: u32, mappings: &[crate::context::IdMapping]) -> Option<u32> {
    if mappings.is_empty() {
        return Some(id);
    }
    mappings.iter().find_map(|m| {
        (id >= m.container_id && id - m.container_id < m.size)
            .then(|| m.host_id + (id - m.container_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the executor asks of the container; fails on one path.
    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        fail_at: Option<PathBuf>,
    }

    impl Container for Fake {
        type Made = PathBuf;

        fn create(&mut self, at: &Path, node: Node) -> Result<PathBuf, String> {
            if self.fail_at.as_deref() == Some(at) {
                return Err("immutable".into());
            }
            let kind = match node {
                Node::Directory { .. } => "dir",
                Node::Device(_) => "node",
                Node::Symlink { .. } => "link",
                Node::Write { .. } => "write",
                Node::Bind { .. } => "bind",
                Node::Ldconfig { .. } => "ldconfig",
            };
            self.log.push(format!("create {kind} {}", at.display()));
            Ok(at.to_path_buf())
        }

        fn undo(&mut self, made: PathBuf) -> Result<(), String> {
            self.log.push(format!("undo {}", made.display()));
            Ok(())
        }
    }

    #[derive(Default)]
    struct FakeCgroup {
        log: Vec<String>,
        refuse: Option<&'static str>,
    }

    impl DeviceCgroup for FakeCgroup {
        fn allow(&mut self, rule: &str) -> Result<(), String> {
            if self.refuse == Some(rule) {
                return Err("EPERM".into());
            }
            self.log.push(format!("allow {rule}"));
            Ok(())
        }

        fn deny(&mut self, rule: &str) -> Result<(), String> {
            self.log.push(format!("deny {rule}"));
            Ok(())
        }
    }

    fn step(at: &str, node: Node) -> Step {
        Step {
            plugin: "p".into(),
            action: "test",
            at: at.into(),
            node,
        }
    }

    fn steps() -> Vec<Step> {
        vec![
            step("/etc/p", Node::Directory { mode: 0o755 }),
            step(
                "/usr/lib/libp.so.1",
                Node::Symlink {
                    target: "libp.so.1.0".into(),
                },
            ),
            step(
                "/usr/lib/libq.so.1",
                Node::Symlink {
                    target: "libq.so.1.0".into(),
                },
            ),
        ]
    }

    #[test]
    fn steps_run_in_plan_order_and_are_all_audited() {
        let mut fake = Fake::default();
        let (actions, result) = run_steps(&mut fake, steps());
        result.unwrap();
        assert_eq!(
            fake.log,
            [
                "create dir /etc/p",
                "create link /usr/lib/libp.so.1",
                "create link /usr/lib/libq.so.1"
            ]
        );
        assert!(actions
            .iter()
            .all(|a| a.outcome == Outcome::Done && a.plugin == "p"));
    }

    #[test]
    fn a_failing_step_undoes_the_earlier_ones_in_reverse() {
        let mut fake = Fake {
            fail_at: Some("/usr/lib/libq.so.1".into()),
            ..Fake::default()
        };
        let (actions, result) = run_steps(&mut fake, steps());
        let err = result.unwrap_err().to_string();
        assert_eq!(err, "plugin `p`: test /usr/lib/libq.so.1: immutable");
        assert_eq!(
            fake.log,
            [
                "create dir /etc/p",
                "create link /usr/lib/libp.so.1",
                "undo /usr/lib/libp.so.1",
                "undo /etc/p"
            ]
        );
        let outcomes: Vec<_> = actions.iter().map(|a| a.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Undone, Outcome::Undone, Outcome::Failed]
        );
    }

    #[test]
    fn a_refused_cgroup_rule_revokes_the_ones_before_it() {
        let mut cgroup = FakeCgroup {
            refuse: Some("c 195:1 rwm"),
            ..FakeCgroup::default()
        };
        let rules = [
            ("p".to_string(), "c 195:0 rwm".to_string()),
            ("p".to_string(), "c 195:1 rwm".to_string()),
        ];
        let (actions, err) = allow_devices(&mut cgroup, &rules).unwrap_err();
        assert_eq!(cgroup.log, ["allow c 195:0 rwm", "deny c 195:0 rwm"]);
        assert!(err.to_string().contains("cgroup-allow c 195:1 rwm: EPERM"));
        assert_eq!(actions[0].outcome, Outcome::Undone);
        assert_eq!(actions[1].outcome, Outcome::Failed);
    }

    #[test]
    fn ids_are_mapped_through_the_user_namespace() {
        let mappings = [crate::context::IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        assert_eq!(map_id(0, &mappings), Some(100_000));
        assert_eq!(map_id(44, &mappings), Some(100_044));
        assert_eq!(map_id(70_000, &mappings), None);
        assert_eq!(map_id(44, &[]), Some(44));
    }
}
