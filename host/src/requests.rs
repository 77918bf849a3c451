//! The one door into a plan. Every request a policy makes, whether a WASM
//! plugin through its `inject` imports or a seed-format static policy, is
//! checked here (count, path shape, allow-list, the host node or file, the
//! stage) and only then recorded, attributed to the policy that made it.

use std::collections::BTreeSet;
use std::sync::Arc;

use oci_spec::runtime::{Capability, LinuxDeviceType};

use crate::backend::Capabilities;
use crate::context::{ContainerContext, Stage};
use crate::hostfs::{clean_absolute, AllowList, FileKind, HostError, HostFs, HostStat};
use crate::limits::{self, PLAN_BYTES_MAX};
use crate::plan::{self, Conflict, Plan};

/// Most requests one policy may make for one container: with
/// [`PLAN_BYTES_MAX`], a bound on host memory.
const MAX_REQUESTS: usize = 10_000;

/// Container paths a policy may never claim: the runtime owns them.
const RESERVED: &[&str] = &["/proc", "/sys"];

/// Why a request was refused. Mirrors the WIT `error` variant, so a plugin
/// sees exactly these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Io(String),
}

impl From<HostError> for RequestError {
    fn from(e: HostError) -> Self {
        let text = e.to_string();
        match e {
            HostError::NotAllowed(_)
            | HostError::ResolvesElsewhere { .. }
            | HostError::Moved { .. }
            | HostError::Untrusted { .. } => RequestError::NotAllowed(text),
            HostError::NotFound(_) => RequestError::NotFound(text),
            HostError::Invalid { .. } => RequestError::Invalid(text),
            HostError::Io { .. } => RequestError::Io(text),
        }
    }
}

impl From<Conflict> for RequestError {
    fn from(c: Conflict) -> Self {
        RequestError::Conflict(c.to_string())
    }
}

/// A device node, as asked for.
#[derive(Debug, Clone, Default)]
pub struct DeviceRequest {
    /// Its type and major:minor are taken from this host node.
    pub host_path: String,
    /// None: the host path.
    pub container_path: Option<String>,
    /// None: the host node's permission bits.
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Device cgroup access; None: "rwm".
    pub permissions: Option<String>,
}

/// A file or directory from the host, as asked for.
#[derive(Debug, Clone)]
pub struct FileRequest {
    pub host_path: String,
    /// None: the host path.
    pub container_path: Option<String>,
    pub role: plan::FileRole,
    pub transfer: plan::Transfer,
}

/// Which device nodes a policy may add at all, whatever its allow-list
/// permits: the manifest's `device-rule`, set by an administrator.
///
/// Policies select devices by the container's environment, which the image
/// writes: `NVIDIA_VISIBLE_DEVICES=all` is in every CUDA image. Where a
/// device plugin allocates devices (Kubernetes), that allocation, not the
/// image, must bound what the container gets, for every policy alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceRule {
    /// Any node the allow-list permits.
    #[default]
    Any,
    /// Only nodes whose type and major:minor the spec's `linux.devices`
    /// already lists: what the runtime makes and allows anyway.
    SpecListed,
    /// Only for privileged containers: `CAP_SYS_ADMIN` in the process's
    /// bounding set, as NVIDIA's toolkit defines them.
    PrivilegedOnly,
}

impl DeviceRule {
    pub fn name(self) -> &'static str {
        match self {
            DeviceRule::Any => "any",
            DeviceRule::SpecListed => "spec-listed",
            DeviceRule::PrivilegedOnly => "privileged-only",
        }
    }
}

/// A device rule with what it needs to know of the container, read once.
#[derive(Debug, Clone, Default)]
pub struct DeviceGate {
    rule: DeviceRule,
    /// Type letter and major:minor of each `linux.devices` entry.
    listed: BTreeSet<(char, u32, u32)>,
    privileged: bool,
}

impl DeviceGate {
    pub fn new(rule: DeviceRule, ctx: &ContainerContext) -> Self {
        let devices = ctx.spec.linux().as_ref().and_then(|l| l.devices().as_ref());
        let listed = devices
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let letter = match d.typ() {
                    // `u` is an unbuffered character device: a character device.
                    LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                    LinuxDeviceType::B => 'b',
                    _ => return None,
                };
                Some((
                    letter,
                    u32::try_from(d.major()).ok()?,
                    u32::try_from(d.minor()).ok()?,
                ))
            })
            .collect();
        let bounding = ctx
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref());
        DeviceGate {
            rule,
            listed,
            privileged: bounding.is_some_and(|caps| caps.contains(&Capability::SysAdmin)),
        }
    }

    /// Whether `policy` may add `device`, a node of the host.
    fn check(&self, policy: &str, device: &plan::Device) -> Result<(), RequestError> {
        let why = match self.rule {
            DeviceRule::Any => return Ok(()),
            DeviceRule::SpecListed => {
                let number = (device.kind.letter(), device.major, device.minor);
                if self.listed.contains(&number) {
                    return Ok(());
                }
                "the spec's linux.devices does not list that device"
            }
            DeviceRule::PrivilegedOnly => {
                if self.privileged {
                    return Ok(());
                }
                "the container is not privileged (no CAP_SYS_ADMIN in process.capabilities.bounding)"
            }
        };
        Err(RequestError::NotAllowed(format!(
            "device-rule {}: plugin `{policy}` may not add {} ({} {}:{}): {why}",
            self.rule.name(),
            device.host_path,
            device.kind.letter(),
            device.major,
            device.minor,
        )))
    }
}

/// One policy's requests for one container, and the plan they make.
pub struct Requests {
    policy: String,
    /// What the back end serving this stage can carry out.
    can: Capabilities,
    host: Arc<HostFs>,
    allow: AllowList,
    devices: DeviceGate,
    plan: Plan,
    count: usize,
    /// Bytes of strings the requests so far handed the host.
    bytes: usize,
}

impl Requests {
    pub fn new(
        policy: &str,
        stage: Stage,
        host: Arc<HostFs>,
        allow: AllowList,
        devices: DeviceGate,
    ) -> Self {
        Requests {
            policy: policy.to_string(),
            can: Capabilities::of(stage),
            host,
            allow,
            devices,
            plan: Plan::default(),
            count: 0,
            bytes: 0,
        }
    }

    /// The host as this policy may see it.
    pub fn host(&self) -> &HostFs {
        &self.host
    }

    pub fn allow(&self) -> &AllowList {
        &self.allow
    }

    /// The plan so far, leaving an empty one.
    pub fn take_plan(&mut self) -> Plan {
        let mut plan = std::mem::take(&mut self.plan);
        plan.refresh_library_dirs();
        plan
    }

    /// A host path the policy may read, with its lstat.
    pub fn stat(&self, path: &str) -> Result<HostStat, RequestError> {
        limits::path("host path", path)?;
        Ok(self.host.stat(&self.allow, path)?)
    }

    /// Refuses a request the back end cannot carry out, naming the back end.
    fn supported(&self, can: bool, what: &str, action: &str) -> Result<(), RequestError> {
        if can {
            return Ok(());
        }
        Err(RequestError::Unsupported(format!(
            "{what}: {} cannot {action}",
            self.can.name
        )))
    }

    /// The first step of every request: count it, and charge the bytes of
    /// its strings to the plan's budget.
    fn count(&mut self, strings: &[&str]) -> Result<(), RequestError> {
        self.count += 1;
        if self.count > MAX_REQUESTS {
            return Err(RequestError::Invalid(format!(
                "more than {MAX_REQUESTS} requests from one policy"
            )));
        }
        self.bytes += strings.iter().map(|s| s.len()).sum::<usize>();
        if self.bytes > PLAN_BYTES_MAX {
            return Err(RequestError::Invalid(format!(
                "more than {PLAN_BYTES_MAX} bytes of paths and values in the requests of one policy"
            )));
        }
        Ok(())
    }

    pub fn add_device(&mut self, d: DeviceRequest) -> Result<(), RequestError> {
        limits::path("host path", &d.host_path)?;
        if let Some(at) = &d.container_path {
            limits::path("container path", at)?;
        }
        self.count(&[
            &d.host_path,
            d.container_path.as_deref().unwrap_or_default(),
            d.permissions.as_deref().unwrap_or_default(),
        ])?;
        self.supported(self.can.devices(), &d.host_path, "allow devices")?;
        let found = self.host.lookup(&self.allow, &d.host_path)?;
        let st = found.stat;
        let kind = match st.kind {
            FileKind::CharDevice => plan::DeviceType::Char,
            FileKind::BlockDevice => plan::DeviceType::Block,
            _ => {
                return Err(RequestError::Invalid(format!(
                    "{}: is not a device node",
                    d.host_path
                )))
            }
        };
        let permissions = d.permissions.unwrap_or_else(|| "rwm".into());
        let distinct: BTreeSet<char> = permissions.chars().collect();
        if permissions.is_empty()
            || distinct.len() != permissions.len()
            || !distinct.iter().all(|c| "rwm".contains(*c))
        {
            return Err(RequestError::Invalid(format!(
                "{}: device permissions `{}` are not a subset of \"rwm\"",
                d.host_path,
                limits::shorten(&permissions)
            )));
        }
        let file_mode = d.file_mode.unwrap_or(st.mode & 0o777);
        if file_mode > 0o777 {
            return Err(RequestError::Invalid(format!(
                "{}: device file mode {file_mode:o} has bits beyond 0777",
                d.host_path
            )));
        }
        let at = d.container_path.as_deref().unwrap_or(&d.host_path);
        let device = plan::Device {
            plugin: self.policy.clone(),
            container_path: container_path(at)?,
            host_path: found.real.display().to_string(),
            kind,
            major: st.major,
            minor: st.minor,
            file_mode,
            uid: d.uid.unwrap_or(st.uid),
            gid: d.gid.unwrap_or(st.gid),
            permissions,
        };
        // By number, not by path: the number is what the container gets
        // (the node and the cgroup rule are made from it), the path only
        // names it. A listed device's node and rule in the plan widen
        // nothing: the runtime makes and allows that device already, and
        // the executor accepts an identical node at the same path.
        self.devices.check(&self.policy, &device)?;
        self.plan.add_device(device)?;
        Ok(())
    }

    pub fn add_file(&mut self, f: FileRequest) -> Result<(), RequestError> {
        limits::path("host path", &f.host_path)?;
        if let Some(at) = &f.container_path {
            limits::path("container path", at)?;
        }
        self.count(&[
            &f.host_path,
            f.container_path.as_deref().unwrap_or_default(),
        ])?;
        let found = self.host.lookup(&self.allow, &f.host_path)?;
        let directory = match found.stat.kind {
            FileKind::Regular => false,
            FileKind::Directory if f.transfer == plan::Transfer::Bind => true,
            FileKind::Directory => {
                return Err(RequestError::Invalid(format!(
                    "{}: a directory can be bind-mounted, not copied",
                    f.host_path
                )))
            }
            FileKind::Symlink => {
                return Err(RequestError::Invalid(format!(
                    "{}: is a symlink; request the file it names, and a `symlink` for the link",
                    f.host_path
                )))
            }
            _ => {
                return Err(RequestError::Invalid(format!(
                    "{}: is not a regular file or directory (use add-device for device nodes)",
                    f.host_path
                )))
            }
        };
        if f.transfer == plan::Transfer::Copy {
            self.supported(self.can.copies, &f.host_path, "copy files (ask for a bind)")?;
        }
        // The plan names the source as it really is: the executor opens
        // only a path that still resolves to itself.
        let at = f.container_path.as_deref().unwrap_or(&f.host_path);
        self.plan.add_file(plan::File {
            plugin: self.policy.clone(),
            host_path: found.real.display().to_string(),
            container_path: container_path(at)?,
            role: f.role,
            transfer: f.transfer,
            directory,
        })?;
        Ok(())
    }

    pub fn make_dir(&mut self, path: &str, mode: u32) -> Result<(), RequestError> {
        limits::path("container path", path)?;
        self.count(&[path])?;
        if mode > 0o7777 {
            return Err(RequestError::Invalid(format!(
                "{path}: mode {mode:o} is not a file mode"
            )));
        }
        self.plan.add_directory(plan::Directory {
            plugin: self.policy.clone(),
            container_path: container_path(path)?,
            mode,
        })?;
        Ok(())
    }

    pub fn symlink(&mut self, target: &str, path: &str) -> Result<(), RequestError> {
        limits::link_target(target)?;
        limits::path("container path", path)?;
        self.count(&[target, path])?;
        self.supported(self.can.symlinks, path, "make symlinks")?;
        if target.is_empty() || target.contains('\0') {
            return Err(RequestError::Invalid(format!(
                "{path}: a symlink target must be non-empty and free of NUL bytes"
            )));
        }
        self.plan.add_symlink(plan::Symlink {
            plugin: self.policy.clone(),
            container_path: container_path(path)?,
            target: target.to_string(),
        })?;
        Ok(())
    }

    pub fn set_env(&mut self, name: &str, value: &str) -> Result<(), RequestError> {
        limits::env_entry(name, value)?;
        self.count(&[name, value])?;
        self.supported(self.can.env, name, "change the container's environment")?;
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(RequestError::Invalid(format!(
                "`{name}` is not a valid environment variable name"
            )));
        }
        self.plan.add_env(plan::EnvVar {
            plugin: self.policy.clone(),
            name: name.to_string(),
            value: value.to_string(),
        })?;
        Ok(())
    }

    pub fn run_ldconfig(&mut self) -> Result<(), RequestError> {
        self.count(&[])?;
        self.supported(
            self.can.ldconfig,
            "/etc/ld.so.cache",
            "refresh the linker cache",
        )?;
        self.plan.request_ldconfig(&self.policy);
        Ok(())
    }
}

/// A container path a policy may claim.
fn container_path(path: &str) -> Result<String, RequestError> {
    let clean =
        clean_absolute(path).map_err(|why| RequestError::Invalid(format!("{path}: {why}")))?;
    if clean.as_os_str() == "/" || RESERVED.iter().any(|r| clean.starts_with(r)) {
        return Err(RequestError::Invalid(format!(
            "{path}: the container runtime owns this path"
        )));
    }
    Ok(clean.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container whose spec lists `devices` and whose process has the
    /// bounding capabilities `bounding`.
    fn container(devices: serde_json::Value, bounding: &[&str]) -> ContainerContext {
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {
                "user": {"uid": 0, "gid": 0}, "args": ["/bin/sh"], "cwd": "/",
                "capabilities": {"bounding": bounding},
            },
            "linux": {"devices": devices},
        });
        ContainerContext {
            spec: serde_json::from_value(spec).unwrap(),
            ..ContainerContext::empty()
        }
    }

    fn gpu(minor: u32) -> plan::Device {
        plan::Device {
            plugin: "nvidia".into(),
            container_path: format!("/dev/nvidia{minor}"),
            host_path: format!("/dev/nvidia{minor}"),
            kind: plan::DeviceType::Char,
            major: 195,
            minor,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
            permissions: "rwm".into(),
        }
    }

    fn one_gpu_listed() -> serde_json::Value {
        serde_json::json!([{"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0}])
    }

    #[test]
    fn any_admits_every_device() {
        let gate = DeviceGate::new(DeviceRule::Any, &container(serde_json::json!([]), &[]));
        assert_eq!(gate.check("nvidia", &gpu(1)), Ok(()));
    }

    #[test]
    fn spec_listed_admits_only_listed_numbers_and_names_rule_plugin_and_node() {
        let gate = DeviceGate::new(
            DeviceRule::SpecListed,
            &container(one_gpu_listed(), &["CAP_SYS_ADMIN"]),
        );
        assert_eq!(gate.check("nvidia", &gpu(0)), Ok(()));
        assert_eq!(
            gate.check("nvidia", &gpu(1)),
            Err(RequestError::NotAllowed(
                "device-rule spec-listed: plugin `nvidia` may not add /dev/nvidia1 (c 195:1): \
                 the spec's linux.devices does not list that device"
                    .into()
            )),
            "privilege does not matter to spec-listed"
        );
    }

    #[test]
    fn spec_listed_matches_by_number_and_type_not_by_path() {
        // The device plugin put GPU 1 at /dev/nvidia0: the number decides.
        let listed = serde_json::json!([
            {"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 1},
            {"path": "/dev/sda", "type": "b", "major": 195, "minor": 2},
        ]);
        let gate = DeviceGate::new(DeviceRule::SpecListed, &container(listed, &[]));
        assert_eq!(gate.check("nvidia", &gpu(1)), Ok(()));
        assert!(
            gate.check("nvidia", &gpu(0)).is_err(),
            "same path, other number"
        );
        assert!(gate.check("nvidia", &gpu(2)).is_err(), "a block device");
    }

    #[test]
    fn privileged_only_needs_cap_sys_admin_in_the_bounding_set() {
        let unprivileged = container(one_gpu_listed(), &["CAP_CHOWN", "CAP_NET_ADMIN"]);
        let gate = DeviceGate::new(DeviceRule::PrivilegedOnly, &unprivileged);
        assert_eq!(
            gate.check("nvidia", &gpu(0)),
            Err(RequestError::NotAllowed(
                "device-rule privileged-only: plugin `nvidia` may not add /dev/nvidia0 \
                 (c 195:0): the container is not privileged (no CAP_SYS_ADMIN in \
                 process.capabilities.bounding)"
                    .into()
            )),
            "being listed does not matter to privileged-only"
        );
        let privileged = container(serde_json::json!([]), &["CAP_SYS_ADMIN"]);
        let gate = DeviceGate::new(DeviceRule::PrivilegedOnly, &privileged);
        assert_eq!(gate.check("nvidia", &gpu(1)), Ok(()));
        // No process capabilities at all: not privileged.
        let gate = DeviceGate::new(DeviceRule::PrivilegedOnly, &ContainerContext::empty());
        assert!(gate.check("nvidia", &gpu(1)).is_err());
    }

    fn requests(stage: Stage) -> Requests {
        let host = HostFs::open(std::path::Path::new("/")).unwrap();
        let allow = AllowList::new(&["/dev/null".into()]).unwrap();
        let devices = DeviceGate::new(DeviceRule::Any, &ContainerContext::empty());
        Requests::new("p", stage, Arc::new(host), allow, devices)
    }

    fn invalid(r: Result<(), RequestError>) -> String {
        match r {
            Err(RequestError::Invalid(m)) => m,
            other => panic!("expected `invalid`, got {other:?}"),
        }
    }

    /// An absolute path of `len` bytes made of 200-byte components.
    fn long_path(len: usize) -> String {
        let mut path = String::new();
        while path.len() < len {
            path.push('/');
            path.push_str(&"a".repeat(200.min(len - path.len()).max(1)));
        }
        path.truncate(len);
        path
    }

    #[test]
    fn a_container_path_over_path_max_is_refused_by_every_request() {
        let huge = long_path(8 << 20);
        let mut r = requests(Stage::RuntimeShim);
        let m = invalid(r.make_dir(&huge, 0o755));
        assert!(m.contains("at most 4095 bytes long (PATH_MAX)"), "{m}");
        invalid(r.symlink("target", &huge));
        invalid(r.add_device(DeviceRequest {
            host_path: "/dev/null".into(),
            container_path: Some(huge.clone()),
            ..Default::default()
        }));
        invalid(r.add_file(FileRequest {
            host_path: "/dev/null".into(),
            container_path: Some(huge),
            role: plan::FileRole::Misc,
            transfer: plan::Transfer::Bind,
        }));
        assert!(r.take_plan().is_empty());
        r.make_dir(&long_path(4095), 0o755).unwrap();
    }

    #[test]
    fn a_host_path_over_path_max_is_invalid_before_the_allow_list_is_asked() {
        let huge = long_path(1 << 20);
        let mut r = requests(Stage::Prestart);
        let m = invalid(r.add_device(DeviceRequest {
            host_path: huge.clone(),
            ..Default::default()
        }));
        assert!(m.contains("a host path may be at most 4095"), "{m}");
        invalid(r.add_file(FileRequest {
            host_path: huge.clone(),
            container_path: None,
            role: plan::FileRole::Misc,
            transfer: plan::Transfer::Bind,
        }));
        let m = match r.stat(&huge) {
            Err(RequestError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.len() < 300, "the refusal is short: {} bytes", m.len());
    }

    #[test]
    fn a_path_component_over_name_max_is_refused() {
        let mut r = requests(Stage::Prestart);
        let m = invalid(r.make_dir(&format!("/opt/{}", "n".repeat(256)), 0o755));
        assert!(m.contains("(NAME_MAX)"), "{m}");
        r.make_dir(&format!("/opt/{}", "n".repeat(255)), 0o755)
            .unwrap();
    }

    #[test]
    fn a_symlink_target_over_path_max_is_refused() {
        let mut r = requests(Stage::Prestart);
        let m = invalid(r.symlink(&"t".repeat(4096), "/etc/link"));
        assert!(m.contains("symlink target may be at most 4095"), "{m}");
        r.symlink(&"t".repeat(4095), "/etc/link").unwrap();
    }

    #[test]
    fn an_environment_entry_over_max_arg_strlen_is_refused() {
        let mut r = requests(Stage::RuntimeShim);
        let m = invalid(r.set_env("BIG", &"v".repeat(1 << 20)));
        assert!(m.contains("(MAX_ARG_STRLEN)"), "{m}");
        let m = invalid(r.set_env(&"N".repeat(1 << 20), "v"));
        assert!(m.len() < 300, "{} bytes", m.len());
        r.set_env("BIG", &"v".repeat(100_000)).unwrap();
    }

    #[test]
    fn overlong_device_permissions_are_refused_without_being_repeated() {
        let mut r = requests(Stage::Prestart);
        let m = invalid(r.add_device(DeviceRequest {
            host_path: "/dev/null".into(),
            permissions: Some("r".repeat(1 << 20)),
            ..Default::default()
        }));
        assert!(m.contains("not a subset"), "{m}");
        assert!(m.len() < 300, "{} bytes", m.len());
    }

    #[test]
    fn the_strings_of_one_policys_requests_are_capped_in_total() {
        let mut r = requests(Stage::Prestart);
        // 4000-byte paths: the budget holds 1048 of them.
        let path = |i: usize| format!("/{i:08}{}", &long_path(4000)[9..]);
        let fits = PLAN_BYTES_MAX / 4000;
        for i in 0..fits {
            r.make_dir(&path(i), 0o755).unwrap();
        }
        let m = invalid(r.make_dir(&path(fits), 0o755));
        assert!(
            m.contains(&format!("more than {PLAN_BYTES_MAX} bytes")),
            "{m}"
        );
        assert_eq!(r.take_plan().directories.len(), fits);
    }
}
