//! The hook back end: carries a lowered plan out in a container that runc
//! is starting (prestart, createRuntime and createContainer hooks).
//!
//! It reads like the checklist it is:
//!
//! 1. Before the first change: find the container's mount namespace and
//!    device cgroup, and open every host source now, under the host root,
//!    never from the image ([`open_sources`], through [`sources`], the one
//!    module of privileged source opening).
//! 2. Allow the devices in the container's device cgroup (host side):
//!    `devices.allow` on cgroup v1, a rebuilt BPF device program on v2.
//! 3. In a thread of its own that has entered the container's mount
//!    namespace, create directories, device nodes, files and symlinks inside
//!    the rootfs (see [`rootfs`]); last, the host's ldconfig in a sandbox of
//!    its own (see [`ldconfig`]).
//! 4. On any failure, undo what was done in reverse order, revoke the
//!    cgroup rules, and fail with one message that names the plugin, the
//!    action, the path and the system's error.
//!
//! The privileged work sits behind [`Container`] and [`DeviceCgroup`], so the
//! checklist itself is tested with recording fakes.

pub mod cgroup;
pub mod devices_bpf;
pub mod flow;
pub mod ldconfig;
mod namespace;
pub mod rootfs;
pub mod sources;
mod target;

pub use target::TargetError;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::audit::{Action, Outcome};
use crate::context::{ContainerContext, Stage};
use crate::hostfs::HostFs;
use crate::lowering::{Attributed, DeviceRule, Lowered, Op};
use crate::plan::DeviceType;

/// What to put at a container path, its host source already opened.
pub enum Node {
    Directory {
        mode: u32,
    },
    Device(Device),
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

/// A device node to make, owned by host ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceType,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The boxed error of one failed operation, kept with its causes.
pub type Reason = Box<dyn std::error::Error + Send + Sync>;

/// How the container's rootfs is changed: the privileged calls of step 3.
pub trait Container {
    /// What a creation left behind, for its undo: the real container holds
    /// file descriptors, so an undo never looks a path up again.
    type Made;
    /// Creates `node` at `at`, parents included; fails if `at` exists
    /// (except a directory, or what an earlier start of the same rootfs
    /// made: the same device node, link or file).
    fn create(&mut self, at: &Path, node: Node) -> Result<Self::Made, Reason>;
    /// Undoes one creation.
    fn undo(&mut self, made: Self::Made) -> Result<(), Reason>;
}

/// The container's device cgroup: step 2.
pub trait DeviceCgroup {
    /// Allows all of `rules`, or none: on an error nothing stays allowed.
    /// (cgroup v2 replaces one program with all the rules at once, so the
    /// rules come together.)
    fn allow(&mut self, rules: &[DeviceRule]) -> Result<(), Refused>;
    /// Takes back what `allow` allowed: the cgroup is as it was before.
    fn revoke(&mut self) -> Result<(), Reason>;
}

/// Why [`DeviceCgroup::allow`] allowed nothing.
#[derive(Debug)]
pub struct Refused {
    /// The rule refused, when the rules go one by one (v1); `None` when
    /// they went together (v2).
    pub rule: Option<usize>,
    pub reason: Reason,
}

/// Allows `rules` one at a time with `allow`, or none: on a refusal, takes
/// back those before it with `deny`, in reverse (best effort).
pub fn one_by_one(
    rules: &[DeviceRule],
    mut allow: impl FnMut(&DeviceRule) -> Result<(), Reason>,
    mut deny: impl FnMut(&DeviceRule) -> Result<(), Reason>,
) -> Result<(), Refused> {
    for (index, rule) in rules.iter().enumerate() {
        if let Err(reason) = allow(rule) {
            for rule in rules[..index].iter().rev() {
                let _ = deny(rule);
            }
            return Err(Refused {
                rule: Some(index),
                reason,
            });
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The container cannot be injected into at all; nothing was changed.
    #[error("cannot inject into container {id}: {reason}")]
    Target {
        id: String,
        #[source]
        reason: TargetError,
    },
    /// One operation of one plugin failed; what was done before it is undone.
    #[error("plugin `{plugin}`: {action} {path}: {}{}", chain(reason.as_ref()), undo_failures(undo))]
    Step {
        plugin: String,
        action: &'static str,
        path: String,
        reason: Reason,
        /// Undo steps that failed in turn (best effort: the others ran).
        undo: Vec<String>,
    },
}

fn undo_failures(undo: &[String]) -> String {
    if undo.is_empty() {
        String::new()
    } else {
        format!(" (and undoing failed: {})", undo.join("; "))
    }
}

pub use crate::error::chain;

/// One operation, ready to run: its source already opened.
pub struct Step {
    pub plugin: String,
    pub action: &'static str,
    pub at: PathBuf,
    pub node: Node,
}

impl Step {
    fn fail(&self, reason: Reason) -> HookError {
        HookError::Step {
            plugin: self.plugin.clone(),
            action: self.action,
            path: self.at.display().to_string(),
            reason,
            undo: Vec::new(),
        }
    }
}

/// Runs `steps` in the container, undoing everything on the first failure.
/// Returns the audit actions; on failure also the error.
pub fn run_steps<C: Container>(
    container: &mut C,
    steps: Vec<Step>,
) -> (Vec<Action>, Result<(), HookError>) {
    let mut actions = Vec::new();
    let mut done: Vec<(usize, C::Made)> = Vec::new();
    for step in steps {
        let start = Instant::now();
        let path = step.at.display().to_string();
        let Step {
            plugin,
            action,
            at,
            node,
        } = step;
        match container.create(&at, node) {
            Ok(made) => {
                actions.push(Action::timed(&plugin, action, &path, Outcome::Done, start));
                done.push((actions.len() - 1, made));
            }
            Err(reason) => {
                actions.push(Action::timed(
                    &plugin,
                    action,
                    &path,
                    Outcome::Failed,
                    start,
                ));
                let undo = undo_all(container, &mut actions, done);
                let err = HookError::Step {
                    plugin,
                    action,
                    path,
                    reason,
                    undo,
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
            Err(e) => errors.push(format!("{}: {}", actions[index].path, chain(e.as_ref()))),
        }
    }
    errors
}

const CGROUP_ALLOW: &str = "cgroup-allow";

/// Allows every rule, or none, with one audit action per rule.
fn allow_devices(
    cgroup: &mut dyn DeviceCgroup,
    rules: &[Attributed<DeviceRule>],
) -> (Vec<Action>, Result<(), HookError>) {
    let start = Instant::now();
    let what: Vec<DeviceRule> = rules.iter().map(|r| r.what.clone()).collect();
    let result = cgroup.allow(&what);
    let mut actions: Vec<Action> = rules
        .iter()
        .map(|r| {
            Action::timed(
                &r.plugin,
                CGROUP_ALLOW,
                &r.what.to_string(),
                Outcome::Done,
                start,
            )
        })
        .collect();
    let Err(Refused { rule, reason }) = result else {
        return (actions, Ok(()));
    };
    let (plugin, path) = match rule {
        // One by one: those before it were taken back, those after it
        // never tried.
        Some(index) => {
            actions.truncate(index + 1);
            for action in &mut actions[..index] {
                action.outcome = Outcome::Undone;
            }
            actions[index].outcome = Outcome::Failed;
            (rules[index].plugin.clone(), actions[index].path.clone())
        }
        // All together: every rule failed with the one error.
        None => {
            for action in &mut actions {
                action.outcome = Outcome::Failed;
            }
            let mut plugins: Vec<&str> = rules.iter().map(|r| r.plugin.as_str()).collect();
            plugins.dedup();
            let paths: Vec<&str> = actions.iter().map(|a| a.path.as_str()).collect();
            (plugins.join(", "), paths.join(", "))
        }
    };
    let err = HookError::Step {
        plugin,
        action: CGROUP_ALLOW,
        path,
        reason,
        undo: Vec::new(),
    };
    (actions, Err(err))
}

/// Steps 2 to 4 in their order: the cgroup rules first (a node the
/// container can open must not appear before its rule), then the rootfs,
/// and on a failure there the rules taken back.
fn apply(
    cgroup: Option<&mut dyn DeviceCgroup>,
    rules: &[Attributed<DeviceRule>],
    rootfs: impl FnOnce() -> (Vec<Action>, Result<(), HookError>),
) -> (Vec<Action>, Result<(), HookError>) {
    let Some(cgroup) = cgroup else {
        return rootfs();
    };
    let (mut actions, allowed) = allow_devices(cgroup, rules);
    if allowed.is_err() {
        return (actions, allowed);
    }
    let allowed = actions.len();
    let (step_actions, mut result) = rootfs();
    actions.extend(step_actions);
    if let Err(err) = &mut result {
        match cgroup.revoke() {
            Ok(()) => {
                for action in &mut actions[..allowed] {
                    action.outcome = Outcome::Undone;
                }
            }
            Err(e) => {
                if let HookError::Step { undo, .. } = err {
                    undo.push(format!("{CGROUP_ALLOW}: {}", chain(e.as_ref())));
                }
            }
        }
    }
    (actions, result)
}

/// Carries `lowered` out in the container of `ctx`: from a prestart or
/// createRuntime hook (runc's namespaces, the container's init at
/// `ctx.pid`), or from a createContainer hook (already in the container's
/// mount namespace and cgroup). All or nothing; returns the audit actions
/// either way.
pub fn inject(
    lowered: Lowered,
    ctx: &ContainerContext,
    host: &HostFs,
    ldconfig: &Path,
) -> (Vec<Action>, Result<(), HookError>) {
    let target = |reason: TargetError| HookError::Target {
        id: ctx.id.clone(),
        reason,
    };
    // 1. Find the container and open every source, still in our namespace.
    let found = (|| {
        // A createContainer hook already runs in the container's mount
        // namespace and cgroup; the others find them through its init.
        let init = match ctx.stage {
            Stage::CreateContainer => None,
            _ => Some(ctx.pid.ok_or(TargetError::NoPid)?),
        };
        let mount_ns = match init {
            Some(pid) => namespace::container_mount_ns(pid)?,
            None => namespace::own_mount_ns(ctx.pid)?,
        };
        let cgroup = match lowered.rules.is_empty() {
            true => None,
            false => Some(cgroup::of_process(init, spec_device_rules(ctx))?),
        };
        Ok::<_, TargetError>((mount_ns, cgroup))
    })();
    let (mount_ns, mut cgroup) = match found {
        Ok(found) => found,
        Err(reason) => return (Vec::new(), Err(target(reason))),
    };
    let steps = match open_sources(lowered.ops, host, ldconfig) {
        Ok(steps) => steps,
        Err(err) => return (Vec::new(), Err(err)),
    };

    let rootfs = ctx.rootfs.clone();
    let cgroup = cgroup.as_mut().map(|c| c.as_mut() as &mut dyn DeviceCgroup);
    apply(cgroup, &lowered.rules, || {
        // 3. The rootfs, from inside the container's mount namespace.
        namespace::in_mount_ns(mount_ns, move || {
            let mut container = rootfs::Rootfs::open(&rootfs)?;
            Ok(run_steps(&mut container, steps))
        })
        .unwrap_or_else(|reason| (Vec::new(), Err(target(reason))))
    })
}

/// The spec's `linux.resources.devices`: the runtime's own rules.
fn spec_device_rules(ctx: &ContainerContext) -> &[oci_spec::runtime::LinuxDeviceCgroup] {
    ctx.spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_deref())
        .unwrap_or(&[])
}

/// Turns the lowered operations into steps, opening every host source now
/// (under the host root, never in the image). A source that cannot be
/// opened fails its step, naming its plugin.
fn open_sources(
    ops: Vec<Attributed<Op>>,
    host: &HostFs,
    ldconfig: &Path,
) -> Result<Vec<Step>, HookError> {
    ops.into_iter()
        .map(|Attributed { plugin, what: op }| {
            let mut step = Step {
                plugin,
                action: op.action(),
                at: PathBuf::from(op.path()),
                node: Node::Directory { mode: 0 },
            };
            step.node = match op {
                Op::Directory { mode, .. } => Node::Directory { mode },
                Op::DeviceNode {
                    kind,
                    major,
                    minor,
                    mode,
                    uid,
                    gid,
                    ..
                } => Node::Device(Device {
                    kind,
                    major,
                    minor,
                    mode,
                    uid,
                    gid,
                }),
                Op::Bind {
                    host_path,
                    directory,
                    ..
                } => Node::Bind {
                    tree: sources::bind_source(host, &host_path)
                        .map_err(|e| step.fail(e.into()))?,
                    directory,
                },
                Op::Copy { host_path, .. } => {
                    let (source, mode) =
                        sources::open_source(host, &host_path).map_err(|e| step.fail(e.into()))?;
                    Node::Write {
                        source: Box::new(source),
                        mode,
                    }
                }
                Op::Symlink { target, .. } => Node::Symlink { target },
                Op::Write { content, mode, .. } => Node::Write {
                    source: Box::new(std::io::Cursor::new(content)),
                    mode,
                },
                Op::Ldconfig { dirs } => Node::Ldconfig {
                    binary: ldconfig.to_path_buf(),
                    dirs,
                },
            };
            Ok(step)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failed(&'static str);

    /// What the fakes were asked, in order, across both of them.
    type Log = Rc<RefCell<Vec<String>>>;

    /// Records what the executor asks of the container; fails on one path.
    #[derive(Default)]
    struct Fake {
        log: Log,
        fail_at: Option<PathBuf>,
    }

    impl Container for Fake {
        type Made = PathBuf;

        fn create(&mut self, at: &Path, node: Node) -> Result<PathBuf, Reason> {
            if self.fail_at.as_deref() == Some(at) {
                return Err(Box::new(Failed("immutable")));
            }
            let kind = match node {
                Node::Directory { .. } => "dir",
                Node::Device(_) => "node",
                Node::Symlink { .. } => "link",
                Node::Write { .. } => "write",
                Node::Bind { .. } => "bind",
                Node::Ldconfig { .. } => "ldconfig",
            };
            self.log
                .borrow_mut()
                .push(format!("create {kind} {}", at.display()));
            Ok(at.to_path_buf())
        }

        fn undo(&mut self, made: PathBuf) -> Result<(), Reason> {
            self.log
                .borrow_mut()
                .push(format!("undo {}", made.display()));
            Ok(())
        }
    }

    /// A v1-like cgroup (rules one by one), or with `together` a v2-like
    /// one that refuses all at once.
    #[derive(Default)]
    struct FakeCgroup {
        log: Log,
        refuse: Option<&'static str>,
        together: bool,
        allowed: Vec<DeviceRule>,
    }

    impl DeviceCgroup for FakeCgroup {
        fn allow(&mut self, rules: &[DeviceRule]) -> Result<(), Refused> {
            if self.together {
                if rules
                    .iter()
                    .any(|r| self.refuse == Some(r.to_string().as_str()))
                {
                    return Err(Refused {
                        rule: None,
                        reason: Box::new(Failed("EINVAL")),
                    });
                }
                self.log
                    .borrow_mut()
                    .push(format!("replace {}", rules.len()));
                return Ok(());
            }
            let (refuse, log) = (self.refuse, self.log.clone());
            one_by_one(
                rules,
                |rule| {
                    if refuse == Some(rule.to_string().as_str()) {
                        return Err(Box::new(Failed("EPERM")));
                    }
                    log.borrow_mut().push(format!("allow {rule}"));
                    Ok(())
                },
                |rule| {
                    log.borrow_mut().push(format!("deny {rule}"));
                    Ok(())
                },
            )?;
            self.allowed = rules.to_vec();
            Ok(())
        }

        fn revoke(&mut self) -> Result<(), Reason> {
            if self.together {
                self.log.borrow_mut().push("restore".into());
            }
            for rule in std::mem::take(&mut self.allowed).iter().rev() {
                self.log.borrow_mut().push(format!("deny {rule}"));
            }
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

    fn rules(minors: &[u32]) -> Vec<Attributed<DeviceRule>> {
        minors
            .iter()
            .map(|&minor| Attributed {
                plugin: "p".into(),
                what: DeviceRule {
                    kind: DeviceType::Char,
                    major: 195,
                    minor,
                    access: "rwm".into(),
                },
            })
            .collect()
    }

    #[test]
    fn steps_run_in_plan_order_and_are_all_audited() {
        let mut fake = Fake::default();
        let (actions, result) = run_steps(&mut fake, steps());
        result.unwrap();
        assert_eq!(
            *fake.log.borrow(),
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
            *fake.log.borrow(),
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
        let (actions, result) = allow_devices(&mut cgroup, &rules(&[0, 1]));
        let err = result.unwrap_err();
        assert_eq!(
            *cgroup.log.borrow(),
            ["allow c 195:0 rwm", "deny c 195:0 rwm"]
        );
        assert_eq!(
            err.to_string(),
            "plugin `p`: cgroup-allow c 195:1 rwm: EPERM"
        );
        assert_eq!(actions[0].outcome, Outcome::Undone);
        assert_eq!(actions[1].outcome, Outcome::Failed);
    }

    #[test]
    fn rules_come_before_the_rootfs_and_are_revoked_when_it_fails() {
        let log = Log::default();
        let mut cgroup = FakeCgroup {
            log: log.clone(),
            ..FakeCgroup::default()
        };
        let mut fake = Fake {
            log: log.clone(),
            fail_at: Some("/usr/lib/libp.so.1".into()),
        };
        let (actions, result) = apply(Some(&mut cgroup), &rules(&[0, 1]), || {
            run_steps(&mut fake, steps())
        });
        assert!(result.is_err());
        assert_eq!(
            *log.borrow(),
            [
                "allow c 195:0 rwm",
                "allow c 195:1 rwm",
                "create dir /etc/p",
                "undo /etc/p",
                "deny c 195:1 rwm",
                "deny c 195:0 rwm"
            ]
        );
        let summary: Vec<_> = actions.iter().map(|a| (a.action, a.outcome)).collect();
        assert_eq!(
            summary,
            [
                (CGROUP_ALLOW, Outcome::Undone),
                (CGROUP_ALLOW, Outcome::Undone),
                ("test", Outcome::Undone),
                ("test", Outcome::Failed),
            ]
        );
    }

    #[test]
    fn rules_refused_together_all_fail_with_one_error() {
        let mut cgroup = FakeCgroup {
            refuse: Some("c 195:1 rwm"),
            together: true,
            ..FakeCgroup::default()
        };
        let (actions, result) = allow_devices(&mut cgroup, &rules(&[0, 1]));
        assert_eq!(
            result.unwrap_err().to_string(),
            "plugin `p`: cgroup-allow c 195:0 rwm, c 195:1 rwm: EINVAL"
        );
        assert!(cgroup.log.borrow().is_empty());
        assert!(actions.iter().all(|a| a.outcome == Outcome::Failed));
        assert_eq!(actions.len(), 2);
    }

    #[test]
    fn a_program_replaced_for_a_failed_rootfs_is_restored() {
        let log = Log::default();
        let mut cgroup = FakeCgroup {
            log: log.clone(),
            together: true,
            ..FakeCgroup::default()
        };
        let mut fake = Fake {
            log: log.clone(),
            fail_at: Some("/usr/lib/libp.so.1".into()),
        };
        let (actions, result) = apply(Some(&mut cgroup), &rules(&[0, 1]), || {
            run_steps(&mut fake, steps())
        });
        assert!(result.is_err());
        assert_eq!(
            *log.borrow(),
            ["replace 2", "create dir /etc/p", "undo /etc/p", "restore"]
        );
        assert_eq!(actions[0].outcome, Outcome::Undone);
        assert_eq!(actions[1].outcome, Outcome::Undone);
    }

    #[test]
    fn a_rootfs_that_succeeds_keeps_the_rules() {
        let log = Log::default();
        let mut cgroup = FakeCgroup {
            log: log.clone(),
            ..FakeCgroup::default()
        };
        let mut fake = Fake {
            log: log.clone(),
            fail_at: None,
        };
        let (_, result) = apply(Some(&mut cgroup), &rules(&[0]), || {
            run_steps(&mut fake, steps())
        });
        result.unwrap();
        assert_eq!(log.borrow()[0], "allow c 195:0 rwm");
        assert!(!log.borrow().iter().any(|l| l.starts_with("deny")));
    }
}
