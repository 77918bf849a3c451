//! The container's device cgroup.
//!
//! cgroup v1: rules go to the container's `devices.allow` (and back out
//! through `devices.deny`). cgroup v2 has no such files: the runtime's BPF
//! device program decides, so [`V2`] replaces it with one built from the
//! spec's rules and the plan's (see [`super::devices_bpf`]), and puts the
//! runtime's back on a revoke.
//!
//! Which one the host has is read from the filesystem at `/sys/fs/cgroup`:
//! cgroup2 there means v2 (the hybrid layout's v2 tree at
//! `/sys/fs/cgroup/unified` holds no controllers and no device programs of
//! runc's, so a hybrid host is v1).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::LinuxDeviceCgroup;

use super::devices_bpf::{self, BpfError, Rule};
use super::target::TargetError;
use super::{one_by_one, DeviceCgroup, Reason, Refused};
use crate::lowering::DeviceRule;
use crate::sys;

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The device cgroup of the container whose init is `pid` (`self`: the
/// one hookhost is in, as a createContainer hook is in the container's),
/// v2 when `/sys/fs/cgroup` is a cgroup2 filesystem, else v1. `spec_rules`
/// are the spec's `linux.resources.devices`, which v2 rebuilds the
/// runtime's program from.
pub fn of_process(
    pid: Option<i32>,
    spec_rules: &[LinuxDeviceCgroup],
) -> Result<Box<dyn DeviceCgroup>, TargetError> {
    let pid = pid.map_or("self".to_string(), |p| p.to_string());
    let path = format!("/proc/{pid}/cgroup");
    let proc_cgroup = std::fs::read_to_string(&path).map_err(TargetError::io("reading", &path))?;
    let root = nix::sys::statfs::statfs(CGROUP_ROOT).map_err(|source| TargetError::Io {
        op: "statfs",
        path: CGROUP_ROOT.into(),
        source: source.into(),
    })?;
    if root.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        let dir = v2_dir(&proc_cgroup, Path::new(CGROUP_ROOT))
            .ok_or_else(|| TargetError::NoCgroupV2 { pid: pid.clone() })?;
        check_member(&pid, &dir)?;
        return V2::open(dir, spec_rules).map(|v2| Box::new(v2) as _);
    }
    let mount = Path::new(CGROUP_ROOT).join("devices");
    let dir = v1_devices_dir(&proc_cgroup, &mount)
        .ok_or_else(|| TargetError::NoDevicesController { pid: pid.clone() })?;
    check_member(&pid, &dir)?;
    if !dir.join("devices.allow").exists() {
        return Err(TargetError::NoDevicesAllow { dir, mount });
    }
    Ok(Box::new(V1 {
        dir,
        allowed: Vec::new(),
    }))
}

/// The directory must be the process's own cgroup as this host sees it.
/// Under a cgroup namespace, /proc/PID/cgroup is relative to the
/// namespace's root ("/"), which would name the host's root cgroup: rules
/// written there would miss the container, and a revoke would reach every
/// container on the host.
fn check_member(pid: &str, dir: &Path) -> Result<(), TargetError> {
    let member = match pid {
        "self" => std::process::id().to_string(),
        pid => pid.to_string(),
    };
    let procs = dir.join("cgroup.procs");
    let procs = std::fs::read_to_string(&procs).map_err(TargetError::io("reading", procs))?;
    if !procs.lines().any(|p| p.trim() == member) {
        return Err(TargetError::NotInCgroup {
            pid: pid.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The v1 devices cgroup directory of `pid`, found through
/// `/proc/PID/cgroup` under the v1 `devices` hierarchy mounted at `mount`
/// (normally `/sys/fs/cgroup/devices`).
pub fn v1_devices_dir(proc_cgroup: &str, mount: &Path) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|line| {
        // hierarchy-id:controllers:path
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "devices")
            .then(|| mount.join(path.trim_start_matches('/')))
    })
}

/// The v2 cgroup directory in `/proc/PID/cgroup` (its `0::/path` line)
/// under the v2 hierarchy mounted at `mount`.
pub fn v2_dir(proc_cgroup: &str, mount: &Path) -> Option<PathBuf> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| mount.join(path.trim_start_matches('/')))
}

/// The device cgroup's failures, each with its file or call.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("writing to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{call} on {}: {source}", dir.display())]
    Bpf {
        call: &'static str,
        dir: PathBuf,
        source: Errno,
    },
    #[error("BPF_PROG_LOAD of the device program ({insns} instructions) for {}: {source}{}",
        dir.display(), if log.is_empty() { String::new() } else { format!(": {log}") })]
    Load {
        dir: PathBuf,
        insns: usize,
        source: Errno,
        log: String,
    },
    #[error(
        "{} has {count} device programs attached, where the runtime attaches one: hookhost \
         cannot tell the runtime's from another's, so it replaces none",
        dir.display()
    )]
    NotOneProgram { dir: PathBuf, count: usize },
    #[error(transparent)]
    Rule(#[from] BpfError),
}

/// A v1 devices cgroup directory.
pub struct V1 {
    dir: PathBuf,
    /// What `allow` wrote, for `revoke`.
    allowed: Vec<DeviceRule>,
}

impl V1 {
    fn write(&self, file: &str, rule: &DeviceRule) -> Result<(), Reason> {
        let path = self.dir.join(file);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(rule.to_string().as_bytes()))
            .map_err(|source| Box::new(CgroupError::Write { path, source }) as Reason)
    }
}

impl DeviceCgroup for V1 {
    fn allow(&mut self, rules: &[DeviceRule]) -> Result<(), Refused> {
        one_by_one(
            rules,
            |rule| self.write("devices.allow", rule),
            |rule| self.write("devices.deny", rule),
        )?;
        self.allowed = rules.to_vec();
        Ok(())
    }

    fn revoke(&mut self) -> Result<(), Reason> {
        // Every rule, even past a failure; the first failure is returned.
        let allowed = std::mem::take(&mut self.allowed);
        let mut first = None;
        for rule in allowed.iter().rev() {
            if let Err(e) = self.write("devices.deny", rule) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A cgroup v2 directory, whose device program hookhost replaces.
pub struct V2 {
    dir: PathBuf,
    fd: OwnedFd,
    spec_rules: Vec<LinuxDeviceCgroup>,
    /// After `allow`: the runtime's program and the one that replaced it.
    replaced: Option<(OwnedFd, OwnedFd)>,
}

impl V2 {
    fn open(dir: PathBuf, spec_rules: &[LinuxDeviceCgroup]) -> Result<Self, TargetError> {
        let fd = std::fs::File::open(&dir)
            .map_err(TargetError::io("opening", &dir))?
            .into();
        Ok(V2 {
            dir,
            fd,
            spec_rules: spec_rules.to_vec(),
            replaced: None,
        })
    }

    fn bpf(&self, call: &'static str) -> impl FnOnce(Errno) -> CgroupError + '_ {
        move |source| CgroupError::Bpf {
            call,
            dir: self.dir.clone(),
            source,
        }
    }

    /// The whole of `allow`: one error for all the rules.
    fn replace(&mut self, rules: &[DeviceRule]) -> Result<(), CgroupError> {
        let (flags, ids) =
            sys::bpf_query_device_programs(&self.fd).map_err(self.bpf("BPF_PROG_QUERY"))?;
        // The runtime's one program, or nothing to go on.
        let [id] = ids[..] else {
            return Err(CgroupError::NotOneProgram {
                dir: self.dir.clone(),
                count: ids.len(),
            });
        };
        let original = sys::bpf_program_by_id(id).map_err(self.bpf("BPF_PROG_GET_FD_BY_ID"))?;
        // The runtime's rules as it applied them (the spec's, then its
        // defaults), then the plan's: these come last, so they win.
        let mut all = Vec::new();
        for rule in &self.spec_rules {
            all.push(Rule::from_spec(rule)?);
        }
        all.extend(devices_bpf::runc_defaults());
        for rule in rules {
            all.push(Rule::allowing(rule)?);
        }
        let insns = devices_bpf::program(&all);
        let ours =
            sys::bpf_load_device_program(&insns, "hookhost_dev").map_err(|(source, log)| {
                CgroupError::Load {
                    dir: self.dir.clone(),
                    insns: insns.len(),
                    source,
                    log,
                }
            })?;
        self.attach(&ours, flags, &original)?;
        self.replaced = Some((original, ours));
        Ok(())
    }

    /// Attaches `program` in the place of `old`. With BPF_F_ALLOW_MULTI
    /// (runc's way) every attached program must allow, so adding ours would
    /// change nothing: it replaces runc's. Without it, an attach replaces
    /// the one program anyway.
    fn attach(&self, program: &OwnedFd, flags: u32, old: &OwnedFd) -> Result<(), CgroupError> {
        let (flags, replace) = if flags & sys::BPF_F_ALLOW_MULTI != 0 {
            (flags | sys::BPF_F_REPLACE, Some(old.as_fd()))
        } else {
            (flags, None)
        };
        sys::bpf_attach_device_program(&self.fd, program, flags, replace)
            .map_err(self.bpf("BPF_PROG_ATTACH"))
    }
}

impl DeviceCgroup for V2 {
    fn allow(&mut self, rules: &[DeviceRule]) -> Result<(), Refused> {
        self.replace(rules).map_err(|e| Refused {
            rule: None,
            reason: Box::new(e),
        })
    }

    /// Puts the runtime's program back in the place of ours.
    fn revoke(&mut self) -> Result<(), Reason> {
        let Some((original, ours)) = self.replaced.take() else {
            return Ok(());
        };
        let (flags, _) =
            sys::bpf_query_device_programs(&self.fd).map_err(self.bpf("BPF_PROG_QUERY"))?;
        self.attach(&original, flags, &ours)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_devices_hierarchy_among_the_controllers() {
        let text = "12:pids:/user.slice\n5:devices:/system.slice/runc-abc.scope\n0::/init.scope\n";
        assert_eq!(
            v1_devices_dir(text, Path::new("/sys/fs/cgroup/devices")),
            Some(PathBuf::from(
                "/sys/fs/cgroup/devices/system.slice/runc-abc.scope"
            ))
        );
    }

    /// The kernel's verifier accepts every shape of program: the deny-all
    /// ending, a rule cut off by allow-all, access subsets, wildcards.
    #[test]
    fn every_shape_of_program_passes_the_kernels_verifier() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root: it loads BPF programs"
        );
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 195, "access": "rw"},
                {"allow": false, "type": "b", "minor": 3, "access": "m"}]"#,
        )
        .unwrap();
        let mut rules: Vec<Rule> = spec.iter().map(|r| Rule::from_spec(r).unwrap()).collect();
        rules.extend(devices_bpf::runc_defaults());
        let allow_all: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": true, "access": "rwm"}"#).unwrap();
        let cut = vec![rules[1].clone(), Rule::from_spec(&allow_all).unwrap()];
        for rules in [vec![], rules, cut] {
            let insns = devices_bpf::program(&rules);
            if let Err((errno, log)) = sys::bpf_load_device_program(&insns, "hookhost_test") {
                panic!("{} instructions: {errno}: {log}", insns.len());
            }
        }
        // And it would say so: a program without its exit is refused, with
        // the verifier's reason.
        let mut insns = devices_bpf::program(&[]);
        insns.pop();
        let (errno, log) = sys::bpf_load_device_program(&insns, "hookhost_test").unwrap_err();
        assert_eq!(errno, Errno::EINVAL);
        assert!(log.contains("exit"), "{log}");
    }

    #[test]
    fn the_v2_cgroup_is_the_0_line() {
        let text = "12:pids:/user.slice\n0::/default/runc-abc\n";
        assert_eq!(
            v2_dir(text, Path::new("/sys/fs/cgroup")),
            Some(PathBuf::from("/sys/fs/cgroup/default/runc-abc"))
        );
        assert_eq!(v2_dir("5:devices:/x\n", Path::new("/m")), None);
    }

    #[test]
    fn a_v2_only_process_has_no_devices_hierarchy() {
        assert_eq!(v1_devices_dir("0::/user.slice/x\n", Path::new("/m")), None);
    }
}
