//! The front: the small `hookhost` binary that every container start runs.
//!
//! Most container starts activate no plugin, and most calls of the runtime
//! shim (`start`, `state`, `kill`, `delete`) create nothing: for those the
//! answer follows from the command line, the manifests and the bundle
//! alone. The front gives it without the WebAssembly engine, clap or the
//! executor, none of which it links (starting the 25 MB engine binary at
//! all costs more than the whole fast path). Everything else goes to
//! [`ENGINE`] beside it, unchanged: the same arguments, the same `argv[0]`,
//! the same environment and descriptors, and the same bytes on stdin.
//!
//! The front decides only what it is sure of, with the engine's own code
//! (the context, the inventory, the activation rules, runc's argument
//! parser): an option it does not know, a value the engine would refuse,
//! any error, any active plugin, and the engine runs, and says what it
//! says.

use std::ffi::{OsStr, OsString};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::backend::hook::flow;
use crate::backend::shim::{self, argv};
use crate::config::{Inventory, DEFAULT_PLUGIN_DIRS};
use crate::context::{ContainerContext, OciState, Stage, STATE_ON_STDIN};
use crate::deadline::Deadline;

/// The engine: the full hookhost, installed beside the front.
pub const ENGINE: &str = "hookhost-engine";

/// What the front makes of its command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// `prestart`, `create-runtime` or `create-container`.
    Hook {
        stage: Stage,
        timeout: u64,
        after_shim: bool,
        plugins_dirs: Vec<PathBuf>,
    },
    /// `runtime [--runtime-path P] -- ARGS`.
    Runtime {
        runtime_path: Option<PathBuf>,
        args: Vec<OsString>,
        plugins_dirs: Vec<PathBuf>,
    },
}

/// Where a fast path ends.
enum Next {
    /// No plugin is active: the hook has nothing to do.
    Done,
    /// Become the real runtime.
    Runtime(PathBuf, Vec<OsString>),
    /// The engine's turn, with the bytes the front took from stdin.
    Engine(Option<Vec<u8>>),
}

pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let next = match parse(&args) {
        Some(Call::Hook {
            stage,
            timeout,
            after_shim,
            plugins_dirs,
        }) => match hook(stage, timeout, after_shim, &plugins_dirs) {
            Ok(next) => next,
            Err(message) => {
                eprintln!("hookhost: {message}");
                return ExitCode::FAILURE;
            }
        },
        Some(Call::Runtime {
            runtime_path,
            args,
            plugins_dirs,
        }) => runtime(runtime_path.as_deref(), args, &plugins_dirs),
        None => Next::Engine(None),
    };
    match next {
        Next::Done => ExitCode::SUCCESS,
        Next::Runtime(path, runtime_args) => {
            shim::exec(&path, &runtime_args);
            // The engine says why, in runc's log where the engine reads it.
            engine(&args, None)
        }
        Next::Engine(stdin) => engine(&args, stdin),
    }
}

/// The hook's fast path: done when no plugin is active for the container.
/// The state is read here (a failure to read it is reported as the engine
/// would); everything after it that fails is the engine's to report.
fn hook(
    stage: Stage,
    timeout: u64,
    after_shim: bool,
    plugins_dirs: &[PathBuf],
) -> Result<Next, String> {
    let names = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    if !matches!(flow::check_environment(stage, names), Ok(None)) {
        return Ok(Next::Engine(None));
    }
    let deadline = Deadline::start(stage, Duration::from_secs(timeout));
    let bytes = OciState::read_stdin().map_err(|e| e.to_string())?;
    let Ok(state) = OciState::parse(STATE_ON_STDIN, &bytes) else {
        return Ok(Next::Engine(Some(bytes)));
    };
    deadline.container(&state.id);
    let seen_at = if after_shim {
        Stage::RuntimeShim
    } else {
        stage
    };
    let ctx = ContainerContext::load(&state.bundle.clone(), state, seen_at).ok();
    Ok(if may_be_active(ctx.as_ref(), plugins_dirs) {
        Next::Engine(Some(bytes))
    } else {
        Next::Done
    })
}

/// The runtime shim's fast path: straight to the runtime when the command
/// creates nothing, or creates a container no plugin is active for.
fn runtime(path: Option<&Path>, args: Vec<OsString>, plugins_dirs: &[PathBuf]) -> Next {
    let Ok(real) = shim::find_runtime(path) else {
        return Next::Engine(None);
    };
    let called = argv::parse(&args);
    if called.creates {
        let bundle = called.bundle.unwrap_or_else(|| PathBuf::from("."));
        let loaded = shim::load(&bundle, called.id.as_deref()).ok();
        if may_be_active(loaded.as_ref().map(|(_, ctx)| &**ctx), plugins_dirs) {
            return Next::Engine(None);
        }
    }
    Next::Runtime(real, args)
}

/// Whether a plugin may be active for the container: yes unless its
/// context and the manifests both loaded and no plugin is.
fn may_be_active(ctx: Option<&ContainerContext>, plugins_dirs: &[PathBuf]) -> bool {
    ctx.zip(Inventory::load(plugins_dirs).ok())
        .is_none_or(|(ctx, inventory)| inventory.any_active(ctx))
}

/// Becomes the engine, with `stdin` (if the front read it) as its stdin.
fn engine(args: &[OsString], stdin: Option<Vec<u8>>) -> ExitCode {
    let path = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(ENGINE),
        Err(e) => {
            eprintln!("hookhost: cannot tell where hookhost is (to run {ENGINE} beside it): {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(bytes) = stdin {
        if let Err(e) = replay_stdin(&bytes) {
            eprintln!("hookhost: cannot hand the state on to {ENGINE}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let argv: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    let error = shim::execv(&path, &argv);
    eprintln!(
        "hookhost: cannot run the engine {}: {error}",
        path.display()
    );
    ExitCode::FAILURE
}

/// Makes stdin a file holding `bytes`, read from the start: what the
/// engine reads is exactly what the runtime wrote.
fn replay_stdin(bytes: &[u8]) -> nix::Result<()> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"hookhost-state", MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes).map_err(io_errno)?;
    file.rewind().map_err(io_errno)?;
    // The copy on 0 does not inherit close-on-exec.
    nix::unistd::dup2_stdin(&file)
}

fn io_errno(e: std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO))
}

/// The `hookhost` to name in what engines run for every container (a
/// hooks.d file, Docker's daemon.json): the front beside this binary, or
/// this binary itself where there is none (run from elsewhere).
pub fn installed_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let front = exe.with_file_name("hookhost");
    Ok(
        if exe.file_name() == Some(OsStr::new(ENGINE)) && front.is_file() {
            front
        } else {
            exe
        },
    )
}

/// The front's reading of the command line: `None` for anything but the
/// forms it knows (which the engine then parses with clap). Options are
/// read as clap reads them (`--name VALUE` or `--name=VALUE`, the global
/// ones before or after the command), and a value clap would refuse, or an
/// option given twice that may be given once, is the engine's to report.
pub(crate) fn parse(args: &[OsString]) -> Option<Call> {
    // Called as `hookhost-runtime`: the options come from a file.
    let args = shim::invoked_as(args.to_vec()).ok()?;
    let mut seen: Vec<&str> = Vec::new();
    let mut plugins_dirs = Vec::new();
    // Whether `--plugins-dir` came before the command, after it.
    let mut dirs_where = [false, false];
    let mut command: Option<&str> = None;
    let (mut timeout, mut after_shim, mut runtime_path) = (60, false, None);
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let arg = arg.to_str()?;
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--") else {
            if command.is_some() {
                return None;
            }
            command = Some(arg);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        // Only the global options may come before the command (clap).
        let global = matches!(name, "plugins-dir" | "host-root" | "cache-dir" | "no-cache");
        if !global && command.is_none() {
            return None;
        }
        // Switches: no value.
        if matches!(name, "no-cache" | "after-shim") {
            if inline.is_some() || seen.contains(&name) {
                return None;
            }
            seen.push(name);
            after_shim |= name == "after-shim";
            continue;
        }
        if !matches!(
            name,
            "plugins-dir"
                | "host-root"
                | "cache-dir"
                | "audit-log"
                | "ldconfig"
                | "timeout"
                | "runtime-path"
        ) {
            return None;
        }
        let value = match inline {
            Some(value) => value,
            None => rest.next()?.to_str()?,
        };
        if value.is_empty() || value.starts_with('-') && inline.is_none() {
            return None;
        }
        if name == "plugins-dir" {
            // clap keeps only the directories given after the command
            // when some come before it too: the engine's to read.
            dirs_where[usize::from(command.is_some())] = true;
            if dirs_where == [true, true] {
                return None;
            }
            plugins_dirs.push(PathBuf::from(value));
            continue;
        }
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        match name {
            "timeout" => timeout = value.parse().ok().filter(|t| (1..=86400).contains(t))?,
            "runtime-path" => runtime_path = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    if seen.contains(&"no-cache") && seen.contains(&"cache-dir") {
        return None;
    }
    if plugins_dirs.is_empty() {
        plugins_dirs = DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect();
    }
    let hook_only = ["audit-log", "timeout", "after-shim"];
    let stage = match command? {
        "prestart" => Stage::Prestart,
        "create-runtime" => Stage::CreateRuntime,
        "create-container" => Stage::CreateContainer,
        "runtime" if !seen.iter().any(|o| hook_only.contains(o)) => {
            // The runtime's arguments: all after the first `--`.
            let args = args.iter().skip_while(|a| *a != "--").skip(1);
            return Some(Call::Runtime {
                runtime_path,
                args: args.cloned().collect(),
                plugins_dirs,
            });
        }
        _ => return None,
    };
    if seen.contains(&"runtime-path") || args.iter().any(|a| a == "--") {
        return None;
    }
    Some(Call::Hook {
        stage,
        timeout,
        after_shim,
        plugins_dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(args: &[&str]) -> Option<Call> {
        let args: Vec<OsString> = std::iter::once("hookhost")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        parse(&args)
    }

    fn defaults() -> Vec<PathBuf> {
        DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn the_hook_commands_are_read_with_their_options_anywhere() {
        assert_eq!(
            call(&["prestart"]),
            Some(Call::Hook {
                stage: Stage::Prestart,
                timeout: 60,
                after_shim: false,
                plugins_dirs: defaults(),
            })
        );
        assert_eq!(
            call(&[
                "--plugins-dir",
                "/a",
                "--host-root=/h",
                "--plugins-dir=/b",
                "create-runtime",
                "--timeout",
                "5",
                "--after-shim",
                "--ldconfig",
                "/sbin/ldconfig",
                "--audit-log=/var/log/h",
            ]),
            Some(Call::Hook {
                stage: Stage::CreateRuntime,
                timeout: 5,
                after_shim: true,
                plugins_dirs: vec!["/a".into(), "/b".into()],
            })
        );
    }

    #[test]
    fn the_runtime_gets_everything_after_the_separator() {
        assert_eq!(
            call(&[
                "runtime",
                "--runtime-path",
                "/usr/sbin/runc",
                "--",
                "--root",
                "/run/runc",
                "create",
                "--bundle",
                "--",
                "id"
            ]),
            Some(Call::Runtime {
                runtime_path: Some("/usr/sbin/runc".into()),
                args: ["--root", "/run/runc", "create", "--bundle", "--", "id"]
                    .map(OsString::from)
                    .to_vec(),
                plugins_dirs: defaults(),
            })
        );
    }

    #[test]
    fn anything_the_front_is_not_sure_of_is_the_engines() {
        for args in [
            &[][..],
            &["--version"],
            &["--help"],
            &["-h"],
            &["test", "bundle"],
            &["prestart", "--audit-always", "--audit-log", "/l"],
            &["prestart", "--timeout", "0"],
            &["prestart", "--timeout", "86401"],
            &["prestart", "--timeout=x"],
            &["prestart", "--ldconfig", "/a", "--ldconfig", "/b"],
            &["prestart", "--ldconfig"],
            &["prestart", "--ldconfig", "--after-shim"],
            &["prestart", "--after-shim=yes"],
            &["prestart", "--no-cache", "--cache-dir", "/c"],
            &["prestart", "--runtime-path", "/r"],
            &["prestart", "extra"],
            &["prestart", "--", "x"],
            &["--timeout", "5", "prestart"],
            &["--ldconfig", "/l", "runtime", "--", "create"],
            // clap reads only /b.
            &["--plugins-dir", "/a", "prestart", "--plugins-dir", "/b"],
            &["runtime", "--hook-config-path", "/h", "--", "create"],
            &["runtime", "--after-shim", "--", "create"],
            &["runtime", "create"],
            &["cdi-hook", "--dir", "/a", "0755"],
        ] {
            assert_eq!(call(args), None, "{args:?}");
        }
    }
}
