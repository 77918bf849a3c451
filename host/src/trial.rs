//! `hookhost test BUNDLE --run`: the plan carried out for real, a vendor's
//! one-command end-to-end check. The bundle's rootfs is copied, hookhost is
//! added as the hook of the chosen stage (with the same plugins, host root
//! and cache), and the real runtime runs the copy. The container's process
//! is hookhost itself, bound read-only at [`INSPECTOR`] (it is static, so
//! it runs in any rootfs): it looks at every path the plan names from
//! inside the container, after `pivot_root` and under its device cgroup,
//! and prints what it saw.

use std::ffi::OsString;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::context::Stage;
use crate::lowering::{Lowered, Op};

/// Where hookhost is bound in the container, and the hidden command it runs.
pub const INSPECTOR: &str = "/.hookhost-inspect";
pub const INSPECT_COMMAND: &str = "inspect-container";

/// What the container must show at one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Expect {
    /// A device node that opens: success, or the driver's own error
    /// (ENXIO, ENODEV), never the device cgroup's EPERM.
    Device {
        path: String,
        char: bool,
        major: u32,
        minor: u32,
    },
    Directory {
        path: String,
    },
    /// A file that can be read (a bind or a copy), or a directory bound.
    File {
        path: String,
        directory: bool,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// What the container must show for `lowered`.
pub fn expectations(lowered: &Lowered) -> Vec<Expect> {
    lowered
        .ops
        .iter()
        .map(|op| match &op.what {
            Op::Directory { path, .. } => Expect::Directory { path: path.clone() },
            Op::DeviceNode {
                path,
                kind,
                major,
                minor,
                ..
            } => Expect::Device {
                path: path.clone(),
                char: kind.letter() == 'c',
                major: *major,
                minor: *minor,
            },
            Op::Bind {
                path, directory, ..
            } => Expect::File {
                path: path.clone(),
                directory: *directory,
            },
            Op::Copy { path, .. } | Op::Write { path, .. } => Expect::File {
                path: path.clone(),
                directory: false,
            },
            Op::Symlink { path, target } => Expect::Symlink {
                path: path.clone(),
                target: target.clone(),
            },
            // Seen through the cache file the drop-in's directories fill.
            Op::Ldconfig { .. } => Expect::File {
                path: crate::lowering::LDCONFIG_CACHE.into(),
                directory: false,
            },
        })
        .collect()
}

/// Inside the container: one line per expectation, `ok` or `FAIL`, and
/// whether all were met.
pub fn inspect(expected: &[Expect]) -> (String, bool) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut report = String::new();
    let mut all = true;
    for expect in expected {
        let (path, seen) = match expect {
            Expect::Device {
                path,
                char,
                major,
                minor,
            } => (path, seen_device(path, *char, *major, *minor)),
            Expect::Directory { path } => (
                path,
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.is_dir() => Ok("a directory".to_string()),
                    Ok(_) => Err("not a directory".to_string()),
                    Err(e) => Err(e.to_string()),
                },
            ),
            Expect::File { path, directory } => (
                path,
                match (std::fs::metadata(path), directory) {
                    (Ok(m), true) if m.is_dir() => Ok("a directory".into()),
                    (Ok(m), false) if m.is_file() => std::fs::File::open(path)
                        .map(|_| format!("a file of {} bytes, readable", m.len()))
                        .map_err(|e| format!("a file that cannot be opened: {e}")),
                    (Ok(m), _) if m.file_type().is_char_device() => {
                        Err(format!("a device {:x}", m.rdev()))
                    }
                    (Ok(_), true) => Err("not a directory".into()),
                    (Ok(_), false) => Err("not a regular file".into()),
                    (Err(e), _) => Err(e.to_string()),
                },
            ),
            Expect::Symlink { path, target } => (
                path,
                match std::fs::read_link(path) {
                    Ok(t) if t == Path::new(target) => Ok(format!("a link to {target}")),
                    Ok(t) => Err(format!("a link to {}, not {target}", t.display())),
                    Err(e) => Err(e.to_string()),
                },
            ),
        };
        match seen {
            Ok(what) => report.push_str(&format!("ok    {path}: {what}\n")),
            Err(why) => {
                all = false;
                report.push_str(&format!("FAIL  {path}: {why}\n"));
            }
        }
    }
    (report, all)
}

fn seen_device(path: &str, char: bool, major: u32, minor: u32) -> Result<String, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    if !(char && kind.is_char_device() || !char && kind.is_block_device()) {
        return Err("not the planned kind of device node".into());
    }
    let rdev = meta.rdev();
    let (seen_major, seen_minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    if (seen_major, seen_minor) != (u64::from(major), u64::from(minor)) {
        return Err(format!(
            "the device {seen_major}:{seen_minor}, not {major}:{minor}"
        ));
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path);
    let number = format!("{major}:{minor}");
    match opened.map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))) {
        Ok(_) => Ok(format!("{number}, opens")),
        Err(e @ (nix::errno::Errno::ENXIO | nix::errno::Errno::ENODEV)) => Ok(format!(
            "{number}, allowed by the device cgroup (open: {e}, no driver behind it)"
        )),
        Err(e) => Err(format!("{number}, but open fails: {e}")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error("--run runs a hook; the {0:?} stage has none (use prestart, create-runtime or create-container)")]
    Stage(Stage),
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
}

/// What the trial needs besides the bundle.
pub struct Trial<'a> {
    /// The bundle's rootfs (copied) and config.json (the base of the
    /// trial's).
    pub rootfs: &'a Path,
    pub config: Value,
    pub stage: Stage,
    /// hookhost's binary, then its global options: the hook entry and the
    /// inspector.
    pub hookhost: Vec<OsString>,
    /// The real runtime.
    pub runtime: &'a Path,
    pub expected: Vec<Expect>,
}

/// Runs the trial; returns the runtime's exit status and everything the
/// runtime and the container printed.
pub fn run(trial: Trial<'_>) -> Result<(bool, String), TrialError> {
    let (hook_stage, command) = match trial.stage {
        Stage::Prestart => ("prestart", "prestart"),
        Stage::CreateRuntime => ("createRuntime", "create-runtime"),
        Stage::CreateContainer => ("createContainer", "create-container"),
        stage => return Err(TrialError::Stage(stage)),
    };
    let io = |op: String| move |source| TrialError::Io { op, source };
    let work = tempfile::Builder::new()
        .prefix("hookhost-trial-")
        .tempdir()
        .map_err(io("making a temporary directory".into()))?;
    let rootfs = work.path().join("rootfs");
    // `cp -a`: the image's links, modes and owners as they are.
    let copied = Command::new("cp")
        .arg("-a")
        .arg(trial.rootfs)
        .arg(&rootfs)
        .status()
        .map_err(io(format!("copying {} (cp -a)", trial.rootfs.display())))?;
    if !copied.success() {
        return Err(TrialError::Io {
            op: format!("copying {}", trial.rootfs.display()),
            source: std::io::Error::other(format!("cp -a {copied}")),
        });
    }
    let mut config = trial.config;
    let exe = trial.hookhost[0].to_string_lossy().into_owned();
    let mut hook = trial.hookhost.clone();
    hook.push(command.into());
    config["root"] = json!({"path": rootfs, "readonly": false});
    config["hooks"] = json!({hook_stage: [crate::backend::shim::hook_entry(&hook)]});
    let expected = serde_json::to_string(&trial.expected).expect("JSON");
    config["process"]["args"] = json!([INSPECTOR, INSPECT_COMMAND, expected]);
    config["process"]["terminal"] = json!(false);
    let mut mounts = config["mounts"].as_array().cloned().unwrap_or_default();
    // runc needs /proc in the container to start its process; fixtures
    // often have no mounts at all.
    if !mounts.iter().any(|m| m["destination"] == "/proc") {
        mounts.push(json!({"destination": "/proc", "type": "proc", "source": "proc"}));
    }
    mounts.push(json!({
        "destination": INSPECTOR, "type": "bind", "source": exe,
        "options": ["bind", "ro", "nosuid", "nodev"],
    }));
    config["mounts"] = Value::Array(mounts);
    std::fs::write(work.path().join("config.json"), config.to_string())
        .map_err(io("writing the trial's config.json".into()))?;

    let id = format!("hookhost-test-{}", std::process::id());
    let state = work.path().join("state");
    let out = Command::new(trial.runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(work.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io(format!("running {}", trial.runtime.display())))?;
    let _ = Command::new(trial.runtime)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), said))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_inspector_sees_is_compared_with_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("dir")).unwrap();
        std::fs::write(d.join("lib.so"), b"elf").unwrap();
        std::os::unix::fs::symlink("lib.so", d.join("lib.so.1")).unwrap();
        let p = |name: &str| d.join(name).display().to_string();
        let (report, ok) = inspect(&[
            Expect::Directory { path: p("dir") },
            Expect::File {
                path: p("lib.so"),
                directory: false,
            },
            Expect::Symlink {
                path: p("lib.so.1"),
                target: "lib.so".into(),
            },
            Expect::Device {
                path: "/dev/null".into(),
                char: true,
                major: 1,
                minor: 3,
            },
        ]);
        assert!(ok, "{report}");
        assert!(report.contains("ok    /dev/null: 1:3, opens"), "{report}");

        let (report, ok) = inspect(&[
            Expect::Symlink {
                path: p("lib.so.1"),
                target: "other.so".into(),
            },
            Expect::Device {
                path: "/dev/null".into(),
                char: true,
                major: 1,
                minor: 5,
            },
            Expect::File {
                path: p("missing"),
                directory: false,
            },
        ]);
        assert!(!ok);
        assert_eq!(report.matches("FAIL").count(), 3, "{report}");
        assert!(
            report.contains("a link to lib.so, not other.so"),
            "{report}"
        );
        assert!(report.contains("the device 1:3, not 1:5"), "{report}");
    }
}
