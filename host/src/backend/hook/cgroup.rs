//! The container's device cgroup.
//!
//! cgroup v1: rules go to the container's `devices.allow` (and back out
//! through `devices.deny`). cgroup v2 has no such files: the runtime's BPF
//! device program would have to be replaced, which hookhost does not do;
//! there it refuses plans with devices and says to use the runtime-shim or
//! CDI path, where the runtime itself allows the devices.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::target::TargetError;
use super::{DeviceCgroup, Reason};
use crate::lowering::DeviceRule;

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

/// A v1 devices cgroup directory.
pub struct V1 {
    dir: PathBuf,
}

impl V1 {
    /// The devices cgroup of the container whose init is `pid`, or an
    /// explanation of why there is none.
    pub fn of_pid(pid: i32) -> Result<Self, TargetError> {
        Self::of_process(&pid.to_string())
    }

    /// The devices cgroup hookhost itself is in: a createContainer hook is
    /// in the container's.
    pub fn of_self() -> Result<Self, TargetError> {
        Self::of_process("self")
    }

    /// `pid`: a pid, or `self`, under /proc.
    fn of_process(pid: &str) -> Result<Self, TargetError> {
        let path = format!("/proc/{pid}/cgroup");
        let proc_cgroup =
            std::fs::read_to_string(&path).map_err(TargetError::io("reading", &path))?;
        let mount = Path::new("/sys/fs/cgroup/devices");
        let dir = v1_devices_dir(&proc_cgroup, mount).ok_or_else(|| {
            TargetError::NoDevicesController {
                pid: pid.to_string(),
            }
        })?;
        // The directory must be the process's own cgroup as this host sees
        // it. Under a cgroup namespace, /proc/PID/cgroup is relative to the
        // namespace's root ("/"), which would name the host's root cgroup:
        // rules written there would miss the container, and a revoke would
        // reach every container on the host.
        let member = match pid {
            "self" => std::process::id().to_string(),
            pid => pid.to_string(),
        };
        let procs = dir.join("cgroup.procs");
        let procs = std::fs::read_to_string(&procs).map_err(TargetError::io("reading", procs))?;
        if !procs.lines().any(|p| p.trim() == member) {
            return Err(TargetError::NotInCgroup {
                pid: pid.to_string(),
                dir,
            });
        }
        if !dir.join("devices.allow").exists() {
            return Err(TargetError::NoDevicesAllow {
                dir,
                mount: mount.to_path_buf(),
            });
        }
        Ok(V1 { dir })
    }

    fn write(&self, file: &str, rule: &DeviceRule) -> Result<(), Reason> {
        let path = self.dir.join(file);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(rule.to_string().as_bytes()))
            .map_err(|source| {
                Box::new(CgroupError {
                    path: path.clone(),
                    source,
                }) as Reason
            })
    }
}

/// A rule the cgroup refused, with the file it went to.
#[derive(Debug, thiserror::Error)]
#[error("writing to {}: {source}", path.display())]
pub struct CgroupError {
    path: PathBuf,
    source: std::io::Error,
}

impl DeviceCgroup for V1 {
    fn allow(&mut self, rule: &DeviceRule) -> Result<(), Reason> {
        self.write("devices.allow", rule)
    }

    fn deny(&mut self, rule: &DeviceRule) -> Result<(), Reason> {
        self.write("devices.deny", rule)
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

    #[test]
    fn a_v2_only_process_has_no_devices_hierarchy() {
        assert_eq!(v1_devices_dir("0::/user.slice/x\n", Path::new("/m")), None);
    }
}
