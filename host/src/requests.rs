//! The one door into a plan. Every request a policy makes, whether a WASM
//! plugin through its `inject` imports or a seed-format static policy, is
//! checked here (count, path shape, allow-list, the host node or file, the
//! stage) and only then recorded, attributed to the policy that made it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use oci_spec::runtime::LinuxDeviceType;

use crate::allow::{clean_absolute, AllowList};
use crate::backend::Capabilities;
use crate::context::{ContainerContext, Stage};
use crate::hostfs::{FileKind, HostError, HostFs, HostStat};
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
        // A CDI spec is made for no container: root writes it and the
        // engine (a device plugin, the user of podman) hands its devices out.
        let rule = if ctx.stage == Stage::Cdi {
            DeviceRule::Any
        } else {
            rule
        };
        DeviceGate {
            rule,
            listed,
            privileged: ctx.privileged(),
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

    /// What the back end serving this stage can carry out.
    pub fn capabilities(&self) -> Capabilities {
        self.can
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
            // A daemon's socket (nvidia-persistenced's): the container
            // connects to it through the read-only bind, which stops
            // writes to files, not connections.
            FileKind::Socket
                if f.transfer == plan::Transfer::Bind && f.role == plan::FileRole::Misc =>
            {
                false
            }
            FileKind::Socket => {
                return Err(RequestError::Invalid(format!(
                    "{}: a socket can be bind-mounted as `misc`, not copied or given another role",
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
                    "{}: is not a regular file, directory or socket (device nodes: add-device)",
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

    /// The names in the image directory `dir` of the rootfs at `rootfs`.
    pub fn image_entries(&mut self, rootfs: &Path, dir: &str) -> Result<Vec<String>, RequestError> {
        limits::path("container path", dir)?;
        self.count(&[dir])?;
        let dir = container_path(dir)?;
        self.supported(self.can.image, &dir, "read the container's image")?;
        crate::image::entries(rootfs, &dir)
    }

    /// ldconfig with the image directory `dir` first. Only for a container:
    /// a CDI spec is made for no image.
    pub fn prefer_image_libraries(&mut self, dir: &str) -> Result<(), RequestError> {
        limits::path("container path", dir)?;
        self.count(&[dir])?;
        let dir = container_path(dir)?;
        self.supported(
            self.can.ldconfig && self.can.image,
            &dir,
            "put the image's libraries first in the linker cache",
        )?;
        self.plan.prefer_library_dir(&self.policy, &dir);
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
    fn a_cdi_spec_is_for_no_container_so_no_device_rule_applies() {
        let cdi = ContainerContext {
            stage: Stage::Cdi,
            ..ContainerContext::empty()
        };
        for rule in [DeviceRule::SpecListed, DeviceRule::PrivilegedOnly] {
            assert_eq!(DeviceGate::new(rule, &cdi).check("nvidia", &gpu(1)), Ok(()));
        }
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

    /// A fake host, writable by root alone as hostfs demands: the char
    /// device `/dev/gpu0` (195:0, mode 0666), the regular file
    /// `/opt/lib/libx.so` and the directory `/opt/share`.
    fn fake_host() -> tempfile::TempDir {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        use std::os::unix::fs::PermissionsExt;
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests make device nodes: run them as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["", "dev", "opt", "opt/lib", "opt/share"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        mknod(
            &root.join("dev/gpu0"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(195, 0),
        )
        .unwrap();
        // mknod applies the umask.
        std::fs::set_permissions(
            root.join("dev/gpu0"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        std::fs::write(root.join("opt/lib/libx.so"), b"elf").unwrap();
        dir
    }

    /// Policy `policy`'s requests at `stage`, on the fake host `root`,
    /// allowed everything under /dev and /opt.
    fn on_host(root: &std::path::Path, policy: &str, stage: Stage) -> Requests {
        let host = HostFs::open(root).unwrap();
        let allow = AllowList::new(&["/dev/*".into(), "/opt/**".into()]).unwrap();
        let devices = DeviceGate::new(DeviceRule::Any, &ContainerContext::empty());
        Requests::new(policy, stage, Arc::new(host), allow, devices)
    }

    fn gpu_at(container_path: &str) -> DeviceRequest {
        DeviceRequest {
            host_path: "/dev/gpu0".into(),
            container_path: Some(container_path.into()),
            ..Default::default()
        }
    }

    fn lib(container_path: &str, transfer: plan::Transfer) -> FileRequest {
        FileRequest {
            host_path: "/opt/lib/libx.so".into(),
            container_path: Some(container_path.into()),
            role: plan::FileRole::Library,
            transfer,
        }
    }

    #[test]
    fn reserved_container_paths_and_the_root_itself_are_refused_by_every_request() {
        let host = fake_host();
        let mut r = on_host(host.path(), "p", Stage::Prestart);
        for path in [
            "/proc",
            "/proc/x",
            "/proc/self/attr/exec",
            "/sys",
            "/sys/fs/cgroup/devices.allow",
            "/",
            "//",
            "/./proc/",
        ] {
            let owned = |m: String| {
                assert!(
                    m.ends_with("the container runtime owns this path"),
                    "{path}: {m}"
                )
            };
            owned(invalid(r.make_dir(path, 0o755)));
            owned(invalid(r.symlink("target", path)));
            owned(invalid(r.add_device(gpu_at(path))));
            owned(invalid(r.add_file(lib(path, plan::Transfer::Bind))));
        }
        assert!(r.take_plan().is_empty());
        // Reserved by component, not by prefix.
        r.make_dir("/procfs", 0o755).unwrap();
        r.make_dir("/system/proc", 0o755).unwrap();
    }

    #[test]
    fn dotdot_and_relative_paths_are_refused() {
        let host = fake_host();
        let mut r = on_host(host.path(), "p", Stage::Prestart);
        for path in ["/opt/../proc", "/opt/..", "opt/x", "./opt", "", "x"] {
            let m = invalid(r.make_dir(path, 0o755));
            assert!(m.starts_with(&format!("{path}: ")), "{m}");
            invalid(r.symlink("target", path));
            invalid(r.add_device(gpu_at(path)));
            invalid(r.add_file(lib(path, plan::Transfer::Bind)));
        }
        assert!(invalid(r.make_dir("/opt/../etc", 0o755)).contains("contains `..`"));
        assert!(invalid(r.make_dir("etc", 0o755)).contains("is not an absolute path"));
        // Host paths too: before the host is asked.
        for host_path in ["/dev/../opt/lib/libx.so", "dev/gpu0"] {
            invalid(r.add_device(DeviceRequest {
                host_path: host_path.into(),
                ..Default::default()
            }));
            invalid(r.add_file(FileRequest {
                host_path: host_path.into(),
                ..lib("/opt/x", plan::Transfer::Bind)
            }));
            assert!(matches!(r.stat(host_path), Err(RequestError::Invalid(_))));
        }
        assert!(r.take_plan().is_empty());
    }

    #[test]
    fn device_permissions_other_than_a_nonempty_subset_of_rwm_are_refused() {
        let host = fake_host();
        let mut r = on_host(host.path(), "p", Stage::Prestart);
        for bad in ["rwx", "rr", "", "RWM", "rwmr", " r"] {
            let m = invalid(r.add_device(DeviceRequest {
                permissions: Some(bad.into()),
                ..gpu_at("/dev/gpu0")
            }));
            assert_eq!(
                m,
                format!("/dev/gpu0: device permissions `{bad}` are not a subset of \"rwm\"")
            );
        }
        assert!(r.take_plan().is_empty());
        for (i, good) in ["r", "mw", "rwm", "mrw"].into_iter().enumerate() {
            r.add_device(DeviceRequest {
                permissions: Some(good.into()),
                ..gpu_at(&format!("/dev/gpu{i}"))
            })
            .unwrap();
        }
        let plan = r.take_plan();
        let granted: Vec<_> = plan
            .devices
            .iter()
            .map(|d| d.permissions.as_str())
            .collect();
        assert_eq!(granted, ["r", "mw", "rwm", "mrw"]);
        assert_eq!((plan.devices[0].major, plan.devices[0].minor), (195, 0));
    }

    #[test]
    fn directory_modes_beyond_07777_and_device_modes_beyond_0777_are_refused() {
        let host = fake_host();
        let mut r = on_host(host.path(), "p", Stage::Prestart);
        let m = invalid(r.make_dir("/opt/a", 0o10000));
        assert_eq!(m, "/opt/a: mode 10000 is not a file mode");
        invalid(r.make_dir("/opt/a", u32::MAX));
        r.make_dir("/opt/a", 0o7777).unwrap();

        let m = invalid(r.add_device(DeviceRequest {
            file_mode: Some(0o1666),
            ..gpu_at("/dev/gpu0")
        }));
        assert_eq!(m, "/dev/gpu0: device file mode 1666 has bits beyond 0777");
        invalid(r.add_device(DeviceRequest {
            file_mode: Some(0o4000),
            ..gpu_at("/dev/gpu0")
        }));
        r.add_device(DeviceRequest {
            file_mode: Some(0o777),
            ..gpu_at("/dev/gpu0")
        })
        .unwrap();
        // Unset: the host node's permission bits.
        r.add_device(gpu_at("/dev/gpu1")).unwrap();
        let plan = r.take_plan();
        assert_eq!(plan.directories[0].mode, 0o7777);
        let modes: Vec<_> = plan.devices.iter().map(|d| d.file_mode).collect();
        assert_eq!(modes, [0o777, 0o666]);
    }

    #[test]
    fn the_image_is_read_and_preferred_for_a_container_and_not_for_a_cdi_spec() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(rootfs.path().join("usr/local/cuda/compat")).unwrap();
        std::fs::write(
            rootfs.path().join("usr/local/cuda/compat/libcuda.so.1"),
            b"",
        )
        .unwrap();
        let mut r = requests(Stage::Prestart);
        assert_eq!(
            r.image_entries(rootfs.path(), "/usr/local/cuda/compat"),
            Ok(vec!["libcuda.so.1".to_string()])
        );
        r.prefer_image_libraries("/usr/local/cuda/compat/").unwrap();
        let plan = r.take_plan();
        let ld = plan.ldconfig.unwrap();
        assert_eq!(ld.preferred_dirs, ["/usr/local/cuda/compat"]);
        assert_eq!(ld.plugins, ["p"]);

        let mut r = requests(Stage::Cdi);
        let refused = r.image_entries(rootfs.path(), "/usr/local/cuda/compat");
        assert_eq!(
            refused,
            Err(RequestError::Unsupported(
                "/usr/local/cuda/compat: a CDI spec cannot read the container's image".into()
            ))
        );
        assert!(matches!(
            r.prefer_image_libraries("/usr/local/cuda/compat"),
            Err(RequestError::Unsupported(_))
        ));
        assert!(r.take_plan().ldconfig.is_none());

        let mut r = requests(Stage::Prestart);
        for bad in ["usr/lib", "/usr/../etc", "/proc/1/root"] {
            assert!(
                matches!(r.prefer_image_libraries(bad), Err(RequestError::Invalid(_))),
                "{bad}"
            );
            assert!(
                matches!(
                    r.image_entries(rootfs.path(), bad),
                    Err(RequestError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn set_env_is_unsupported_by_the_hooks_naming_the_back_end_and_accepted_by_spec_editors() {
        let host = fake_host();
        for (stage, back_end) in [
            (Stage::Prestart, "a prestart hook"),
            (Stage::CreateRuntime, "a createRuntime hook"),
            (Stage::CreateContainer, "a createContainer hook"),
        ] {
            let mut r = on_host(host.path(), "p", stage);
            assert_eq!(
                r.set_env("CUDA_VISIBLE", "0"),
                Err(RequestError::Unsupported(format!(
                    "CUDA_VISIBLE: {back_end} cannot change the container's environment"
                )))
            );
            assert!(r.take_plan().env.is_empty());
        }
        for stage in [Stage::RuntimeShim, Stage::Cdi] {
            let mut r = on_host(host.path(), "p", stage);
            r.set_env("CUDA_VISIBLE", "0").unwrap();
            let plan = r.take_plan();
            assert_eq!(plan.env.len(), 1, "{stage:?}");
            assert_eq!(
                (plan.env[0].plugin.as_str(), plan.env[0].value.as_str()),
                ("p", "0")
            );
        }
    }

    #[test]
    fn copies_are_unsupported_in_a_cdi_spec_naming_it_and_binds_are_not() {
        let host = fake_host();
        let mut r = on_host(host.path(), "p", Stage::Cdi);
        assert_eq!(
            r.add_file(lib("/usr/lib/libx.so", plan::Transfer::Copy)),
            Err(RequestError::Unsupported(
                "/opt/lib/libx.so: a CDI spec cannot copy files (ask for a bind)".into()
            ))
        );
        assert!(r.take_plan().files.is_empty());
        r.add_file(lib("/usr/lib/libx.so", plan::Transfer::Bind))
            .unwrap();
        assert_eq!(r.take_plan().files.len(), 1);
        for stage in [Stage::Prestart, Stage::RuntimeShim] {
            let mut r = on_host(host.path(), "p", stage);
            r.add_file(lib("/usr/lib/libx.so", plan::Transfer::Copy))
                .unwrap();
            assert_eq!(r.take_plan().files[0].transfer, plan::Transfer::Copy);
        }
    }

    #[test]
    fn a_socket_is_bound_as_misc_and_never_copied_or_given_another_role() {
        let host = fake_host();
        let socket = host.path().join("opt/share/socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let request = |role, transfer| FileRequest {
            host_path: "/opt/share/socket".into(),
            container_path: None,
            role,
            transfer,
        };
        let mut r = on_host(host.path(), "p", Stage::Prestart);
        r.add_file(request(plan::FileRole::Misc, plan::Transfer::Bind))
            .unwrap();
        let files = r.take_plan().files;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].container_path, "/opt/share/socket");
        assert!(!files[0].directory, "its mount point is a file");
        let refused = "/opt/share/socket: a socket can be bind-mounted as `misc`, not copied \
                       or given another role";
        for (role, transfer) in [
            (plan::FileRole::Misc, plan::Transfer::Copy),
            (plan::FileRole::Library, plan::Transfer::Bind),
            (plan::FileRole::Binary, plan::Transfer::Bind),
        ] {
            assert_eq!(invalid(r.add_file(request(role, transfer))), refused);
        }
        assert!(r.take_plan().files.is_empty());
    }

    #[test]
    fn more_than_max_requests_from_one_policy_are_refused() {
        let host = fake_host();
        let mut r = on_host(host.path(), "p", Stage::Prestart);
        for i in 0..MAX_REQUESTS {
            r.make_dir(&format!("/opt/d{i}"), 0o755).unwrap();
        }
        let over = format!("more than {MAX_REQUESTS} requests from one policy");
        assert_eq!(
            r.make_dir("/opt/one-more", 0o755),
            Err(RequestError::Invalid(over.clone()))
        );
        // Every kind of request counts, refused or not.
        assert_eq!(r.run_ldconfig(), Err(RequestError::Invalid(over.clone())));
        assert_eq!(
            r.add_device(gpu_at("/dev/gpu0")),
            Err(RequestError::Invalid(over))
        );
        assert_eq!(r.take_plan().directories.len(), MAX_REQUESTS);
    }

    #[test]
    fn a_conflict_within_one_policy_names_the_path_and_both_requests() {
        let host = fake_host();
        let mut r = on_host(host.path(), "gpu", Stage::Prestart);
        r.make_dir("/opt/x", 0o755).unwrap();
        // The same request again is redundant, not a conflict.
        r.make_dir("/opt/x", 0o755).unwrap();
        assert_eq!(
            r.symlink("target", "/opt/x"),
            Err(RequestError::Conflict(
                "/opt/x: plugin `gpu` (directory mode 0755) conflicts with \
                 plugin `gpu` (symlink to target)"
                    .into()
            ))
        );
        assert_eq!(
            r.make_dir("/opt/x", 0o700),
            Err(RequestError::Conflict(
                "/opt/x: plugin `gpu` (directory mode 0755) conflicts with \
                 plugin `gpu` (directory mode 0700)"
                    .into()
            ))
        );
        r.add_device(gpu_at("/dev/gpu0")).unwrap();
        assert!(matches!(
            r.add_file(lib("/dev/gpu0", plan::Transfer::Bind)),
            Err(RequestError::Conflict(m)) if m == "/dev/gpu0: plugin `gpu` (device c 195:0 \
                from /dev/gpu0) conflicts with plugin `gpu` (library bind of /opt/lib/libx.so)"
        ));
        let plan = r.take_plan();
        assert_eq!((plan.directories.len(), plan.devices.len()), (1, 1));
        assert!(plan.symlinks.is_empty() && plan.files.is_empty());
    }

    #[test]
    fn a_conflict_across_two_policies_plans_names_both_and_merges_neither_half() {
        let host = fake_host();
        let mut a = on_host(host.path(), "alpha", Stage::Prestart);
        a.add_device(gpu_at("/dev/gpu0")).unwrap();
        a.make_dir("/opt/shared", 0o755).unwrap();
        let mut b = on_host(host.path(), "beta", Stage::Prestart);
        // Each plan is fine on its own; together they claim /dev/gpu0 twice.
        b.make_dir("/opt/shared", 0o755).unwrap();
        b.make_dir("/opt/beta-only", 0o755).unwrap();
        b.add_file(lib("/dev/gpu0", plan::Transfer::Bind)).unwrap();

        let mut merged = Plan::default();
        merged.merge(a.take_plan()).unwrap();
        let before = merged.clone();
        let conflict = merged.merge(b.take_plan()).unwrap_err();
        assert_eq!(
            RequestError::from(conflict),
            RequestError::Conflict(
                "/dev/gpu0: plugin `alpha` (device c 195:0 from /dev/gpu0) conflicts with \
                 plugin `beta` (library bind of /opt/lib/libx.so)"
                    .into()
            )
        );
        assert_eq!(merged, before, "nothing of the conflicting plan is merged");

        // Identical requests from two policies merge into one entry.
        let mut c = on_host(host.path(), "gamma", Stage::Prestart);
        c.make_dir("/opt/shared", 0o755).unwrap();
        merged.merge(c.take_plan()).unwrap();
        assert_eq!(merged.directories.len(), 1);
        assert_eq!(merged.directories[0].plugin, "alpha");
    }
}
