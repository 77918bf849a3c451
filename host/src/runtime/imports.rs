//! The host side of the WIT world: what a plugin can ask.
//!
//! Each import checks first (allow-list, path shape, stage) and acts second;
//! requests only ever land in the plugin's own plan. A refusal is a WIT
//! `error` value the plugin can handle; only a host bug would trap.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::hookhost::policy::types::Error as WitError;
use super::bindings::hookhost::policy::{container, host, inject, log, types};
use crate::context::{ContainerContext, Stage};
use crate::hostfs::{clean_absolute, AllowList, FileKind, HostError, HostFs};
use crate::plan::{self, Conflict, Plan};

/// Most requests a plugin may make in one call: a bound on host memory.
const MAX_REQUESTS: usize = 10_000;
/// Most log lines kept from one plugin, and the longest kept line.
const MAX_LOG_LINES: usize = 1_000;
const MAX_LOG_LINE: usize = 4_096;

/// Container paths a plugin may never claim: the runtime owns them.
const RESERVED: &[&str] = &["/proc", "/sys"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Memory cap of one plugin's store; remembers whether it was hit so the
/// trap can be reported as what it is.
pub struct MemoryCap {
    pub limit: usize,
    pub exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.limit);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything one plugin's store holds.
pub struct PluginState {
    pub plugin: String,
    pub ctx: Arc<ContainerContext>,
    pub host: Arc<HostFs>,
    pub allow: AllowList,
    pub settings: String,
    pub plan: Plan,
    pub logs: Vec<LogLine>,
    pub memory: MemoryCap,
    requests: usize,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    pub fn new(
        plugin: &str,
        ctx: Arc<ContainerContext>,
        host: Arc<HostFs>,
        allow: AllowList,
        settings: String,
        memory_bytes: usize,
    ) -> Self {
        PluginState {
            plugin: plugin.to_string(),
            ctx,
            host,
            allow,
            settings,
            plan: Plan::default(),
            logs: Vec::new(),
            memory: MemoryCap {
                limit: memory_bytes,
                exceeded: false,
            },
            requests: 0,
            // A std guest imports wasi:cli and friends even when it does no
            // I/O; it gets them with nothing behind: no preopens, no env,
            // no args, no stdio, no sockets.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }

    /// The shared first step of every request: count it, then check it.
    fn request(&mut self) -> Result<(), WitError> {
        self.requests += 1;
        if self.requests > MAX_REQUESTS {
            return Err(WitError::Invalid(format!(
                "more than {MAX_REQUESTS} requests from one plugin"
            )));
        }
        Ok(())
    }

    /// A host path the plugin may use as a source, with its lstat.
    fn source(&self, path: &str) -> Result<crate::hostfs::HostStat, WitError> {
        Ok(self.host.stat(&self.allow, path)?)
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl From<HostError> for WitError {
    fn from(e: HostError) -> Self {
        let text = e.to_string();
        match e {
            HostError::NotAllowed(_) => WitError::NotAllowed(text),
            HostError::NotFound(_) => WitError::NotFound(text),
            HostError::Invalid { .. } => WitError::Invalid(text),
            HostError::Io { .. } => WitError::Io(text),
        }
    }
}

impl From<Conflict> for WitError {
    fn from(c: Conflict) -> Self {
        WitError::Conflict(c.to_string())
    }
}

/// A container path the plugin may claim.
fn container_path(path: &str) -> Result<String, WitError> {
    let clean = clean_absolute(path).map_err(|why| WitError::Invalid(format!("{path}: {why}")))?;
    if clean.as_os_str() == "/" || RESERVED.iter().any(|r| clean.starts_with(r)) {
        return Err(WitError::Invalid(format!(
            "{path}: the container runtime owns this path"
        )));
    }
    Ok(clean.display().to_string())
}

type Answer<T> = wasmtime::Result<Result<T, WitError>>;

impl types::Host for PluginState {}

impl container::Host for PluginState {
    fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.id.clone())
    }

    fn current_stage(&mut self) -> wasmtime::Result<types::Stage> {
        Ok(match self.ctx.stage {
            Stage::Prestart => types::Stage::Prestart,
            Stage::CreateRuntime => types::Stage::CreateRuntime,
            Stage::CreateContainer => types::Stage::CreateContainer,
            Stage::RuntimeShim => types::Stage::RuntimeShim,
            Stage::Cdi => types::Stage::Cdi,
        })
    }

    fn env_match(&mut self, flag: String) -> wasmtime::Result<bool> {
        Ok(self.ctx.env_match(&flag))
    }

    fn getenv(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.getenv(&name).map(str::to_string))
    }

    fn annotation(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.annotations.get(&key).cloned())
    }

    fn annotations(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .ctx
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn args(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.args.clone())
    }

    fn rootfs_readonly(&mut self) -> wasmtime::Result<bool> {
        Ok(self.ctx.rootfs_readonly)
    }

    fn uid_mappings(&mut self) -> wasmtime::Result<Vec<types::IdMapping>> {
        Ok(self.ctx.uid_mappings.iter().map(wit_mapping).collect())
    }

    fn gid_mappings(&mut self) -> wasmtime::Result<Vec<types::IdMapping>> {
        Ok(self.ctx.gid_mappings.iter().map(wit_mapping).collect())
    }
}

fn wit_mapping(m: &crate::context::IdMapping) -> types::IdMapping {
    types::IdMapping {
        container_id: m.container_id,
        host_id: m.host_id,
        size: m.size,
    }
}

impl host::Host for PluginState {
    fn glob(&mut self, pattern: String) -> Answer<Vec<String>> {
        Ok(self.host.glob(&self.allow, &pattern).map_err(Into::into))
    }

    fn stat(&mut self, path: String) -> Answer<types::FileStat> {
        Ok(self.source(&path).map(|st| types::FileStat {
            kind: match st.kind {
                FileKind::Regular => types::FileKind::Regular,
                FileKind::Directory => types::FileKind::Directory,
                FileKind::Symlink => types::FileKind::Symlink,
                FileKind::CharDevice => types::FileKind::CharDevice,
                FileKind::BlockDevice => types::FileKind::BlockDevice,
                FileKind::Fifo => types::FileKind::Fifo,
                FileKind::Socket => types::FileKind::Socket,
            },
            mode: st.mode,
            size: st.size,
            major: st.major,
            minor: st.minor,
        }))
    }

    fn read_link(&mut self, path: String) -> Answer<String> {
        Ok(self.host.read_link(&self.allow, &path).map_err(Into::into))
    }

    fn read_file(&mut self, path: String, limit: u32) -> Answer<Vec<u8>> {
        Ok(self
            .host
            .read_file(&self.allow, &path, limit)
            .map_err(Into::into))
    }

    fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.settings.clone())
    }
}

impl inject::Host for PluginState {
    fn add_device(&mut self, d: inject::Device) -> Answer<()> {
        Ok((|| {
            self.request()?;
            let st = self.source(&d.host_path)?;
            let kind = match st.kind {
                FileKind::CharDevice => plan::DeviceType::Char,
                FileKind::BlockDevice => plan::DeviceType::Block,
                _ => {
                    return Err(WitError::Invalid(format!(
                        "{}: is not a device node",
                        d.host_path
                    )))
                }
            };
            let permissions = d.permissions.unwrap_or_else(|| "rwm".into());
            let distinct: std::collections::BTreeSet<char> = permissions.chars().collect();
            if permissions.is_empty()
                || distinct.len() != permissions.len()
                || !distinct.iter().all(|c| "rwm".contains(*c))
            {
                return Err(WitError::Invalid(format!(
                    "{}: device permissions `{permissions}` are not a subset of \"rwm\"",
                    d.host_path
                )));
            }
            let file_mode = d.file_mode.unwrap_or(st.mode & 0o777);
            if file_mode > 0o777 {
                return Err(WitError::Invalid(format!(
                    "{}: device file mode {file_mode:o} has bits beyond 0777",
                    d.host_path
                )));
            }
            let host_path = self.host.check(&self.allow, &d.host_path)?;
            let at = d.container_path.as_deref().unwrap_or(&d.host_path);
            self.plan.add_device(plan::Device {
                plugin: self.plugin.clone(),
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
        })())
    }

    fn copy_file(&mut self, f: inject::File) -> Answer<()> {
        Ok((|| {
            self.request()?;
            let st = self.source(&f.host_path)?;
            let transfer = match f.transfer {
                inject::Transfer::Bind => plan::Transfer::Bind,
                inject::Transfer::Copy => plan::Transfer::Copy,
            };
            let directory = match st.kind {
                FileKind::Regular => false,
                FileKind::Directory if transfer == plan::Transfer::Bind => true,
                FileKind::Directory => {
                    return Err(WitError::Invalid(format!(
                        "{}: a directory can be bind-mounted, not copied",
                        f.host_path
                    )))
                }
                FileKind::Symlink => {
                    return Err(WitError::Invalid(format!(
                        "{}: is a symlink; request the file it names, and a `symlink` for the link",
                        f.host_path
                    )))
                }
                _ => {
                    return Err(WitError::Invalid(format!(
                        "{}: is not a regular file or directory (use add-device for device nodes)",
                        f.host_path
                    )))
                }
            };
            let host_path = self.host.check(&self.allow, &f.host_path)?;
            let at = f.container_path.as_deref().unwrap_or(&f.host_path);
            self.plan.add_file(plan::File {
                plugin: self.plugin.clone(),
                host_path: host_path.display().to_string(),
                container_path: container_path(at)?,
                role: match f.role {
                    inject::FileRole::Binary => plan::FileRole::Binary,
                    inject::FileRole::Library => plan::FileRole::Library,
                    inject::FileRole::Misc => plan::FileRole::Misc,
                },
                transfer,
                directory,
            })?;
            self.plan.refresh_library_dirs();
            Ok(())
        })())
    }

    fn make_dir(&mut self, path: String, mode: u32) -> Answer<()> {
        Ok((|| {
            self.request()?;
            if mode > 0o7777 {
                return Err(WitError::Invalid(format!(
                    "{path}: mode {mode:o} is not a file mode"
                )));
            }
            self.plan.add_directory(plan::Directory {
                plugin: self.plugin.clone(),
                container_path: container_path(&path)?,
                mode,
            })?;
            Ok(())
        })())
    }

    fn symlink(&mut self, target: String, path: String) -> Answer<()> {
        Ok((|| {
            self.request()?;
            if target.is_empty() || target.contains('\0') {
                return Err(WitError::Invalid(format!(
                    "{path}: a symlink target must be non-empty and free of NUL bytes"
                )));
            }
            self.plan.add_symlink(plan::Symlink {
                plugin: self.plugin.clone(),
                container_path: container_path(&path)?,
                target,
            })?;
            Ok(())
        })())
    }

    fn set_env(&mut self, name: String, value: String) -> Answer<()> {
        Ok((|| {
            self.request()?;
            if !self.ctx.stage.can_set_env() {
                return Err(WitError::Unsupported(format!(
                    "{name}: a {:?} hook cannot change the container's environment; \
                     only the runtime-shim and CDI back ends can",
                    self.ctx.stage
                )));
            }
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                return Err(WitError::Invalid(format!(
                    "`{name}` is not a valid environment variable name"
                )));
            }
            self.plan.add_env(plan::EnvVar {
                plugin: self.plugin.clone(),
                name,
                value,
            })?;
            Ok(())
        })())
    }

    fn run_ldconfig(&mut self) -> Answer<()> {
        Ok(self.request().map(|()| {
            let plugin = self.plugin.clone();
            self.plan.request_ldconfig(&plugin)
        }))
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
        if self.logs.len() >= MAX_LOG_LINES {
            return Ok(());
        }
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.logs.push(LogLine { level, message });
        Ok(())
    }
}
