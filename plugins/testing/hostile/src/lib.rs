//! A plugin that misbehaves on purpose, so that hookhost's tests can prove the
//! sandbox holds. Its manifest's settings pick the misbehaviour of `apply`:
//!
//! - `loop`: spins forever (the time limit must stop it);
//! - `sleep`: sleeps for an hour, blocked inside a host call (WASI's clock),
//!   where epochs cannot interrupt it: the host's watchdog must;
//! - `alloc`: allocates without bound (the memory limit must stop it);
//! - `escape`: asks for `/etc/shadow` and `/dev/mem`, and returns the host's
//!   refusals as its error (a success is reported as a breach);
//! - `trap`: aborts, which traps;
//! - `wasi`: looks for what WASI might leak (environment, arguments, files)
//!   and reports a breach if it finds any;
//! - `noop`: does nothing, for benchmarks and empty plans.

use hookhost_plugin::inject::Device;
use hookhost_plugin::{host, PluginInfo, Policy};
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
    Alloc,
    Escape,
    Trap,
    Wasi,
    Noop,
}

struct Hostile;

impl Policy for Hostile {
    fn describe() -> PluginInfo {
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

    fn apply() -> Result<(), String> {
        match hookhost_plugin::settings::<Settings>()?.mode {
            Mode::Loop => loop {
                std::hint::black_box(());
            },
            Mode::Sleep => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
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
            Mode::Noop => Ok(()),
        }
    }
}

hookhost_plugin::export!(Hostile);
