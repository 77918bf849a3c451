//! oci-injector-hook's configuration format, run by the host itself as a
//! static policy, so that existing configs keep working when dropped into a
//! plugins directory:
//!
//! ```json
//! { "activation_flag": "OCI_FOO",
//!   "devices": ["/dev/foo"], "binaries": ["/usr/bin/runfoo"],
//!   "libraries": ["/usr/lib64/libfoo*.so"], "directories": ["/etc/foo"],
//!   "miscellaneous": ["/etc/foo/config.json"] }
//! ```
//!
//! The listed paths are the policy's allow-list, and every entry goes through
//! the same checked [`Requests`] as a WASM plugin's: nothing is taken from
//! outside the list, the host root or the rootfs.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::allow::AllowList;
use crate::hostfs::FileKind;
use crate::plan::{FileRole, Transfer};
use crate::requests::{DeviceRequest, DeviceRule, FileRequest, RequestError, Requests};

/// The mode of the `directories` a config creates in the container.
const DIRECTORY_MODE: u32 = 0o755;

/// One oci-injector-hook config, as written. Unknown keys are refused: a
/// misspelt `libaries` would otherwise inject nothing, silently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPolicy {
    /// `VAR` (set, to anything) or `VAR=value` (set to exactly that).
    pub activation_flag: String,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub binaries: Vec<String>,
    #[serde(default)]
    pub libraries: Vec<String>,
    #[serde(default)]
    pub directories: Vec<String>,
    #[serde(default)]
    pub miscellaneous: Vec<String>,
    /// hookhost's own key, not oci-injector-hook's: the manifest's
    /// `device-rule`, so an administrator can bound a config's devices too.
    #[serde(default)]
    pub device_rule: DeviceRule,
}

impl StaticPolicy {
    /// Whether a manifest's JSON is in this format rather than hookhost's
    /// (whose keys are kebab-case, so the two cannot be confused).
    pub fn is_one(json: &serde_json::Value) -> bool {
        json.get("activation_flag").is_some()
    }

    /// Every host path the config names: its allow-list. Directories are
    /// made in the container, not read from the host, so they are not in it.
    pub fn allow_list(&self) -> Result<AllowList, String> {
        let host_paths: Vec<String> = [
            &self.devices,
            &self.binaries,
            &self.libraries,
            &self.miscellaneous,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        // Each path is also expanded with `host.glob`, which lists one
        // level per component: refuse at load what would fail every start.
        if let Some(deep) = host_paths.iter().find(|p| p.contains("**")) {
            return Err(format!(
                "`{deep}`: `**` is not supported; name each level with `*`"
            ));
        }
        AllowList::new(&host_paths)
    }

    /// Puts every listed entry into `requests`; the first refusal fails the
    /// policy, naming the entry. Returns warnings for the log.
    pub fn apply(&self, requests: &mut Requests) -> Result<Vec<String>, RequestError> {
        let mut warnings = Vec::new();
        for dir in &self.directories {
            requests.make_dir(dir, DIRECTORY_MODE)?;
        }
        for pattern in &self.devices {
            let is_pattern = is_pattern(pattern);
            for path in expand(requests, pattern, &mut warnings)? {
                // `/dev/nvidia*` also matches the directory /dev/nvidia-caps:
                // a pattern's matches that are not device nodes are skipped;
                // a plain path must be one.
                let kind = requests.stat(&path)?.kind;
                if is_pattern && !matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
                    warnings.push(format!(
                        "{path} (from {pattern}) is not a device node; skipped"
                    ));
                    continue;
                }
                requests.add_device(DeviceRequest {
                    host_path: path,
                    ..DeviceRequest::default()
                })?;
            }
        }
        let files = [
            (&self.binaries, FileRole::Binary),
            (&self.libraries, FileRole::Library),
            (&self.miscellaneous, FileRole::Misc),
        ];
        for (patterns, role) in files {
            for pattern in patterns {
                for path in expand(requests, pattern, &mut warnings)? {
                    add_file(requests, &path, role, &mut warnings)?;
                }
            }
        }
        // oci-injector-hook refreshed the linker cache whenever it injected
        // libraries.
        if !self.libraries.is_empty() {
            requests.run_ldconfig()?;
        }
        Ok(warnings)
    }
}

fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The host paths a listed entry stands for. A plain path must exist; a
/// pattern (`*`, `?`, `[`) may match nothing, which is only worth a warning.
fn expand(
    requests: &Requests,
    pattern: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, RequestError> {
    if !is_pattern(pattern) {
        return Ok(vec![pattern.to_string()]);
    }
    let paths = requests.host().glob(requests.allow(), pattern)?;
    if paths.is_empty() {
        warnings.push(format!("{pattern} matches nothing on this host"));
    }
    Ok(paths)
}

/// A file, or a symlink recreated as one. The link's target comes into the
/// container only if the config lists it too: the listed paths are the whole
/// allow-list.
fn add_file(
    requests: &mut Requests,
    path: &str,
    role: FileRole,
    warnings: &mut Vec<String>,
) -> Result<(), RequestError> {
    if requests.stat(path)?.kind != FileKind::Symlink {
        return requests.add_file(FileRequest {
            host_path: path.to_string(),
            container_path: None,
            role,
            transfer: Transfer::Bind,
        });
    }
    let target = requests.host().read_link(requests.allow(), path)?;
    if !requests.allow().allows(&link_target(path, &target)) {
        warnings.push(format!(
            "{path} is a symlink to {target}, which this config does not list; \
             the link will dangle in the container"
        ));
    }
    requests.symlink(&target, path)
}

/// Where a link at `link` to `target` points, resolved lexically (the host
/// is not consulted: this only decides whether to warn).
fn link_target(link: &str, target: &str) -> PathBuf {
    let mut resolved = PathBuf::from("/");
    let base = Path::new(link).parent().unwrap_or(Path::new("/"));
    for part in base.join(target).components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => resolved.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_resolve_relative_to_the_link() {
        assert_eq!(
            link_target("/usr/lib64/libfoo.so", "libfoo.so.1"),
            Path::new("/usr/lib64/libfoo.so.1")
        );
        assert_eq!(
            link_target("/usr/lib64/libfoo.so", "../lib/libfoo.so.1"),
            Path::new("/usr/lib/libfoo.so.1")
        );
        assert_eq!(
            link_target("/usr/lib64/libfoo.so", "/opt/foo/libfoo.so.1"),
            Path::new("/opt/foo/libfoo.so.1")
        );
    }

    #[test]
    fn the_seed_format_is_told_apart_and_its_listed_paths_are_its_allow_list() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"activation_flag": "OCI_FOO", "devices": ["/dev/foo"],
                "libraries": ["/usr/lib64/libfoo*.so"], "directories": ["/etc/foo"]}"#,
        )
        .unwrap();
        assert!(StaticPolicy::is_one(&json));
        assert!(!StaticPolicy::is_one(
            &serde_json::json!({"activation": {}})
        ));
        let policy: StaticPolicy = serde_json::from_value(json).unwrap();
        let allow = policy.allow_list().unwrap();
        assert!(allow.allows(Path::new("/dev/foo")));
        assert!(allow.allows(Path::new("/usr/lib64/libfoo-ext.so")));
        assert!(!allow.allows(Path::new("/usr/lib64/libbar.so")));
        assert!(!allow.allows(Path::new("/etc/foo")), "made, not read");
    }
}
