//! The host side of the WIT world: what a plugin can ask.
//!
//! Reads go through the plugin's allow-list; requests go through
//! [`Requests`], which checks each one before it lands in the plugin's own
//! plan. A refusal is a WIT `error` value the plugin can handle; only a host
//! bug would trap.
//!
//! What a plugin hands the host is bounded here or in [`Requests`] (see
//! [`crate::limits`]): paths before they are resolved or kept, log lines and
//! their number, live WASI resources. Look-ups that keep nothing
//! (`getenv`, `annotation`, `env-match`) take any string: its copy is
//! bounded by the plugin's own memory and freed on return.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::clock::{BoundedClock, CallDeadline};
use super::limiter::StoreCap;
use crate::allow::AllowList;
use crate::context::{ContainerContext, Stage};
use crate::hostfs::{FileKind, HostFs};
use crate::limits;
use crate::plan;
use crate::requests::{DeviceGate, DeviceRequest, FileRequest, RequestError, Requests};

/// Most log lines kept from one plugin, and the longest kept line.
const MAX_LOG_LINES: usize = 1_000;
const MAX_LOG_LINE: usize = 4_096;

/// Most WASI resources (streams, pollables) one plugin may hold at once:
/// each is host memory that the plugin's memory cap does not count.
const MAX_RESOURCES: usize = 10_000;

/// Most bytes of random data one call may ask of WASI (a trap beyond).
const MAX_RANDOM: u64 = 1 << 20;

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

/// Everything one plugin's store holds.
pub struct PluginState {
    pub ctx: Arc<ContainerContext>,
    pub settings: String,
    pub requests: Requests,
    logs: Vec<LogLine>,
    /// Log lines not kept, beyond [`MAX_LOG_LINES`].
    dropped_logs: usize,
    pub limiter: StoreCap,
    /// The deadline of the call now running, for the bounded clock.
    pub deadline: CallDeadline,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    pub fn new(
        plugin: &str,
        ctx: Arc<ContainerContext>,
        host: Arc<HostFs>,
        allow: AllowList,
        devices: DeviceGate,
        settings: String,
        memory_bytes: usize,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        PluginState {
            requests: Requests::new(plugin, ctx.stage, host, allow, devices),
            ctx,
            settings,
            logs: Vec::new(),
            dropped_logs: 0,
            limiter: StoreCap::new(memory_bytes),
            deadline: CallDeadline::default(),
            // A std guest imports wasi:cli and friends even when it does no
            // I/O; it gets them with nothing behind: no preopens, no env,
            // no args, no stdio (stdin closed, output discarded: nothing to
            // wait on), no sockets (the defaults, said here to be sure).
            wasi: WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .max_random_size(MAX_RANDOM)
                .build(),
            table,
        }
    }

    /// The log so far, with a last line saying how many were dropped.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        let mut logs = std::mem::take(&mut self.logs);
        if self.dropped_logs > 0 {
            logs.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "{} more log lines dropped: a plugin's log keeps at most {MAX_LOG_LINES}",
                    self.dropped_logs
                ),
            });
            self.dropped_logs = 0;
        }
        logs
    }

    /// The view the bounded monotonic clock works on.
    pub fn bounded_clock(&mut self) -> BoundedClock<'_> {
        BoundedClock {
            wasi: wasmtime_wasi::clocks::WasiClocksCtxView {
                ctx: self.wasi.clocks(),
                table: &mut self.table,
            },
            deadline: &self.deadline,
        }
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

// Each world this host speaks gets the same implementation of its imports
// (their Rust types differ from world to world, their WIT does not).
macro_rules! imports_of {
    ($world:ident $(, container: [$($container_since:item)*], inject: [$($inject_since:item)*])?) => {
        mod $world {
            use super::*;
            use crate::runtime::bindings::$world::hookhost::policy::types::Error as WitError;
            use crate::runtime::bindings::$world::hookhost::policy::{
                container, host, inject, log, types,
            };

            impl From<RequestError> for WitError {
                fn from(e: RequestError) -> Self {
                    match e {
                        RequestError::NotAllowed(m) => WitError::NotAllowed(m),
                        RequestError::NotFound(m) => WitError::NotFound(m),
                        RequestError::Invalid(m) => WitError::Invalid(m),
                        RequestError::Unsupported(m) => WitError::Unsupported(m),
                        RequestError::Conflict(m) => WitError::Conflict(m),
                        RequestError::Io(m) => WitError::Io(m),
                    }
                }
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

                fn environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
                    Ok(self
                        .ctx
                        .env
                        .iter()
                        .map(|entry| match entry.split_once('=') {
                            Some((name, value)) => (name.to_string(), value.to_string()),
                            None => (entry.clone(), String::new()),
                        })
                        .collect())
                }

                fn spec_devices(&mut self) -> wasmtime::Result<Vec<types::SpecDevice>> {
                    use oci_spec::runtime::LinuxDeviceType;
                    let listed = self
                        .ctx
                        .spec
                        .linux()
                        .as_ref()
                        .and_then(|l| l.devices().as_ref());
                    // The spec's numbers are i64; a value no device can have reads as 0.
                    let number = |n: i64| u32::try_from(n).unwrap_or(0);
                    Ok(listed
                        .into_iter()
                        .flatten()
                        .map(|d| types::SpecDevice {
                            path: d.path().display().to_string(),
                            kind: match d.typ() {
                                LinuxDeviceType::B => types::FileKind::BlockDevice,
                                LinuxDeviceType::P => types::FileKind::Fifo,
                                _ => types::FileKind::CharDevice,
                            },
                            major: number(d.major()),
                            minor: number(d.minor()),
                        })
                        .collect())
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

                $($($container_since)*)?
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
                    if let Err(e) = limits::path("glob pattern", &pattern) {
                        return Ok(Err(e.into()));
                    }
                    let r = &self.requests;
                    Ok(r.host()
                        .glob(r.allow(), &pattern)
                        .map_err(|e| RequestError::from(e).into()))
                }

                fn stat(&mut self, path: String) -> Answer<types::FileStat> {
                    Ok(self
                        .requests
                        .stat(&path)
                        .map_err(Into::into)
                        .map(|st| types::FileStat {
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
                    if let Err(e) = limits::path("host path", &path) {
                        return Ok(Err(e.into()));
                    }
                    let r = &self.requests;
                    Ok(r.host()
                        .read_link(r.allow(), &path)
                        .map_err(|e| RequestError::from(e).into()))
                }

                fn read_file(&mut self, path: String, limit: u32) -> Answer<Vec<u8>> {
                    if let Err(e) = limits::path("host path", &path) {
                        return Ok(Err(e.into()));
                    }
                    let r = &self.requests;
                    Ok(r.host()
                        .read_file(r.allow(), &path, limit)
                        .map_err(|e| RequestError::from(e).into()))
                }

                fn settings(&mut self) -> wasmtime::Result<String> {
                    Ok(self.settings.clone())
                }
            }

            impl inject::Host for PluginState {
                fn add_device(&mut self, d: inject::Device) -> Answer<()> {
                    Ok(self
                        .requests
                        .add_device(DeviceRequest {
                            host_path: d.host_path,
                            container_path: d.container_path,
                            file_mode: d.file_mode,
                            uid: d.uid,
                            gid: d.gid,
                            permissions: d.permissions,
                        })
                        .map_err(Into::into))
                }

                fn copy_file(&mut self, f: inject::File) -> Answer<()> {
                    Ok(self
                        .requests
                        .add_file(FileRequest {
                            host_path: f.host_path,
                            container_path: f.container_path,
                            role: match f.role {
                                inject::FileRole::Binary => plan::FileRole::Binary,
                                inject::FileRole::Library => plan::FileRole::Library,
                                inject::FileRole::Misc => plan::FileRole::Misc,
                            },
                            transfer: match f.transfer {
                                inject::Transfer::Bind => plan::Transfer::Bind,
                                inject::Transfer::Copy => plan::Transfer::Copy,
                            },
                        })
                        .map_err(Into::into))
                }

                fn make_dir(&mut self, path: String, mode: u32) -> Answer<()> {
                    Ok(self.requests.make_dir(&path, mode).map_err(Into::into))
                }

                fn symlink(&mut self, target: String, path: String) -> Answer<()> {
                    Ok(self.requests.symlink(&target, &path).map_err(Into::into))
                }

                fn set_env(&mut self, name: String, value: String) -> Answer<()> {
                    Ok(self.requests.set_env(&name, &value).map_err(Into::into))
                }

                fn run_ldconfig(&mut self) -> Answer<()> {
                    Ok(self.requests.run_ldconfig().map_err(Into::into))
                }

                $($($inject_since)*)?
            }

            impl log::Host for PluginState {
                fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
                    if self.logs.len() >= MAX_LOG_LINES {
                        self.dropped_logs += 1;
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
        }
    };
}

imports_of!(v0_1);
// 0.2.1 added `container.privileged`, `container.image-entries` and
// `inject.prefer-image-libraries`.
imports_of!(
    v0_2,
    container: [
        fn privileged(&mut self) -> wasmtime::Result<bool> {
            Ok(self.ctx.privileged())
        }

        fn image_entries(&mut self, dir: String) -> Answer<Vec<String>> {
            let rootfs = &self.ctx.rootfs;
            Ok(self.requests.image_entries(rootfs, &dir).map_err(Into::into))
        }
    ],
    inject: [
        fn prefer_image_libraries(&mut self, dir: String) -> Answer<()> {
            Ok(self.requests.prefer_image_libraries(&dir).map_err(Into::into))
        }
    ]
);
