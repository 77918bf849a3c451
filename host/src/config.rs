//! Configuration: the plugin directories and the manifest beside each plugin.
//!
//! Directories are read in increasing precedence; a manifest in a later
//! directory masks the one of the same file name in an earlier directory
//! (the containers/common hooks.d rule). That is how an administrator
//! disables or narrows a vendor's plugin without touching the vendor's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::fcntl::AT_FDCWD;
use regex_lite::Regex;
use serde::Deserialize;

use crate::allow::AllowList;
use crate::context::ContainerContext;
use crate::input::{self, Follow};
use crate::requests::DeviceRule;
use crate::static_policy::StaticPolicy;

/// Where plugins live when `--plugins-dir` is not given, lowest precedence first.
pub const DEFAULT_PLUGIN_DIRS: &[&str] =
    &["/usr/share/hookhost/plugins.d", "/etc/hookhost/plugins.d"];

/// The most of a manifest hookhost reads: real ones are a few KiB.
pub const MANIFEST_LIMIT: u64 = 1 << 20;

// The causes are part of the messages and deliberately not `source`s: the
// top level prints the whole chain, which would then say them twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read plugin directory {dir}: {error}")]
    ReadDir { dir: PathBuf, error: std::io::Error },
    #[error("cannot read manifest {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("manifest {path}: {error}")]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("manifest {path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
    #[error(
        "manifest {path}: no plugin `{wasm}` beside it or in a lower-precedence plugin directory"
    )]
    MissingWasm { path: PathBuf, wasm: String },
    /// `--plugin NAME` names no enabled plugin; the installed ones are listed
    /// so a typo is obvious.
    #[error("no enabled plugin named `{name}` (installed: {})", installed_list(.installed))]
    NoSuchPlugin {
        name: String,
        installed: Vec<String>,
    },
}

fn installed_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A manifest as written: `NAME.json` next to `NAME.wasm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Manifest {
    /// The component, relative to the manifest's directory. Default
    /// `NAME.wasm`, looked up beside the manifest and then in the
    /// lower-precedence directories, so an override need not copy it.
    wasm: Option<PathBuf>,
    /// An override with `"disabled": true` and nothing else turns a plugin off.
    #[serde(default)]
    disabled: bool,
    activation: Option<ActivationSpec>,
    #[serde(default)]
    allow: Vec<String>,
    /// Which device nodes the plugin may add at all (an administrator's
    /// bound on what the container's environment can select).
    #[serde(default)]
    device_rule: DeviceRule,
    #[serde(default = "empty_object")]
    settings: serde_json::Value,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    on_error: OnError,
    /// The CDI kind (`vendor.com/class`) of the specs `hookhost cdi
    /// generate` writes for this plugin; default `hookhost/NAME`.
    cdi_kind: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ActivationSpec {
    #[serde(default)]
    env: Vec<String>,
    /// Regexes matched against the whole name of each variable of the
    /// container's environment (for numbered families like FPGA_REGION_N).
    #[serde(default)]
    env_names: Vec<String>,
    /// Key regex → value regex, both matched against the whole string.
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// Regexes matched against the whole of `process.args[0]`.
    #[serde(default)]
    commands: Vec<String>,
    /// Regexes matched against the whole destination of each of the spec's
    /// mounts (device lists a device plugin writes as mounts).
    #[serde(default)]
    mounts: Vec<String>,
    #[serde(default)]
    always: bool,
}

/// Per-plugin resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget of one call into the plugin.
    #[serde(default = "default_time_ms")]
    pub time_ms: u64,
    /// Linear memory cap.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
}

fn default_time_ms() -> u64 {
    1000
}

fn default_memory_mib() -> u64 {
    64
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_ms: default_time_ms(),
            memory_mib: default_memory_mib(),
        }
    }
}

/// What a failing plugin does to the container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The container does not start.
    #[default]
    Fail,
    /// The plugin's requests are dropped and the others go on.
    Skip,
}

/// When a plugin applies to a container: any one condition suffices.
#[derive(Debug, Clone, Default)]
pub struct Activation {
    pub always: bool,
    pub env: Vec<String>,
    pub env_names: Vec<Regex>,
    pub annotations: Vec<(Regex, Regex)>,
    pub commands: Vec<Regex>,
    pub mounts: Vec<Regex>,
}

impl Activation {
    pub fn matches(&self, ctx: &ContainerContext) -> bool {
        self.always
            || self.env.iter().any(|flag| ctx.env_match(flag))
            || ctx.env.iter().any(|entry| {
                let name = entry
                    .split_once('=')
                    .map_or(entry.as_str(), |(name, _)| name);
                self.env_names.iter().any(|re| re.is_match(name))
            })
            || self.annotations.iter().any(|(k, v)| {
                ctx.annotations
                    .iter()
                    .any(|(key, value)| k.is_match(key) && v.is_match(value))
            })
            || ctx
                .args
                .first()
                .is_some_and(|cmd| self.commands.iter().any(|re| re.is_match(cmd)))
            || (!self.mounts.is_empty()
                && ctx
                    .mounts()
                    .iter()
                    .any(|mount| self.mounts.iter().any(|re| re.is_match(&mount.destination))))
    }
}

/// An installed, enabled plugin, ready to be loaded.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The manifest's file name without `.json`.
    pub name: String,
    pub manifest: PathBuf,
    pub activation: Activation,
    pub allow: AllowList,
    pub device_rule: DeviceRule,
    pub on_error: OnError,
    pub kind: PluginKind,
}

/// What makes a plugin's decisions.
#[derive(Debug, Clone)]
pub enum PluginKind {
    /// A WebAssembly component, run in the sandbox.
    Wasm(WasmPlugin),
    /// An oci-injector-hook config, run by the host.
    Static(StaticPolicy),
}

#[derive(Debug, Clone)]
pub struct WasmPlugin {
    pub wasm: PathBuf,
    /// The manifest's settings, as the JSON text handed to the plugin.
    pub settings: String,
    pub limits: Limits,
    /// The CDI kind of its specs (`vendor.com/class`).
    pub cdi_kind: String,
}

impl PluginConfig {
    /// The component, for a WASM plugin.
    pub fn wasm(&self) -> Option<&WasmPlugin> {
        match &self.kind {
            PluginKind::Wasm(wasm) => Some(wasm),
            PluginKind::Static(_) => None,
        }
    }

    /// What the plugin is made of, for listings and errors: the component's
    /// path, or the manifest's for a static policy.
    pub fn source(&self) -> &Path {
        match &self.kind {
            PluginKind::Wasm(wasm) => &wasm.wasm,
            PluginKind::Static(_) => &self.manifest,
        }
    }
}

/// A manifest that lost to one of the same name in a later directory.
#[derive(Debug, Clone)]
pub struct Masked {
    pub name: String,
    pub manifest: PathBuf,
    pub by: PathBuf,
}

/// Everything found in the plugin directories.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Enabled plugins, sorted by name: the order they run in.
    pub plugins: Vec<PluginConfig>,
    /// Manifests that an override disabled (name, manifest).
    pub disabled: Vec<(String, PathBuf)>,
    pub masked: Vec<Masked>,
}

impl Inventory {
    /// Reads `dirs` (lowest precedence first). A directory that does not
    /// exist is empty; one that cannot be read is an error.
    pub fn load(dirs: &[PathBuf]) -> Result<Self, ConfigError> {
        // name -> manifest paths, lowest precedence first
        let mut found: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(ConfigError::ReadDir {
                        dir: dir.clone(),
                        error,
                    })
                }
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|error| ConfigError::ReadDir {
                    dir: dir.clone(),
                    error,
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "json") {
                    names.push(path);
                }
            }
            names.sort();
            for path in names {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                found.entry(name).or_default().push(path);
            }
        }

        let mut inventory = Inventory::default();
        for (name, mut manifests) in found {
            let winner = manifests.pop().expect("at least one manifest per name");
            inventory.masked.extend(manifests.iter().map(|m| Masked {
                name: name.clone(),
                manifest: m.clone(),
                by: winner.clone(),
            }));
            match load_manifest(&name, &winner, dirs)? {
                Some(plugin) => inventory.plugins.push(plugin),
                None => inventory.disabled.push((name, winner)),
            }
        }
        Ok(inventory)
    }

    /// The enabled plugins named in `names`, or all of them when `names` is
    /// empty; an unknown name is an error.
    /// Whether some plugin is active for `ctx`.
    pub fn any_active(&self, ctx: &ContainerContext) -> bool {
        self.plugins.iter().any(|p| p.activation.matches(ctx))
    }

    pub fn select(&self, names: &[String]) -> Result<Vec<&PluginConfig>, ConfigError> {
        if names.is_empty() {
            return Ok(self.plugins.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.plugins.iter().find(|p| &p.name == n).ok_or_else(|| {
                    ConfigError::NoSuchPlugin {
                        name: n.clone(),
                        installed: self.plugins.iter().map(|p| p.name.clone()).collect(),
                    }
                })
            })
            .collect()
    }
}

fn load_manifest(
    name: &str,
    path: &Path,
    dirs: &[PathBuf],
) -> Result<Option<PluginConfig>, ConfigError> {
    // A regular file (a FIFO would hang the hook), of bounded size; a
    // symlink is followed: the plugin directories are the administrator's.
    let text =
        input::read_regular(AT_FDCWD, path, Follow::Yes, MANIFEST_LIMIT).map_err(|error| {
            ConfigError::Read {
                path: path.to_path_buf(),
                error,
            }
        })?;
    parse_manifest(name, path, &text, dirs)
}

/// The plugin `name` whose manifest `path` holds `text` (`None`: disabled):
/// everything of loading a manifest but reading it (the fuzz targets
/// `manifest` and `seed` call it).
pub(crate) fn parse_manifest(
    name: &str,
    path: &Path,
    text: &[u8],
    dirs: &[PathBuf],
) -> Result<Option<PluginConfig>, ConfigError> {
    let parse_error = |error| ConfigError::Parse {
        path: path.to_path_buf(),
        error,
    };
    let json: serde_json::Value = serde_json::from_slice(text).map_err(parse_error)?;
    let invalid = |field, problem: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        field,
        problem,
    };
    if StaticPolicy::is_one(&json) {
        let policy: StaticPolicy = serde_json::from_value(json).map_err(parse_error)?;
        if policy.activation_flag.is_empty() {
            return Err(invalid("activation_flag", "must name a variable".into()));
        }
        return Ok(Some(PluginConfig {
            name: name.to_string(),
            manifest: path.to_path_buf(),
            activation: Activation {
                env: vec![policy.activation_flag.clone()],
                ..Activation::default()
            },
            allow: policy.allow_list().map_err(|e| invalid("paths", e))?,
            device_rule: policy.device_rule,
            on_error: OnError::Fail,
            kind: PluginKind::Static(policy),
        }));
    }
    let manifest: Manifest = serde_json::from_value(json).map_err(parse_error)?;
    if manifest.disabled {
        return Ok(None);
    }
    let spec = manifest.activation.ok_or_else(|| {
        invalid(
            "activation",
            "is required (one of `always`, `env`, `env-names`, `annotations`, `commands`, \
             `mounts`)"
                .into(),
        )
    })?;
    if !spec.always
        && spec.env.is_empty()
        && spec.env_names.is_empty()
        && spec.annotations.is_empty()
        && spec.commands.is_empty()
        && spec.mounts.is_empty()
    {
        return Err(invalid(
            "activation",
            "names no condition, so the plugin could never run; set `always`, `env`, \
             `env-names`, `annotations`, `commands` or `mounts`"
                .into(),
        ));
    }
    let whole = |field, pattern: &str| {
        // Anchored: `nvidia` must not match `not-nvidia-at-all`.
        Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            // regex draws a caret diagram over several lines; keep the last,
            // which says what is wrong.
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default().trim().to_string();
            invalid(field, format!("`{pattern}` is not a valid regex: {why}"))
        })
    };
    let activation = Activation {
        always: spec.always,
        env: spec.env,
        env_names: spec
            .env_names
            .iter()
            .map(|n| whole("activation.env-names", n))
            .collect::<Result<_, _>>()?,
        annotations: spec
            .annotations
            .iter()
            .map(|(k, v)| {
                Ok((
                    whole("activation.annotations", k)?,
                    whole("activation.annotations", v)?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?,
        commands: spec
            .commands
            .iter()
            .map(|c| whole("activation.commands", c))
            .collect::<Result<_, _>>()?,
        mounts: spec
            .mounts
            .iter()
            .map(|m| whole("activation.mounts", m))
            .collect::<Result<_, _>>()?,
    };
    let allow = AllowList::new(&manifest.allow).map_err(|e| invalid("allow", e))?;
    if !manifest.settings.is_object() {
        return Err(invalid("settings", "must be a JSON object".into()));
    }
    if manifest.limits.time_ms == 0 || manifest.limits.memory_mib == 0 {
        return Err(invalid(
            "limits",
            "time-ms and memory-mib must be above 0".into(),
        ));
    }
    let wasm = find_wasm(name, path, manifest.wasm.as_deref(), dirs)?;
    Ok(Some(PluginConfig {
        name: name.to_string(),
        manifest: path.to_path_buf(),
        activation,
        allow,
        device_rule: manifest.device_rule,
        on_error: manifest.on_error,
        kind: PluginKind::Wasm(WasmPlugin {
            wasm,
            settings: manifest.settings.to_string(),
            limits: manifest.limits,
            cdi_kind: manifest
                .cdi_kind
                .unwrap_or_else(|| format!("hookhost/{name}")),
        }),
    }))
}

fn find_wasm(
    name: &str,
    manifest: &Path,
    wasm: Option<&Path>,
    dirs: &[PathBuf],
) -> Result<PathBuf, ConfigError> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let missing = |wasm: &Path| ConfigError::MissingWasm {
        path: manifest.to_path_buf(),
        wasm: wasm.display().to_string(),
    };
    if let Some(wasm) = wasm {
        let path = dir.join(wasm);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(&path))
        };
    }
    let file = format!("{name}.wasm");
    // Beside the manifest first, then the directories it overrides.
    let position = dirs.iter().rposition(|d| d == dir).unwrap_or(dirs.len());
    std::iter::once(dir)
        .chain(dirs[..position].iter().rev().map(PathBuf::as_path))
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
        .ok_or_else(|| missing(Path::new(&file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    const GPU: &str = r#"{"activation": {"env": ["GPU"]}, "allow": ["/dev/gpu*"]}"#;

    #[test]
    fn later_directory_masks_and_an_override_can_reuse_the_vendor_wasm() {
        let tmp = tempfile::tempdir().unwrap();
        let (vendor, admin) = (tmp.path().join("vendor"), tmp.path().join("admin"));
        write(&vendor, "gpu.json", GPU);
        write(&vendor, "gpu.wasm", "");
        write(
            &admin,
            "gpu.json",
            r#"{"activation": {"always": true}, "allow": []}"#,
        );

        let inv = Inventory::load(&[vendor.clone(), admin.clone()]).unwrap();
        assert_eq!(inv.plugins.len(), 1);
        let gpu = &inv.plugins[0];
        assert_eq!(gpu.manifest, admin.join("gpu.json"));
        assert_eq!(gpu.source(), vendor.join("gpu.wasm"));
        assert!(gpu.activation.always);
        assert_eq!(inv.masked[0].manifest, vendor.join("gpu.json"));
    }

    #[test]
    fn an_override_can_disable_a_plugin() {
        let tmp = tempfile::tempdir().unwrap();
        let (vendor, admin) = (tmp.path().join("vendor"), tmp.path().join("admin"));
        write(&vendor, "gpu.json", GPU);
        write(&vendor, "gpu.wasm", "");
        write(&admin, "gpu.json", r#"{"disabled": true}"#);
        let inv = Inventory::load(&[vendor, admin.clone()]).unwrap();
        assert!(inv.plugins.is_empty());
        assert_eq!(
            inv.disabled,
            vec![("gpu".to_string(), admin.join("gpu.json"))]
        );
    }

    #[test]
    fn plugins_run_in_file_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["b", "a", "c"] {
            write(tmp.path(), &format!("{name}.json"), GPU);
            write(tmp.path(), &format!("{name}.wasm"), "");
        }
        let inv = Inventory::load(&[tmp.path().to_path_buf()]).unwrap();
        let names: Vec<_> = inv.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn selecting_an_unknown_plugin_names_it_and_the_installed_ones() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["b", "a"] {
            write(tmp.path(), &format!("{name}.json"), GPU);
            write(tmp.path(), &format!("{name}.wasm"), "");
        }
        let inv = Inventory::load(&[tmp.path().to_path_buf()]).unwrap();
        let picked: Vec<_> = inv.select(&["b".into()]).unwrap();
        assert_eq!(picked[0].name, "b");
        assert_eq!(inv.select(&[]).unwrap().len(), 2);
        let err = inv.select(&["a".into(), "nosuch".into()]).unwrap_err();
        assert!(matches!(err, ConfigError::NoSuchPlugin { ref name, .. } if name == "nosuch"));
        assert_eq!(
            err.to_string(),
            "no enabled plugin named `nosuch` (installed: a, b)"
        );
        let empty = Inventory::load(&[tmp.path().join("none")]).unwrap();
        assert_eq!(
            empty.select(&["a".into()]).unwrap_err().to_string(),
            "no enabled plugin named `a` (installed: none)"
        );
    }

    fn load_error(manifest: &str) -> String {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "x.json", manifest);
        write(tmp.path(), "x.wasm", "");
        Inventory::load(&[tmp.path().to_path_buf()])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_manifests_name_the_file_and_the_field() {
        let e = load_error(r#"{"activation": {"always": true}, "alow": []}"#);
        assert!(
            e.contains("x.json") && e.contains("unknown field `alow`"),
            "{e}"
        );
        let e = load_error(r#"{"activation": {"commands": ["(unclosed"]}}"#);
        assert!(
            e.contains("activation.commands") && e.contains("(unclosed"),
            "{e}"
        );
        let e = load_error(r#"{"activation": {}}"#);
        assert!(
            e.contains("activation") && e.contains("no condition"),
            "{e}"
        );
        let e = load_error(r#"{"activation": {"always": true}, "allow": ["dev/*"]}"#);
        assert!(e.contains("allow") && e.contains("absolute"), "{e}");
        let e = load_error(r#"{"activation": {"always": true}, "wasm": "nope.wasm"}"#);
        assert!(e.contains("nope.wasm"), "{e}");
    }

    #[test]
    fn the_device_rule_defaults_to_any_and_an_override_can_set_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (vendor, admin) = (tmp.path().join("vendor"), tmp.path().join("admin"));
        write(&vendor, "gpu.json", GPU);
        write(&vendor, "gpu.wasm", "");
        write(&vendor, "seed.json", r#"{"activation_flag": "SEED"}"#);
        let inv = Inventory::load(std::slice::from_ref(&vendor)).unwrap();
        assert!(inv.plugins.iter().all(|p| p.device_rule == DeviceRule::Any));

        write(
            &admin,
            "gpu.json",
            r#"{"activation": {"env": ["GPU"]}, "allow": ["/dev/gpu*"], "device-rule": "spec-listed"}"#,
        );
        write(
            &admin,
            "seed.json",
            r#"{"activation_flag": "SEED", "device_rule": "privileged-only"}"#,
        );
        let inv = Inventory::load(&[vendor, admin]).unwrap();
        let rules: Vec<_> = inv.plugins.iter().map(|p| p.device_rule).collect();
        assert_eq!(rules, [DeviceRule::SpecListed, DeviceRule::PrivilegedOnly]);

        let e = load_error(r#"{"activation": {"always": true}, "device-rule": "listed"}"#);
        assert!(
            e.contains("x.json") && e.contains("unknown variant `listed`"),
            "{e}"
        );
    }

    #[test]
    fn env_names_match_whole_variable_names() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "x.json",
            r#"{"activation": {"env-names": ["FPGA_REGION_[1-9][0-9]*"]}}"#,
        );
        write(tmp.path(), "x.wasm", "");
        let inv = Inventory::load(&[tmp.path().to_path_buf()]).unwrap();
        let act = &inv.plugins[0].activation;
        let mut ctx = ContainerContext::empty();
        ctx.env = vec!["FPGA_REGION_12=abc".into()];
        assert!(act.matches(&ctx));
        ctx.env = vec!["FPGA_REGION_1X=abc".into(), "MY_FPGA_REGION_1=x".into()];
        assert!(!act.matches(&ctx));
        ctx.env = vec!["FPGA_REGION_3".into()];
        assert!(act.matches(&ctx), "an entry without `=` is a name too");
    }

    #[test]
    fn activation_regexes_match_whole_strings() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "x.json",
            r#"{"activation": {"commands": [".*/nvidia-smi"], "annotations": {"vendor\\.com/gpu": "true|yes"}}}"#,
        );
        write(tmp.path(), "x.wasm", "");
        let inv = Inventory::load(&[tmp.path().to_path_buf()]).unwrap();
        let act = &inv.plugins[0].activation;
        let mut ctx = ContainerContext::empty();
        ctx.args = vec!["/usr/bin/nvidia-smi".into()];
        assert!(act.matches(&ctx));
        ctx.args = vec!["/usr/bin/nvidia-smi-wrapper".into()];
        assert!(!act.matches(&ctx));
        ctx.annotations
            .insert("vendor.com/gpu".into(), "yes".into());
        assert!(act.matches(&ctx));
        ctx.annotations
            .insert("vendor.com/gpu".into(), "yesno".into());
        assert!(!act.matches(&ctx));
    }

    #[test]
    fn mount_activation_matches_a_whole_mount_destination() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "x.json",
            r#"{"activation": {"mounts": ["/var/run/vendor-devices/.+"]}}"#,
        );
        write(tmp.path(), "x.wasm", "");
        let inv = Inventory::load(&[tmp.path().to_path_buf()]).unwrap();
        let act = &inv.plugins[0].activation;
        let with_mount = |destination: &str| {
            let mut ctx = ContainerContext::empty();
            ctx.spec
                .set_mounts(Some(vec![oci_spec::runtime::MountBuilder::default()
                    .destination(destination)
                    .source("/dev/null")
                    .build()
                    .unwrap()]));
            ctx
        };
        assert!(act.matches(&with_mount("/var/run/vendor-devices/0")));
        assert!(!act.matches(&with_mount("/var/run/vendor-devices/")));
        assert!(!act.matches(&with_mount("/x/var/run/vendor-devices/0")));
        assert!(!act.matches(&ContainerContext::empty()));
        let e = load_error(r#"{"activation": {"mounts": ["(unclosed"]}}"#);
        assert!(
            e.contains("activation.mounts") && e.contains("(unclosed"),
            "{e}"
        );
    }
}
