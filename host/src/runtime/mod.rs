//! The plugin runtime: wasmtime, one `Store` per plugin, and the limits that
//! keep a broken or hostile plugin from taking the container start with it.
//!
//! - Time: epoch interruption. A ticker thread bumps the engine's epoch every
//!   millisecond and each call into a plugin gets a deadline in ticks. A host
//!   call cannot be interrupted that way, so no host call may block: the one
//!   import that waits, WASI's monotonic clock, is replaced by one whose
//!   waits end at the call's deadline (see `clock`; of the choices, async
//!   host calls with deadlines would make every import async for this one
//!   case, and a process per plugin would cost a fork and an engine start per
//!   plugin on every container start). An over-budget plugin is then stopped
//!   and its `on-error` decides, whatever it was doing. The ticker is also a
//!   watchdog that ends the process if one call overruns its budget twice:
//!   a last resort for a host call that blocks all the same (a hung file
//!   system under an allowed path), never the way a plugin is stopped.
//! - Memory: a `ResourceLimiter` caps the store's linear memory, all its
//!   memories together, and the number of instances, memories, tables and
//!   table elements (see `limiter`).
//! - Capabilities: the WIT imports (see `imports`) and an empty WASI context.

mod cache;
mod clock;
mod imports;
mod limiter;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

pub use cache::{Cache, CacheError, LoadError, WASMTIME_VERSION};
pub use imports::{LogLevel, LogLine};

use crate::config::{PluginConfig, WasmPlugin};
use crate::context::ContainerContext;
use crate::hostfs::HostFs;
use crate::input::{self, Follow};
use crate::plan::Plan;
use crate::requests::DeviceGate;
use imports::PluginState;

/// One module per WIT minor line this host speaks, each generated from the
/// newest patch of its line (a plugin built for an older patch imports a
/// subset). Their imports share one implementation (`imports`).
mod bindings {
    pub mod v0_1 {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.1",
            world: "plugin",
            imports: { default: trappable },
        });
    }
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../wit/0.2.1",
            world: "plugin",
            imports: { default: trappable },
        });
    }
}

/// The WIT package this host implements.
pub const WIT_PACKAGE: &str = "hookhost:policy";

/// A WIT world this host speaks: a minor line of `hookhost:policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// 0.1.0 and 0.1.1.
    V0_1,
    /// 0.2.0 and 0.2.1: adds `plan-devices`, for CDI specs (0.2.1:
    /// `container.privileged` and `container.mounts`).
    V0_2,
}

impl World {
    const ALL: [World; 2] = [World::V0_1, World::V0_2];

    /// The newest version of the line this host speaks.
    pub fn version(self) -> (u64, u64, u64) {
        match self {
            World::V0_1 => (0, 1, 1),
            World::V0_2 => (0, 2, 1),
        }
    }

    /// Whether a plugin of this world can plan named devices (CDI).
    pub fn plans_devices(self) -> bool {
        self != World::V0_1
    }
}

/// "0.1.0 to 0.1.1, 0.2.0 to 0.2.1": what this host speaks, for messages.
fn spoken() -> String {
    let lines: Vec<String> = World::ALL
        .iter()
        .map(|w| match w.version() {
            (major, minor, 0) => format!("{major}.{minor}.0"),
            (major, minor, patch) => format!("{major}.{minor}.0 to {major}.{minor}.{patch}"),
        })
        .collect();
    format!("{WIT_PACKAGE}@{}", lines.join(", "))
}

/// What a plugin says of itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub summary: String,
}

/// A plugin's policy export, in the world it was built for (a cheap
/// handle: cloned, it lets a call borrow the store).
#[derive(Clone)]
enum Bound {
    V0_1(bindings::v0_1::exports::hookhost::policy::policy::Guest),
    V0_2(bindings::v0_2::exports::hookhost::policy::policy::Guest),
}

/// The same call on either world's exports (their Rust types differ, the
/// calls do not).
macro_rules! on_exports {
    ($bound:expr, |$policy:ident| $call:expr) => {
        match $bound {
            Bound::V0_1($policy) => $call,
            Bound::V0_2($policy) => $call,
        }
    };
}

const TICK: Duration = Duration::from_millis(1);

/// The largest `.wasm` hookhost reads (the Python SDK's plugins, with the
/// interpreter inside, are about 20 MiB).
pub const WASM_LIMIT: u64 = 256 << 20;

/// What went wrong with one plugin; always names it.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` ({}): {failure}", path.display())]
pub struct PluginError {
    pub plugin: String,
    /// The component (or, for a static policy, the manifest).
    pub path: PathBuf,
    pub failure: Failure,
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("the WebAssembly engine could not start: {0}")]
    Engine(String),
    #[error("is an oci-injector-hook config, which the host runs itself, not a component")]
    NotAComponent,
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("its `allow`: {0}")]
    AllowList(String),
    #[error("is a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule,
    #[error("is not a WebAssembly component")]
    NotWasm,
    #[error(
        "is larger than the limit of {} for a component",
        crate::input::size(WASM_LIMIT)
    )]
    TooLarge,
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("exports no `{WIT_PACKAGE}/policy` interface, so it is not a hookhost policy")]
    NotAPolicy,
    #[error("targets {found}, which this host does not speak (it speaks {}; a newer patch may import functions this host lacks: update hookhost)", spoken())]
    Incompatible { found: String },
    #[error("is built for {WIT_PACKAGE}@{found}, which cannot plan named devices: rebuild it against {WIT_PACKAGE}@0.2.0 (`plan-devices`) to offer its devices in CDI specs")]
    PlansNoDevices { found: String },
    #[error("cannot be instantiated: {0}")]
    Instantiate(String),
    #[error("exceeded its time limit of {0} ms")]
    Timeout(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    OutOfMemory(u64),
    #[error("trapped in `{call}`: {message}")]
    Trap { call: &'static str, message: String },
    #[error("{call} failed: {message}")]
    Refused { call: &'static str, message: String },
}

/// Everything shared by all plugins of one run. The engine is started on
/// the first plugin that runs: most containers activate none (the NVIDIA
/// hook on a container without GPUs), and starting wasmtime is a large part
/// of a hook's run (docs/benchmarks.md).
pub struct Runtime {
    cache: Option<Cache>,
    host: Arc<HostFs>,
    engine: OnceLock<Result<Wasmtime, String>>,
}

/// The engine, the linker with every host interface, and the epoch ticker.
struct Wasmtime {
    engine: Engine,
    linker: Linker<PluginState>,
    ticker: Ticker,
}

impl Wasmtime {
    fn start() -> Result<Self, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                // WASI's monotonic clock, shadowed by one that cannot block.
                linker.allow_shadowing(true);
                clock::add_to_linker(&mut linker, PluginState::bounded_clock)?;
                linker.allow_shadowing(false);
                bindings::v0_1::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                bindings::v0_2::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            })
            .map_err(|e| format!("linking the host interfaces: {e:#}"))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Wasmtime {
            engine,
            linker,
            ticker,
        })
    }
}

impl Runtime {
    /// `cache`: where precompiled plugins are kept; `None` compiles every time.
    pub fn new(host: HostFs, cache: Option<Cache>) -> Self {
        Runtime {
            cache,
            host: Arc::new(host),
            engine: OnceLock::new(),
        }
    }

    /// The engine, started on first use.
    fn wasmtime(&self) -> Result<&Wasmtime, Failure> {
        self.engine
            .get_or_init(Wasmtime::start)
            .as_ref()
            .map_err(|e| Failure::Engine(e.clone()))
    }

    pub fn host(&self) -> &Arc<HostFs> {
        &self.host
    }

    /// Writes the plugin's precompiled form into the cache. Returns the
    /// entry and whether it had to be compiled.
    pub fn precompile(&self, plugin: &PluginConfig) -> Result<(PathBuf, bool), PluginError> {
        let loaded = self.load(plugin)?;
        Ok((loaded.entry.unwrap_or_default(), loaded.compiled))
    }

    /// The plugin's component, compiled or from the cache, with its WIT
    /// version checked.
    fn load(&self, plugin: &PluginConfig) -> Result<Loaded, PluginError> {
        let fail = |failure| PluginError {
            plugin: plugin.name.clone(),
            path: plugin.source().to_path_buf(),
            failure,
        };
        let file = ComponentFile::open(&component_of(plugin)?.wasm).map_err(fail)?;
        let engine = &self.wasmtime().map_err(fail)?.engine;
        let stat = file.stat;
        let (component, compiled, entry) = match &self.cache {
            Some(cache) => cache
                .load_or_compile(engine, &stat, || file.read())
                .map(|c| (c.component, c.compiled, Some(c.entry))),
            None => file.read().and_then(|wasm| {
                Component::new(engine, wasm)
                    .map(|c| (c, true, None))
                    .map_err(|e| Failure::Load(LoadError::Compile(e)))
            }),
        }
        .map_err(fail)?;
        let world = check_version(engine, &component).map_err(fail)?;
        Ok(Loaded {
            component,
            world,
            compiled,
            entry,
        })
    }

    /// A fresh instance of the plugin, in its own store, for one container.
    pub fn instantiate<'r>(
        &'r self,
        plugin: &'r PluginConfig,
        ctx: Arc<ContainerContext>,
    ) -> Result<Instance<'r>, PluginError> {
        check_allow_list(plugin)?;
        let Loaded {
            component, world, ..
        } = self.load(plugin)?;
        let wasmtime = self.wasmtime().expect("started by load");
        let wasm = component_of(plugin)?;
        let memory = usize::try_from(wasm.limits.memory_mib << 20).unwrap_or(usize::MAX);
        let devices = DeviceGate::new(plugin.device_rule, &ctx);
        let state = PluginState::new(
            &plugin.name,
            ctx,
            self.host.clone(),
            plugin.allow.clone(),
            devices,
            wasm.settings.clone(),
            memory,
        );
        let mut store = Store::new(&wasmtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let mut instance = Instance {
            ticker: &wasmtime.ticker,
            plugin,
            limits: wasm.limits,
            store,
            bindings: None,
        };
        let bindings = instance.guarded("instantiation", |store| {
            let linker = &wasmtime.linker;
            Ok(match world {
                World::V0_1 => Bound::V0_1(
                    bindings::v0_1::Plugin::instantiate(&mut *store, &component, linker)?
                        .hookhost_policy_policy()
                        .clone(),
                ),
                World::V0_2 => Bound::V0_2(
                    bindings::v0_2::Plugin::instantiate(&mut *store, &component, linker)?
                        .hookhost_policy_policy()
                        .clone(),
                ),
            })
        });
        instance.bindings = Some(bindings.map_err(|e| match e.failure {
            Failure::Trap { message, .. } => PluginError {
                failure: Failure::Instantiate(message),
                ..e
            },
            _ => e,
        })?);
        Ok(instance)
    }
}

/// A component, ready to instantiate.
struct Loaded {
    component: Component,
    world: World,
    /// Whether it had to be compiled (not in the cache).
    compiled: bool,
    /// Its cache entry, when there is a cache.
    entry: Option<PathBuf>,
}

/// One plugin, instantiated for one container.
pub struct Instance<'r> {
    ticker: &'r Ticker,
    plugin: &'r PluginConfig,
    limits: crate::config::Limits,
    store: Store<PluginState>,
    bindings: Option<Bound>,
}

/// What a successful `apply` leaves behind.
pub struct Applied {
    pub plan: Plan,
    pub logs: Vec<LogLine>,
}

impl Instance<'_> {
    pub fn describe(&mut self) -> Result<PluginInfo, PluginError> {
        let bound = self.bound();
        self.guarded("describe", |store| {
            on_exports!(&bound, |policy| policy.call_describe(store).map(|i| {
                PluginInfo {
                    name: i.name,
                    vendor: i.vendor,
                    version: i.version,
                    summary: i.summary,
                }
            }))
        })
    }

    pub fn validate_settings(&mut self, settings: &str) -> Result<(), PluginError> {
        let bound = self.bound();
        self.fallible("validate-settings", |store| {
            on_exports!(&bound, |policy| policy
                .call_validate_settings(store, settings))
        })
    }

    pub fn devices(&mut self) -> Result<Vec<String>, PluginError> {
        let bound = self.bound();
        self.fallible("devices", |store| {
            on_exports!(&bound, |policy| policy.call_devices(store))
        })
    }

    /// Runs the policy. On success the plugin's own plan (not yet merged with
    /// the others') and its log; on failure the log is still available
    /// through [`Instance::logs`].
    pub fn apply(&mut self) -> Result<Applied, PluginError> {
        let bound = self.bound();
        self.fallible("apply", |store| {
            on_exports!(&bound, |policy| policy.call_apply(store))
        })?;
        Ok(self.applied())
    }

    /// Whether the plugin can plan named devices: a plugin of a world
    /// before 0.2 cannot ([`Failure::PlansNoDevices`]).
    pub fn can_plan_devices(&self) -> Result<(), PluginError> {
        match self.bound() {
            Bound::V0_1(_) => {
                let (major, minor, _) = World::V0_1.version();
                Err(self.fail(Failure::PlansNoDevices {
                    found: format!("{major}.{minor}.x"),
                }))
            }
            Bound::V0_2(_) => Ok(()),
        }
    }

    /// Plans what a container given the devices `names` gets (the store's
    /// context is an empty one at the `cdi` stage).
    pub fn plan_devices(&mut self, names: &[String]) -> Result<Applied, PluginError> {
        self.can_plan_devices()?;
        if let Bound::V0_2(policy) = self.bound() {
            self.fallible("plan-devices", |store| {
                policy.call_plan_devices(store, names)
            })?;
        }
        Ok(self.applied())
    }

    fn applied(&mut self) -> Applied {
        let state = self.store.data_mut();
        Applied {
            plan: state.requests.take_plan(),
            logs: state.take_logs(),
        }
    }

    /// The plugin's log so far.
    pub fn logs(&mut self) -> Vec<LogLine> {
        self.store.data_mut().take_logs()
    }

    fn bound(&self) -> Bound {
        self.bindings.clone().expect("set by Runtime::instantiate")
    }

    /// A guarded call of an export whose `Err` is the plugin's own refusal.
    fn fallible<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, PluginError> {
        self.guarded(call, f)?
            .map_err(|message| self.fail(Failure::Refused { call, message }))
    }

    fn fail(&self, failure: Failure) -> PluginError {
        PluginError {
            plugin: self.plugin.name.clone(),
            path: self.plugin.source().to_path_buf(),
            failure,
        }
    }

    /// Calls into the plugin under its time and memory limits and turns a
    /// trap into a failure that says what happened.
    fn guarded<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        let limit = self.limits.time_ms;
        let ticks = limit.div_ceil(TICK.as_millis() as u64).max(1);
        self.store.set_epoch_deadline(ticks);
        let _watch = self.ticker.watch(&self.plugin.name, call, limit);
        self.store
            .data_mut()
            .deadline
            .start(Duration::from_millis(limit));
        let result = f(&mut self.store);
        // A wait cut at the deadline is a timeout even when the plugin
        // returned before the next epoch check could interrupt it.
        let waited_out = self.store.data_mut().deadline.finish();
        let result = match result {
            Ok(_) if waited_out => Err(wasmtime::Error::from(Trap::Interrupt)),
            result => result,
        };
        result.map_err(|e| {
            let failure = if self.store.data().limiter.exceeded {
                Failure::OutOfMemory(self.limits.memory_mib)
            } else if waited_out || e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                Failure::Timeout(limit)
            } else {
                // The root cause says what happened ("wasm `unreachable`
                // instruction executed"); the rest is a backtrace of
                // unnamed functions that helps nobody reading a hook error.
                Failure::Trap {
                    call,
                    message: e.root_cause().to_string(),
                }
            };
            self.fail(failure)
        })
    }
}

/// The plugin's allow-list compiled, before anything runs against it: an
/// invalid glob is named with the manifest that holds it.
pub fn check_allow_list(plugin: &PluginConfig) -> Result<(), PluginError> {
    plugin.allow.check().map_err(|e| PluginError {
        plugin: plugin.name.clone(),
        path: plugin.manifest.clone(),
        failure: Failure::AllowList(e),
    })
}

/// The component of a WASM plugin; a static policy has none.
fn component_of(plugin: &PluginConfig) -> Result<&WasmPlugin, PluginError> {
    plugin.wasm().ok_or_else(|| PluginError {
        plugin: plugin.name.clone(),
        path: plugin.source().to_path_buf(),
        failure: Failure::NotAComponent,
    })
}

/// A component's file, opened and its header checked; its bytes are read
/// only when the cache lacks its compiled form.
struct ComponentFile {
    file: std::fs::File,
    stat: nix::sys::stat::FileStat,
}

impl ComponentFile {
    /// Opens a regular file and checks its header, so a foreign file costs
    /// one read of eight bytes.
    fn open(path: &Path) -> Result<Self, Failure> {
        let input::Regular { mut file, stat } =
            input::open_regular(nix::fcntl::AT_FDCWD, path, Follow::Yes).map_err(Failure::Read)?;
        let mut header = [0u8; 8];
        match file.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Failure::NotWasm)
            }
            Err(e) => return Err(Failure::Read(e)),
        }
        match header {
            HEADER => Ok(ComponentFile { file, stat }),
            [0, b'a', b's', b'm', 0x01, 0, 0, 0] => Err(Failure::CoreModule),
            _ => Err(Failure::NotWasm),
        }
    }

    /// Its bytes, its size checked before they are read.
    fn read(self) -> Result<Vec<u8>, Failure> {
        let len = u64::try_from(self.stat.st_size).unwrap_or(0);
        if len > WASM_LIMIT {
            return Err(Failure::TooLarge);
        }
        // It may have grown since the fstat: the read is capped too.
        input::read_limited(HEADER.chain(self.file), WASM_LIMIT, len).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                Failure::TooLarge
            } else {
                Failure::Read(e)
            }
        })
    }
}

/// The preamble of a component (layer 1 of the binary format).
const HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 0x01, 0];

/// The world of a component's policy export, or why this host cannot run
/// it: a plugin built for a patch newer than the host's may import what
/// the host lacks; another minor (below 1.0) or major is another world.
fn check_version(engine: &Engine, component: &Component) -> Result<World, Failure> {
    let prefix = format!("{WIT_PACKAGE}/policy");
    let ty = component.component_type();
    let export = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .find(|name| name.starts_with(&prefix))
        .ok_or(Failure::NotAPolicy)?;
    let version = export
        .strip_prefix(&prefix)
        .and_then(|v| v.strip_prefix('@'))
        .unwrap_or("");
    let parts: Vec<u64> = version
        .split(['.', '-', '+'])
        .take(3)
        .map_while(|p| p.parse().ok())
        .collect();
    World::ALL
        .into_iter()
        .find(|world| {
            let (major, minor, patch) = world.version();
            matches!(parts[..], [m, n, p] if m == major && n == minor && p <= patch)
        })
        .ok_or_else(|| Failure::Incompatible {
            found: format!(
                "{WIT_PACKAGE}@{}",
                if version.is_empty() {
                    "(unversioned)"
                } else {
                    version
                }
            ),
        })
}

/// Bumps the engine's epoch every tick, and ends the process when a single
/// call overruns twice its budget. No import a plugin has can wait that
/// long (the clock is bounded, the rest does bounded work), so this is a
/// last resort for a host call stuck where nothing bounds it, such as a
/// file system that hangs; it takes every plugin with it.
struct Ticker {
    stop: Arc<AtomicBool>,
    watched: Arc<Mutex<Option<Watched>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Watched {
    plugin: String,
    call: &'static str,
    limit_ms: u64,
    deadline: Instant,
}

/// Stops watching when the call returns.
struct Watch<'a>(&'a Mutex<Option<Watched>>);

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = None;
    }
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let watched: Arc<Mutex<Option<Watched>>> = Arc::default();
        let thread = std::thread::Builder::new()
            .name("hookhost-epoch".into())
            .spawn({
                let (stop, watched) = (stop.clone(), watched.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                        if let Some(w) = watched.lock().unwrap().as_ref() {
                            if Instant::now() > w.deadline {
                                eprintln!(
                                    "hookhost: plugin `{}` is stuck in `{}` past twice its time limit of {} ms; aborting",
                                    w.plugin, w.call, w.limit_ms
                                );
                                std::process::exit(1);
                            }
                        }
                    }
                }
            })
            // A small pids.max in the hook's cgroup can refuse a thread.
            .map_err(|e| format!("spawning the epoch thread: {e}"))?;
        Ok(Ticker {
            stop,
            watched,
            thread: Some(thread),
        })
    }

    fn watch(&self, plugin: &str, call: &'static str, limit_ms: u64) -> Watch<'_> {
        *self.watched.lock().unwrap() = Some(Watched {
            plugin: plugin.to_string(),
            call,
            limit_ms,
            deadline: Instant::now() + Duration::from_millis(limit_ms.saturating_mul(2)),
        });
        Watch(&self.watched)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The default cache directory: the system one for root, the user's own
/// otherwise (so a vendor can run `hookhost test` unprivileged).
pub fn default_cache_dir() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/cache/hookhost"));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("hookhost"))
}
