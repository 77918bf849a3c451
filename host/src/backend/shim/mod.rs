//! The runtime shim (`hookhost runtime`): an OCI runtime in front of the
//! real one, as awslabs' oci-add-hooks and NVIDIA's container runtime are.
//! On `create` and `run` it edits the bundle's config.json; then it execs
//! the real runtime with the same arguments, so that signals, stdio, the
//! console socket and the exit status are the runtime's own.
//!
//! The edit ([`prepare`]):
//! 1. the active plugins are evaluated at the `runtime-shim` stage, where
//!    `set-env` works, and the plan is lowered;
//! 2. device nodes, their allow rules, read-only binds and the environment
//!    go into the spec ([`spec_edit`]), so the runtime makes the nodes and
//!    programs the device cgroup itself: this works on cgroup v2;
//! 3. what a spec cannot express (directories, copies, symlinks, ldconfig)
//!    is left to a `createRuntime` hook entry running hookhost with
//!    `--after-shim` and an empty `env`: it re-evaluates the same plugins
//!    from their root-owned manifests and does only that part; nothing of
//!    the plan travels through the bundle, which a container's owner may
//!    write;
//! 4. the hooks of a `--hook-config-path` file are prepended to each stage's;
//! 5. config.json is replaced atomically (a temporary file in the bundle,
//!    renamed over it), keeping its mode and owner. On any failure it is
//!    left as it was.

pub mod argv;
pub mod hooks;
pub mod spec_edit;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::config::Inventory;
use crate::context::{ContainerContext, ContextError, OciState, Stage};
use crate::evaluate::{evaluate, EvalError, Outcome};
use crate::lowering::lower;
use crate::runtime::Runtime;
use hooks::HookConfig;
use spec_edit::EditError;

/// Where the real runtime is looked for when `--runtime-path` is not given:
/// fixed places, never `PATH` (an engine's environment is its own).
pub const RUNTIME_SEARCH: &[&str] = &[
    "/usr/local/sbin/runc",
    "/usr/local/bin/runc",
    "/usr/sbin/runc",
    "/usr/bin/runc",
    "/sbin/runc",
    "/bin/runc",
];

/// What the shim adds besides the plugins' plan.
pub struct Options {
    /// The hooks of `--hook-config-path`.
    pub hook_config: Option<HookConfig>,
    /// hookhost's own command line for the hook entry, from its binary
    /// to the stage command: `[EXE, global options..., "create-runtime",
    /// "--after-shim", ...]`.
    pub hook_entry: Vec<OsString>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Evaluate(#[from] EvalError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    Source(#[from] crate::backend::BindSourceError),
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The plugins' runtime could not be set up (host root, cache).
    #[error("{0}")]
    Setup(String),
    #[error("no runtime given (--runtime-path) and none found at {}", RUNTIME_SEARCH.join(", "))]
    NoRuntime,
    #[error("the runtime path {} is not absolute", .0.display())]
    RelativeRuntime(PathBuf),
    #[error("running the runtime {}: {source}", path.display())]
    Exec {
        path: PathBuf,
        source: nix::errno::Errno,
    },
}

/// What [`prepare`] did to config.json.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// No hooks were configured, and no plugin was active (no engine
    /// started) or the active ones asked for nothing: left as it was.
    Unchanged,
    /// Rewritten; `hook` says whether hookhost's hook entry was added.
    Edited { hook: bool },
}

/// Edits the config.json of `bundle` for the container `id` (see the
/// module's documentation). `show` gets the plugins' log lines.
pub fn prepare(
    bundle: &Path,
    id: Option<&str>,
    inventory: &Inventory,
    runtime: &dyn Fn() -> Result<Runtime, ShimError>,
    options: &Options,
    show: &dyn Fn(&[Outcome]),
) -> Result<Prepared, ShimError> {
    let (bytes, ctx) = load(bundle, id)?;
    let active = inventory.any_active(&ctx);
    let hook_config = options.hook_config.as_ref().filter(|h| !h.is_empty());
    if !active && hook_config.is_none() {
        return Ok(Prepared::Unchanged);
    }

    let path = ctx.bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&bytes).map_err(|source| ShimError::Json {
        path: path.clone(),
        source,
    })?;
    let mut hook = false;
    if active {
        let runtime = runtime()?;
        let evaluation = match evaluate(&runtime, inventory, &ctx) {
            Ok(evaluation) => evaluation,
            Err(failed) => {
                show(&failed.outcomes);
                return Err(failed.error.into());
            }
        };
        show(&evaluation.outcomes);
        if evaluation.plan.is_empty() && hook_config.is_none() {
            // Active, and deciding on nothing (`NVIDIA_VISIBLE_DEVICES=void`).
            return Ok(Prepared::Unchanged);
        }
        // The spec names owners as the container sees them: no mapping.
        let lowered = lower(&evaluation.plan, &[], &[]).expect("identity maps every id");
        // runc will mount each source by its path.
        crate::backend::check_bind_sources(runtime.host(), &lowered)?;
        spec_edit::apply(&mut config, &lowered, runtime.host().root())?;
        if !spec_edit::hook_part(lowered).ops.is_empty() {
            hooks::append(
                &mut config,
                "createRuntime",
                hook_entry(&options.hook_entry),
            )?;
            hook = true;
        }
    }
    if let Some(hook_config) = hook_config {
        hook_config.prepend_to(&mut config)?;
    }
    replace(&path, &config)?;
    Ok(Prepared::Edited { hook })
}

/// The container `id` (else named after its bundle) as the shim sees it,
/// and the bytes of its config.json.
pub fn load(
    bundle: &Path,
    id: Option<&str>,
) -> Result<(Vec<u8>, Arc<ContainerContext>), ContextError> {
    let bundle = ContainerContext::bundle_dir(bundle)?;
    let bytes = ContainerContext::read_config(&bundle)?;
    let mut state = OciState::for_bundle(&bundle);
    if let Some(id) = id {
        state.id = id.to_string();
    }
    let ctx = ContainerContext::from_config(&bundle, &bytes, state, Stage::RuntimeShim)?;
    Ok((bytes, Arc::new(ctx)))
}

/// A hook entry running hookhost (`command`: its binary, by absolute path,
/// then its arguments) with an empty environment (runc would hand a
/// prestart hook none, but say so: a copied entry moved to createContainer
/// would get the image's).
pub fn hook_entry(command: &[OsString]) -> Value {
    let text = |s: &OsString| Value::String(s.to_string_lossy().into_owned());
    let mut args = command.iter().map(text);
    let path = args.next().unwrap_or(Value::Null);
    let mut argv = vec![Value::String("hookhost".into())];
    argv.extend(args);
    serde_json::json!({"path": path, "args": argv, "env": []})
}

/// Replaces `path` with `config`: written to a new file beside it with the
/// same mode and owner, then renamed over it, so a reader (and the runtime)
/// sees the old file or the new one, never a part. Not synced: a bundle is
/// the state of one container start, which a crash ends anyway, and an
/// fsync would cost the start milliseconds on a disk.
fn replace(path: &Path, config: &Value) -> Result<(), ShimError> {
    let fail = |source| ShimError::Write {
        path: path.to_path_buf(),
        source,
    };
    let old = std::fs::symlink_metadata(path).map_err(fail)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut new = tempfile::Builder::new()
        .prefix(".config.json.hookhost-")
        .tempfile_in(dir)
        .map_err(fail)?;
    let file = new.as_file_mut();
    serde_json::to_writer(&mut *file, config).map_err(|e| fail(e.into()))?;
    file.flush().map_err(fail)?;
    std::os::unix::fs::fchown(&*file, Some(old.uid()), Some(old.gid())).map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
        .map_err(fail)?;
    new.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The name that makes hookhost the runtime shim with no arguments of its
/// own: engines that take a runtime by path alone call it.
pub const SHIM_NAME: &str = "hookhost-runtime";

/// Where `hookhost-runtime` reads its options: `{"args": [...]}`, the
/// arguments of `hookhost runtime` before `--` (what Docker's `runtimeArgs`
/// would hold). `HOOKHOST_RUNTIME_CONFIG` in the engine's environment (root's,
/// never a container's) names another file.
pub const SHIM_CONFIG: &str = "/etc/hookhost/runtime.json";

/// The most of the shim's options file that is read.
const SHIM_CONFIG_LIMIT: u64 = 64 << 10;

/// The command line to parse: `args` itself, or when hookhost was called
/// as [`SHIM_NAME`], `hookhost runtime OPTIONS... -- ARGS...` with the
/// options of [`SHIM_CONFIG`] (none if the default file does not exist).
pub fn invoked_as(args: Vec<OsString>) -> Result<Vec<OsString>, ShimError> {
    let called = args.first().map(Path::new).and_then(Path::file_name);
    if called != Some(std::ffi::OsStr::new(SHIM_NAME)) {
        return Ok(args);
    }
    let named = std::env::var_os("HOOKHOST_RUNTIME_CONFIG").map(PathBuf::from);
    let file = named.clone().unwrap_or_else(|| PathBuf::from(SHIM_CONFIG));
    let options = match crate::input::read_regular(
        nix::fcntl::AT_FDCWD,
        &file,
        crate::input::Follow::Yes,
        SHIM_CONFIG_LIMIT,
    ) {
        Ok(bytes) => ShimConfig::parse(&bytes).map_err(|source| ShimError::Json {
            path: file.clone(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => {
            ShimConfig::default()
        }
        Err(source) => return Err(ShimError::Read { path: file, source }),
    };
    let mut argv: Vec<OsString> = vec!["hookhost".into(), "runtime".into()];
    argv.extend(options.args.into_iter().map(OsString::from));
    argv.push("--".into());
    argv.extend(args.into_iter().skip(1));
    Ok(argv)
}

/// The shim's options file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShimConfig {
    args: Vec<String>,
}

impl ShimConfig {
    fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The real runtime: `given` (absolute), else the first of
/// [`RUNTIME_SEARCH`] that exists.
pub fn find_runtime(given: Option<&Path>) -> Result<PathBuf, ShimError> {
    match given {
        Some(path) if path.is_absolute() => Ok(path.to_path_buf()),
        Some(path) => Err(ShimError::RelativeRuntime(path.to_path_buf())),
        None => RUNTIME_SEARCH
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(ShimError::NoRuntime),
    }
}

/// Replaces this process with `runtime ARGS...`, the environment and every
/// inherited descriptor unchanged. Returns only on failure.
pub fn exec(runtime: &Path, args: &[OsString]) -> ShimError {
    let mut argv = vec![runtime.as_os_str()];
    argv.extend(args.iter().map(OsString::as_os_str));
    ShimError::Exec {
        path: runtime.to_path_buf(),
        source: execv(runtime, &argv),
    }
}

/// Replaces this process with `path`, `argv` (from `argv[0]`) its
/// arguments. Returns only on failure.
pub fn execv(path: &Path, argv: &[&std::ffi::OsStr]) -> nix::errno::Errno {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).map_err(|_| nix::errno::Errno::EINVAL);
    let argv: Result<Vec<CString>, _> = argv.iter().copied().map(c).collect();
    match argv.and_then(|argv| nix::unistd::execv(&c(path.as_os_str())?, &argv)) {
        Err(errno) => errno,
        Ok(never) => match never {},
    }
}

/// runc's own log format, for an error the engine reads back from the log
/// file (containerd's shim reports the last `error` line of `--log`).
pub fn log_error(log: &Path, message: &str) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let line = serde_json::json!({"level": "error", "msg": message, "time": unix_to_rfc3339(secs)});
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!(
            "hookhost: warning: cannot write the runtime log {}: {e}",
            log.display()
        );
    }
}

/// `1970-01-01T00:00:00Z` for Unix seconds (UTC; days to civil date after
/// Howard Hinnant's algorithm).
fn unix_to_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_rfc3339_in_utc() {
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_to_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(unix_to_rfc3339(1_796_521_599), "2026-12-06T01:46:39Z");
    }

    #[test]
    fn the_hook_entry_runs_hookhost_by_path_with_an_empty_environment() {
        let entry = hook_entry(&[
            "/usr/local/bin/hookhost".into(),
            "create-runtime".into(),
            "--after-shim".into(),
        ]);
        assert_eq!(
            entry,
            serde_json::json!({
                "path": "/usr/local/bin/hookhost",
                "args": ["hookhost", "create-runtime", "--after-shim"],
                "env": [],
            })
        );
    }

    #[test]
    fn called_by_another_name_the_arguments_are_left_alone() {
        let args: Vec<OsString> = vec!["/usr/bin/hookhost".into(), "test".into()];
        assert_eq!(invoked_as(args.clone()).unwrap(), args);
    }

    #[test]
    fn the_shims_options_file_takes_only_args() {
        let config = ShimConfig::parse(br#"{"args": ["--runtime-path", "/r"]}"#).unwrap();
        assert_eq!(config.args, ["--runtime-path", "/r"]);
        assert!(ShimConfig::parse(br#"{"args": [], "runtime": "/r"}"#).is_err());
    }

    #[test]
    fn a_relative_runtime_path_is_refused() {
        assert!(matches!(
            find_runtime(Some(Path::new("runc"))),
            Err(ShimError::RelativeRuntime(_))
        ));
    }
}
