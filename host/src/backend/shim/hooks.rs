//! Hooks for config.json: those of a `--hook-config-path` file (the format
//! of awslabs' oci-add-hooks: `{"hooks": {STAGE: [HOOK...]}}`), prepended to
//! each stage's own, and hookhost's own entry for the work only a hook can
//! do after a spec edit.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::spec_edit::EditError;
use crate::input::{self, Follow};

/// The stages a hook may be given for, as config.json spells them.
const STAGES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The most of a hook config file that is read.
const LIMIT: u64 = 1 << 20;

/// A hook config file that cannot be used; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum HookConfigError {
    #[error("cannot read the hook config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hook config {}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
}

/// The hooks of a hook config file, stage by stage, checked: known stages
/// only, each entry an object with an absolute `path`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookConfig {
    stages: Map<String, Value>,
}

impl HookConfig {
    /// Reads `path`: a regular file (not followed if a link, as config.json
    /// is not), at most 1 MiB.
    pub fn read(path: &Path) -> Result<Self, HookConfigError> {
        let bytes = input::read_regular(nix::fcntl::AT_FDCWD, path, Follow::No, LIMIT).map_err(
            |source| HookConfigError::Read {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let invalid = |problem: String| HookConfigError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        Self::from_json(doc).map_err(invalid)
    }

    fn from_json(doc: Value) -> Result<Self, String> {
        let Some(Value::Object(stages)) = doc.get("hooks").cloned() else {
            return Err("has no `hooks` object".into());
        };
        for (stage, hooks) in &stages {
            if !STAGES.contains(&stage.as_str()) {
                return Err(format!(
                    "`hooks.{stage}` is not a hook stage (one of {})",
                    STAGES.join(", ")
                ));
            }
            let Some(hooks) = hooks.as_array() else {
                return Err(format!("`hooks.{stage}` is not an array"));
            };
            for (i, hook) in hooks.iter().enumerate() {
                let path = hook.get("path").and_then(Value::as_str);
                if !path.is_some_and(|p| p.starts_with('/')) {
                    return Err(format!("`hooks.{stage}[{i}].path` is not an absolute path"));
                }
            }
        }
        Ok(HookConfig { stages })
    }

    pub fn is_empty(&self) -> bool {
        self.stages
            .values()
            .all(|h| h.as_array().is_none_or(Vec::is_empty))
    }

    /// Puts these hooks before each stage's existing ones in `config`.
    pub fn prepend_to(&self, config: &mut Value) -> Result<(), EditError> {
        for (stage, hooks) in &self.stages {
            let existing = stage_hooks(config, stage)?;
            let mut merged = hooks.as_array().cloned().unwrap_or_default();
            merged.append(existing);
            *existing = merged;
        }
        Ok(())
    }
}

/// Appends `hook` to the hooks of `stage` in `config`, after those already
/// there (Docker's own prestart hook, say).
pub fn append(config: &mut Value, stage: &str, hook: Value) -> Result<(), EditError> {
    stage_hooks(config, stage)?.push(hook);
    Ok(())
}

/// `hooks.STAGE` of `config`, made where it is missing.
fn stage_hooks<'a>(config: &'a mut Value, stage: &str) -> Result<&'a mut Vec<Value>, EditError> {
    let shape = |expected| EditError::Shape {
        field: "hooks",
        expected,
    };
    let root = config.as_object_mut().ok_or(shape("in an object"))?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    if hooks.is_null() {
        *hooks = Value::Object(Map::new());
    }
    let hooks = hooks.as_object_mut().ok_or(shape("an object"))?;
    let list = hooks
        .entry(stage)
        .or_insert_with(|| Value::Array(Vec::new()));
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    list.as_array_mut().ok_or(shape("an object of arrays"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn configured_hooks_go_before_the_existing_ones_which_are_kept() {
        let config = HookConfig::from_json(json!({"hooks": {
            "prestart": [{"path": "/usr/bin/a", "args": ["a", "1"]}],
            "poststop": [{"path": "/usr/bin/z"}],
        }}))
        .unwrap();
        let mut spec = json!({
            "ociVersion": "1.0.2",
            "hooks": {"prestart": [{"path": "/proc/42/exe", "args": ["libnetwork-setkey"]}]},
        });
        config.prepend_to(&mut spec).unwrap();
        assert_eq!(
            spec,
            json!({
                "ociVersion": "1.0.2",
                "hooks": {
                    "prestart": [
                        {"path": "/usr/bin/a", "args": ["a", "1"]},
                        {"path": "/proc/42/exe", "args": ["libnetwork-setkey"]},
                    ],
                    "poststop": [{"path": "/usr/bin/z"}],
                },
            })
        );
    }

    #[test]
    fn a_config_with_an_unknown_stage_or_a_relative_path_is_refused() {
        let err = HookConfig::from_json(json!({"hooks": {"prestrat": []}})).unwrap_err();
        assert!(
            err.starts_with("`hooks.prestrat` is not a hook stage"),
            "{err}"
        );
        let err =
            HookConfig::from_json(json!({"hooks": {"prestart": [{"path": "hook"}]}})).unwrap_err();
        assert_eq!(err, "`hooks.prestart[0].path` is not an absolute path");
        let err = HookConfig::from_json(json!({"prestart": []})).unwrap_err();
        assert_eq!(err, "has no `hooks` object");
    }

    #[test]
    fn an_entry_is_appended_after_the_stages_own() {
        let mut spec = json!({"hooks": {"createRuntime": [{"path": "/a"}]}});
        append(&mut spec, "createRuntime", json!({"path": "/b"})).unwrap();
        append(&mut spec, "prestart", json!({"path": "/c"})).unwrap();
        assert_eq!(
            spec["hooks"],
            json!({"createRuntime": [{"path": "/a"}, {"path": "/b"}], "prestart": [{"path": "/c"}]})
        );
    }
}
