//! A plugin that misbehaves on purpose, so that hookhost's tests can prove the
//! sandbox holds. Its manifest's settings pick the misbehaviour of `apply`:
//!
//! - `loop`: spins forever (the time limit must stop it);
//! - `sleep`: sleeps for an hour, blocked inside a host call (WASI's clock),
//!   where epochs cannot interrupt it: the host's clock must end the wait at
//!   the call's deadline;
//! - `sleep-loop`: sleeps 10 ms at a time, forever;
//! - `nap`: sleeps 50 ms, well within its budget, and fails if the sleep
//!   returned early (the bounded clock must still sleep honestly);
//! - `huge-paths`: asks for directories, a symlink, a file and a glob with
//!   paths of several MiB, 100 times over; returns the host's refusals as
//!   its error (an accepted request is reported as a breach);
//! - `log-flood`: logs 100,000 lines and succeeds;
//! - `log-million`: logs 1,000,000 lines and succeeds;
//! - `recurse`: recurses without end (the stack limit must stop it);
//! - `many-requests`: asks for 100,000 directories, each a different path,
//!   and returns the first refusal as its error;
//! - `panic-describe`: panics in `describe`, before `apply` is reached;
//! - `alloc`: allocates without bound (the memory limit must stop it);
//! - `escape`: asks for `/etc/shadow` and `/dev/mem`, and returns the host's
//!   refusals as its error (a success is reported as a breach);
//! - `trap`: aborts, which traps;
//! - `wasi`: looks for what WASI might leak (environment, arguments, files)
//!   and reports a breach if it finds any;
//! - `noop`: does nothing, for benchmarks and empty plans.

use hookhost_plugin::inject::{self, Device, File, FileRole};
use hookhost_plugin::{host, log, PluginInfo, Policy};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Loop,
    Sleep,
    SleepLoop,
    Nap,
    HugePaths,
    LogFlood,
    Alloc,
    Escape,
    Trap,
    Wasi,
    Noop,
    LogMillion,
    Recurse,
    ManyRequests,
    PanicDescribe,
}

struct Hostile;

impl Policy for Hostile {
    fn describe() -> PluginInfo {
        if matches!(
            hookhost_plugin::settings::<Settings>().map(|s| s.mode),
            Ok(Mode::PanicDescribe)
        ) {
            panic!("hostile: describe panics on purpose");
        }
        PluginInfo {
            name: "hostile".into(),
            vendor: "hookhost tests".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Misbehaves on purpose to test the sandbox".into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        hookhost_plugin::parse_settings::<Settings>(&settings).map(drop)
    }

    fn devices() -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    /// Misbehaves as `apply` does.
    fn plan_devices(_names: Vec<String>) -> Result<(), String> {
        Self::apply()
    }

    fn apply() -> Result<(), String> {
        match hookhost_plugin::settings::<Settings>()?.mode {
            Mode::Loop => loop {
                std::hint::black_box(());
            },
            Mode::Sleep => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(())
            }
            Mode::SleepLoop => loop {
                std::thread::sleep(std::time::Duration::from_millis(10));
            },
            Mode::Nap => {
                let start = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_millis(50));
                match start.elapsed() {
                    slept if slept >= std::time::Duration::from_millis(50) => Ok(()),
                    slept => Err(format!("a 50 ms sleep returned after {slept:?}")),
                }
            }
            Mode::HugePaths => huge_paths(),
            Mode::LogFlood => {
                for i in 0..100_000 {
                    log::info!("line {i}");
                }
                Ok(())
            }
            Mode::Alloc => {
                let mut hoard = Vec::new();
                loop {
                    // vec! writes every byte, so each page is really used.
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            Mode::Escape => {
                let shadow = host::read_file("/etc/shadow", 4096);
                let mem = Device::new("/dev/mem").request();
                match (shadow, mem) {
                    (Err(shadow), Err(mem)) => Err(format!(
                        "read /etc/shadow: {shadow}; add-device /dev/mem: {mem}"
                    )),
                    _ => Err("sandbox breach: the host granted /etc/shadow or /dev/mem".into()),
                }
            }
            // Compiles to the `unreachable` instruction on wasm.
            Mode::Trap => std::process::abort(),
            Mode::Wasi => {
                let env = std::env::vars_os().count();
                let args = std::env::args_os().count();
                let files = std::fs::read_dir("/").is_ok() || std::fs::metadata("/etc").is_ok();
                if env == 0 && args == 0 && !files {
                    Ok(())
                } else {
                    Err(format!(
                        "sandbox breach: WASI gave {env} variables, {args} arguments, file access: {files}"
                    ))
                }
            }
            Mode::Noop | Mode::PanicDescribe => Ok(()),
            Mode::LogMillion => {
                for i in 0..1_000_000 {
                    log::info!("line {i}");
                }
                Ok(())
            }
            Mode::Recurse => Err(format!("recursion ended at {}", recurse(0))),
            Mode::ManyRequests => {
                for i in 0..100_000 {
                    inject::make_dir(&format!("/var/lib/hostile/{i}"), 0o755)
                        .map_err(|e| format!("request {i}: {e}"))?;
                }
                Err("sandbox breach: 100,000 requests accepted".into())
            }
        }
    }
}

/// Recursion that cannot be turned into a loop: each frame keeps a buffer
/// alive across the call. It ends only where `depth` wraps, which the stack
/// never reaches.
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    let frame = std::hint::black_box([depth; 64]);
    frame[0] + recurse(depth + 1) + frame[63]
}

/// Requests with paths of 4 MiB, each different so that none is a
/// duplicate the host could drop. All are made even when some are accepted,
/// as an attacker would, so that a host keeping them shows in its memory.
fn huge_paths() -> Result<(), String> {
    let mut path = "/a".repeat(2 << 20);
    let mut refusals = Vec::new();
    let mut accepted = 0;
    for i in 0..100u8 {
        // Vary the first component, in place.
        path.replace_range(1..2, &char::from(b'a' + i % 26).to_string());
        path.replace_range(3..4, &char::from(b'a' + i / 26).to_string());
        let answers = [
            ("make-dir", inject::make_dir(&path, 0o755)),
            ("symlink", inject::symlink(&path, "/etc/link")),
            ("copy-file", File::new(&path, FileRole::Misc).request()),
            ("glob", host::glob(&path).map(drop)),
        ];
        for (call, answer) in answers {
            match answer {
                Ok(()) => accepted += 1,
                Err(e) if i == 0 => refusals.push(format!("{call}: {e}")),
                Err(_) => {}
            }
        }
    }
    if accepted > 0 {
        return Err(format!(
            "sandbox breach: {accepted} requests with a 4 MiB path accepted"
        ));
    }
    Err(refusals.join("; "))
}

hookhost_plugin::export!(Hostile);
