//! The one door into a plan. Every request a policy makes, whether a WASM
//! plugin through its `inject` imports or a seed-format static policy, is
//! checked here (count, path shape, allow-list, the host node or file, the
//! stage) and only then recorded, attributed to the policy that made it.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::context::Stage;
use crate::hostfs::{clean_absolute, AllowList, FileKind, HostError, HostFs, HostStat};
use crate::plan::{self, Conflict, Plan};

/// Most requests one policy may make for one container: a bound on host memory.
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

/// One policy's requests for one container, and the plan they make.
pub struct Requests {
    policy: String,
    stage: Stage,
    host: Arc<HostFs>,
    allow: AllowList,
    plan: Plan,
    count: usize,
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
        std::mem::take(&mut self.plan)
    }

    /// A host path the policy may read, with its lstat.
    pub fn stat(&self, path: &str) -> Result<HostStat, RequestError> {
        Ok(self.host.stat(&self.allow, path)?)
    }

    /// The first step of every request: count it.
    fn count(&mut self) -> Result<(), RequestError> {
        self.count += 1;
        if self.count > MAX_REQUESTS {
            return Err(RequestError::Invalid(format!(
                "more than {MAX_REQUESTS} requests from one policy"
            )));
        }
        Ok(())
    }

    pub fn add_device(&mut self, d: DeviceRequest) -> Result<(), RequestError> {
        self.count()?;
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
                "{}: device permissions `{permissions}` are not a subset of \"rwm\"",
                d.host_path
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
        self.plan.add_device(plan::Device {
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
        })?;
        Ok(())
    }

    pub fn add_file(&mut self, f: FileRequest) -> Result<(), RequestError> {
        self.count()?;
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
        self.plan.refresh_library_dirs();
        Ok(())
    }

    pub fn make_dir(&mut self, path: &str, mode: u32) -> Result<(), RequestError> {
        self.count()?;
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
        self.count()?;
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
        self.count()?;
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
        self.count()?;
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
