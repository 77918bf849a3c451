//! What an administrator installs to have an engine run hookhost: a
//! containers/common hooks.d file (podman, CRI-O) for the prestart hook, and
//! the Docker and containerd snippets for the runtime shim.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::config::PluginConfig;

/// Where podman and CRI-O read administrators' hook files (masking those of
/// `/usr/share/containers/oci/hooks.d`).
pub const HOOKS_D: &str = "/etc/containers/oci/hooks.d";

/// The file hookhost writes there.
pub const HOOKS_D_FILE: &str = "hookhost.json";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not hookhost's hook file ({why}); left in place", path.display())]
    NotOurs { path: PathBuf, why: &'static str },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io { op, path, source }
}

/// The hooks.d `when` for hookhost's hook, from the plugins' activation
/// rules, and notes on what it cannot express. A plugin runs when any of
/// its conditions holds, but hooks.d injects a hook only when all the
/// conditions of its `when` hold, and it cannot look at the environment
/// or at mounts' destinations: so only commands (any of a list) or one
/// annotation can be said exactly; anything else is `always`, and
/// hookhost's own activation check decides inside the hook.
pub fn hooks_d_when(plugins: &[PluginConfig]) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    let mut commands: Vec<String> = Vec::new();
    let mut annotations: Vec<(String, String)> = Vec::new();
    for plugin in plugins {
        let a = &plugin.activation;
        if a.always {
            notes.push(format!(
                "plugin `{}` is active for every container",
                plugin.name
            ));
        }
        if !a.env.is_empty() || !a.env_names.is_empty() {
            notes.push(format!(
                "plugin `{}` activates on environment variables, which hooks.d cannot match",
                plugin.name
            ));
        }
        if !a.mounts.is_empty() {
            notes.push(format!(
                "plugin `{}` activates on mount destinations, which hooks.d cannot match",
                plugin.name
            ));
        }
        for re in &a.commands {
            if !commands.iter().any(|c| c == re.as_str()) {
                commands.push(re.as_str().to_string());
            }
        }
        for (k, v) in &a.annotations {
            annotations.push((k.as_str().to_string(), v.as_str().to_string()));
        }
    }
    if plugins.is_empty() {
        notes.push("no plugin is installed".into());
    }
    let when = match (notes.is_empty(), commands.is_empty(), annotations.len()) {
        (true, false, 0) => json!({"commands": commands}),
        (true, true, 1) => {
            let (k, v) = annotations.remove(0);
            json!({"annotations": {k: v}})
        }
        (true, _, _) => {
            notes.push(
                "the plugins' conditions are alternatives, and hooks.d needs all of a file's \
                 conditions to hold"
                    .into(),
            );
            json!({"always": true})
        }
        (false, _, _) => json!({"always": true}),
    };
    (when, notes)
}

/// A hooks.d 1.0.0 file: `command` (hookhost's binary, then its arguments
/// up to the stage's command) as a prestart hook with an empty environment.
pub fn hooks_d_file(command: &[OsString], when: Value) -> Value {
    json!({
        "version": "1.0.0",
        "hook": crate::backend::shim::hook_entry(command),
        "when": when,
        "stages": ["prestart"],
    })
}

/// Writes `content` as `dir/name`, 0644, replacing an older file at once
/// (a temporary file beside it, renamed over it).
pub fn write_file(dir: &Path, name: &str, content: &str) -> Result<PathBuf, InstallError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let path = dir.join(name);
    let mut file = tempfile::Builder::new()
        .prefix(".hookhost-")
        .tempfile_in(dir)
        .map_err(io("creating a file in", dir))?;
    file.write_all(content.as_bytes())
        .and_then(|()| {
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .map_err(io("writing", &path))?;
    file.persist(&path).map_err(|e| InstallError::Io {
        op: "renaming into",
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}

/// Removes hookhost's hooks.d file from `dir`, after checking it is one;
/// `Ok(None)` when there is none.
pub fn remove_hooks_d(dir: &Path) -> Result<Option<PathBuf>, InstallError> {
    let path = dir.join(HOOKS_D_FILE);
    let bytes = match crate::input::read_regular(
        nix::fcntl::AT_FDCWD,
        &path,
        crate::input::Follow::No,
        1 << 20,
    ) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(InstallError::Io {
                op: "reading",
                path,
                source,
            })
        }
    };
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| InstallError::NotOurs {
        path: path.clone(),
        why: "not JSON",
    })?;
    if doc["hook"]["args"][0] != "hookhost" {
        return Err(InstallError::NotOurs {
            path,
            why: "its hook is not hookhost",
        });
    }
    std::fs::remove_file(&path).map_err(io("removing", &path))?;
    Ok(Some(path))
}

/// Docker's `daemon.json` entry for the runtime shim.
pub fn docker_snippet(hookhost: &Path, runtime_args: &[OsString]) -> String {
    let mut args: Vec<Value> = vec!["runtime".into()];
    args.extend(
        runtime_args
            .iter()
            .map(|a| Value::String(a.to_string_lossy().into())),
    );
    args.push("--".into());
    let mut runtimes = Map::new();
    runtimes.insert(
        "hookhost".into(),
        json!({"path": hookhost, "runtimeArgs": args}),
    );
    let snippet = json!({"runtimes": runtimes});
    serde_json::to_string_pretty(&snippet).expect("JSON") + "\n"
}

/// containerd's CRI runtime for the shim (config.toml, version 2), and
/// Kubernetes' RuntimeClass naming it.
pub fn containerd_snippet(link: &Path) -> String {
    format!(
        "# /etc/containerd/config.toml (version = 2)\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hookhost]\n\
         \x20 runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hookhost.options]\n\
         \x20 BinaryName = {:?}\n\
         \n\
         # Kubernetes: pods with `runtimeClassName: hookhost` use it.\n\
         # apiVersion: node.k8s.io/v1\n\
         # kind: RuntimeClass\n\
         # metadata:\n\
         #   name: hookhost\n\
         # handler: hookhost\n",
        link.display().to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Inventory;

    fn plugins(manifests: &[(&str, &str)]) -> Vec<PluginConfig> {
        let dir = tempfile::tempdir().unwrap();
        for (name, manifest) in manifests {
            std::fs::write(dir.path().join(format!("{name}.json")), manifest).unwrap();
            std::fs::write(dir.path().join(format!("{name}.wasm")), b"\0asm").unwrap();
        }
        Inventory::load(&[dir.path().to_path_buf()])
            .unwrap()
            .plugins
    }

    #[test]
    fn commands_of_every_plugin_become_one_list() {
        let (when, notes) = hooks_d_when(&plugins(&[
            ("a", r#"{"activation": {"commands": ["nvidia-smi"]}}"#),
            ("b", r#"{"activation": {"commands": [".*/python3"]}}"#),
        ]));
        assert_eq!(
            when,
            json!({"commands": ["^(?:nvidia-smi)$", "^(?:.*/python3)$"]})
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn one_annotation_is_said_exactly() {
        let (when, notes) = hooks_d_when(&plugins(&[(
            "a",
            r#"{"activation": {"annotations": {"com\\.example\\.gpu": "yes"}}}"#,
        )]));
        assert_eq!(
            when,
            json!({"annotations": {"^(?:com\\.example\\.gpu)$": "^(?:yes)$"}})
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn env_or_alternatives_that_hooks_d_cannot_say_are_always_with_a_note() {
        let (when, notes) = hooks_d_when(&plugins(&[(
            "gpu",
            r#"{"activation": {"env": ["NVIDIA_VISIBLE_DEVICES"]}}"#,
        )]));
        assert_eq!(when, json!({"always": true}));
        assert_eq!(
            notes,
            ["plugin `gpu` activates on environment variables, which hooks.d cannot match"]
        );
        let (when, notes) = hooks_d_when(&plugins(&[(
            "gpu",
            r#"{"activation": {"mounts": ["/var/run/nvidia-container-devices/.+"]}}"#,
        )]));
        assert_eq!(when, json!({"always": true}));
        assert_eq!(
            notes,
            ["plugin `gpu` activates on mount destinations, which hooks.d cannot match"]
        );
        let (when, notes) = hooks_d_when(&plugins(&[
            ("a", r#"{"activation": {"commands": ["x"]}}"#),
            ("b", r#"{"activation": {"annotations": {"k": "v"}}}"#),
        ]));
        assert_eq!(when, json!({"always": true}));
        assert!(notes[0].contains("alternatives"), "{notes:?}");
    }

    #[test]
    fn the_hook_file_runs_hookhost_prestart_with_an_empty_environment() {
        let file = hooks_d_file(
            &["/usr/local/bin/hookhost".into(), "prestart".into()],
            json!({"always": true}),
        );
        assert_eq!(
            file,
            json!({
                "version": "1.0.0",
                "hook": {"path": "/usr/local/bin/hookhost", "args": ["hookhost", "prestart"], "env": []},
                "when": {"always": true},
                "stages": ["prestart"],
            })
        );
    }

    #[test]
    fn only_hookhosts_own_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(remove_hooks_d(dir.path()).unwrap().is_none());
        let other = json!({"version": "1.0.0", "hook": {"path": "/x", "args": ["x"]}});
        std::fs::write(dir.path().join(HOOKS_D_FILE), other.to_string()).unwrap();
        assert!(matches!(
            remove_hooks_d(dir.path()),
            Err(InstallError::NotOurs { .. })
        ));
        let ours = hooks_d_file(&["/h".into(), "prestart".into()], json!({"always": true}));
        write_file(dir.path(), HOOKS_D_FILE, &ours.to_string()).unwrap();
        let mode = std::fs::metadata(dir.path().join(HOOKS_D_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(
            remove_hooks_d(dir.path()).unwrap(),
            Some(dir.path().join(HOOKS_D_FILE))
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
