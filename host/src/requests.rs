//! The one door into a plan. Every request a policy makes, whether a WASM
//! plugin through its `inject` imports or a seed-format static policy, is
//! checked here (count, path shape, allow-list, the host node or file, the
//! stage) and only then recorded, attributed to the policy that made it.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::context::Stage;
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
            HostError::NotAllowed(_) => RequestError::NotAllowed(text),
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

/// One policy's requests for one container, and the plan they make.
pub struct Requests {
    policy: String,
    stage: Stage,
    host: Arc<HostFs>,
    allow: AllowList,
    plan: Plan,
    count: usize,
    /// Bytes of strings the requests so far handed the host.
    bytes: usize,
}

impl Requests {
    pub fn new(policy: &str, stage: Stage, host: Arc<HostFs>, allow: AllowList) -> Self {
        Requests {
            policy: policy.to_string(),
            stage,
            host,
            allow,
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
        let st = self.stat(&d.host_path)?;
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
        let host_path = self.host.check(&self.allow, &d.host_path)?;
        let at = d.container_path.as_deref().unwrap_or(&d.host_path);
        self.plan.add_device(plan::Device {
            plugin: self.policy.clone(),
            container_path: container_path(at)?,
            host_path: host_path.display().to_string(),
            kind,
            major: st.major,
            minor: st.minor,
            file_mode,
            uid: d.uid.unwrap_or(st.uid),
            gid: d.gid.unwrap_or(st.gid),
            permissions,
        })?;
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
        let st = self.stat(&f.host_path)?;
        let directory = match st.kind {
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
        let host_path = self.host.check(&self.allow, &f.host_path)?;
        let at = f.container_path.as_deref().unwrap_or(&f.host_path);
        self.plan.add_file(plan::File {
            plugin: self.policy.clone(),
            host_path: host_path.display().to_string(),
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
        if !self.stage.can_set_env() {
            return Err(RequestError::Unsupported(format!(
                "{name}: a {:?} hook cannot change the container's environment; \
                 only the runtime-shim and CDI back ends can",
                self.stage
            )));
        }
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

    fn requests(stage: Stage) -> Requests {
        let host = HostFs::open(std::path::Path::new("/")).unwrap();
        let allow = AllowList::new(&["/dev/null".into()]).unwrap();
        Requests::new("p", stage, Arc::new(host), allow)
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
