//! The spec-edit back end: a lowered plan written into `config.json`, so
//! that the runtime itself makes the device nodes, programs the device
//! cgroup (on cgroup v2 too), binds the files and sets the environment.
//!
//! The edit works on the JSON as read, not on a typed spec: every field the
//! edit does not touch, unknown ones included, is written back as it was.
//! What a spec cannot express (directories, copies, symlinks, the ld.so.conf.d
//! drop-in and ldconfig) is left to a hook entry of hookhost's, which
//! re-derives that work itself (see [`hook_part`]).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::lowering::{Attributed, DeviceRule, Lowered, Op};

/// Why the plan cannot be written into this spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The spec already has something else where a plugin wants its own.
    #[error("plugin `{plugin}`: {action} {path}: config.json already has {found}")]
    Conflict {
        plugin: String,
        action: &'static str,
        path: String,
        found: String,
    },
    /// A field the edit must extend has another type than the spec's.
    #[error("config.json: `{field}` is not {expected}")]
    Shape {
        field: &'static str,
        expected: &'static str,
    },
}

/// Whether the spec carries `op` (the runtime does it); the rest is a hook's.
pub fn in_spec(op: &Op) -> bool {
    matches!(op, Op::DeviceNode { .. } | Op::Bind { .. })
}

/// What a hook must still do after the spec edit: the operations a spec
/// cannot express, in their order. No device rules and no env: those are in
/// the spec.
pub fn hook_part(lowered: Lowered) -> Lowered {
    Lowered {
        rules: Vec::new(),
        ops: lowered
            .ops
            .into_iter()
            .filter(|op| !in_spec(&op.what))
            .collect(),
        env: Vec::new(),
    }
}

/// Writes the spec's share of `lowered` into `config`: device nodes into
/// `linux.devices`, their rules into `linux.resources.devices`, read-only
/// `nosuid,nodev` binds into `mounts` (sources under `host_root`), and the
/// environment into `process.env`.
pub fn apply(config: &mut Value, lowered: &Lowered, host_root: &Path) -> Result<(), EditError> {
    let root = object(config, "the document")?;
    for Attributed { plugin, what: op } in &lowered.ops {
        match op {
            Op::DeviceNode {
                path,
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            } => {
                let devices = array_at(root, &["linux", "devices"], "linux.devices")?;
                let node = json!({
                    "path": path,
                    "type": kind.letter().to_string(),
                    "major": major,
                    "minor": minor,
                    "fileMode": mode,
                    "uid": uid,
                    "gid": gid,
                });
                let same = |d: &Value| d.get("path").and_then(Value::as_str) == Some(path);
                match devices.iter().find(|d| same(d)) {
                    None => devices.push(node),
                    // Listed by whoever wrote the spec (a device plugin):
                    // the same node is kept as it is.
                    Some(found) if same_node(found, &node) => {}
                    Some(found) => {
                        return Err(conflict(plugin, op, format!("a device {found}")));
                    }
                }
            }
            Op::Bind {
                host_path, path, ..
            } => {
                let source = host_root.join(host_path.trim_start_matches('/'));
                let source = source.to_string_lossy();
                let mounts = array_at(root, &["mounts"], "mounts")?;
                let dest = |m: &Value| m.get("destination").and_then(Value::as_str) == Some(path);
                if let Some(found) = mounts.iter().find(|m| dest(m)) {
                    return Err(conflict(plugin, op, format!("a mount {found}")));
                }
                mounts.push(json!({
                    "destination": path,
                    "type": "bind",
                    "source": source,
                    "options": ["bind", "ro", "nosuid", "nodev"],
                }));
            }
            // A hook's (see `hook_part`).
            _ => {}
        }
    }
    for Attributed { what: rule, .. } in &lowered.rules {
        let rules = array_at(
            root,
            &["linux", "resources", "devices"],
            "linux.resources.devices",
        )?;
        let rule = rule_json(rule);
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    for Attributed {
        what: (name, value),
        ..
    } in &lowered.env
    {
        let env = array_at(root, &["process", "env"], "process.env")?;
        let prefix = format!("{name}=");
        let entry = Value::String(format!("{name}={value}"));
        // A variable the image or the user set is replaced, where it was.
        let at = env
            .iter()
            .position(|e| e.as_str().is_some_and(|e| e.starts_with(&prefix)));
        match at {
            Some(at) => env[at] = entry,
            None => env.push(entry),
        }
    }
    Ok(())
}

/// The allow rule for one device, as `linux.resources.devices` spells it.
fn rule_json(rule: &DeviceRule) -> Value {
    json!({
        "allow": true,
        "type": rule.kind.letter().to_string(),
        "major": rule.major,
        "minor": rule.minor,
        "access": rule.access,
    })
}

/// Whether a device already in the spec is the node a plugin asks for.
fn same_node(found: &Value, wanted: &Value) -> bool {
    ["type", "major", "minor"]
        .iter()
        .all(|k| found.get(k) == wanted.get(k))
}

fn conflict(plugin: &str, op: &Op, found: String) -> EditError {
    EditError::Conflict {
        plugin: plugin.to_string(),
        action: op.action(),
        path: op.path().to_string(),
        found,
    }
}

fn object<'a>(
    value: &'a mut Value,
    field: &'static str,
) -> Result<&'a mut Map<String, Value>, EditError> {
    value.as_object_mut().ok_or(EditError::Shape {
        field,
        expected: "an object",
    })
}

/// The array at `path` under `root`, made (with the objects above it) where
/// it is missing or null.
fn array_at<'a>(
    root: &'a mut Map<String, Value>,
    path: &[&str],
    field: &'static str,
) -> Result<&'a mut Vec<Value>, EditError> {
    let (last, parents) = path.split_last().expect("a path");
    let mut map = root;
    for key in parents {
        let slot = map.entry(*key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        map = object(slot, field)?;
    }
    let slot = map.entry(*last).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or(EditError::Shape {
        field,
        expected: "an array",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DeviceType;

    fn at<T>(plugin: &str, what: T) -> Attributed<T> {
        Attributed {
            plugin: plugin.into(),
            what,
        }
    }

    fn gpu() -> Lowered {
        Lowered {
            rules: vec![at(
                "gpu",
                DeviceRule {
                    kind: DeviceType::Char,
                    major: 195,
                    minor: 0,
                    access: "rw".into(),
                },
            )],
            ops: vec![
                at(
                    "gpu",
                    Op::Directory {
                        path: "/opt/gpu".into(),
                        mode: 0o755,
                    },
                ),
                at(
                    "gpu",
                    Op::DeviceNode {
                        path: "/dev/nvidia0".into(),
                        kind: DeviceType::Char,
                        major: 195,
                        minor: 0,
                        mode: 0o666,
                        uid: 0,
                        gid: 0,
                    },
                ),
                at(
                    "gpu",
                    Op::Bind {
                        host_path: "/usr/lib/libcuda.so.1".into(),
                        path: "/usr/lib/libcuda.so.1".into(),
                        directory: false,
                    },
                ),
                at(
                    "gpu",
                    Op::Symlink {
                        path: "/usr/lib/libcuda.so".into(),
                        target: "libcuda.so.1".into(),
                    },
                ),
                at(
                    "gpu",
                    Op::Ldconfig {
                        dirs: vec!["/usr/lib".into()],
                    },
                ),
            ],
            env: vec![at("gpu", ("GPU".into(), "0".into()))],
        }
    }

    #[test]
    fn devices_rules_binds_and_env_go_into_the_spec_and_the_rest_is_left_untouched() {
        let mut config = json!({
            "ociVersion": "1.0.2",
            "x-unknown": {"kept": [1, 2.5, null]},
            "process": {"args": ["sh"], "env": ["PATH=/bin", "GPU=old"]},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}},
        });
        apply(&mut config, &gpu(), Path::new("/fake")).unwrap();
        assert_eq!(
            config,
            json!({
                "ociVersion": "1.0.2",
                "x-unknown": {"kept": [1, 2.5, null]},
                "process": {"args": ["sh"], "env": ["PATH=/bin", "GPU=0"]},
                "mounts": [
                    {"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": "/usr/lib/libcuda.so.1", "type": "bind",
                     "source": "/fake/usr/lib/libcuda.so.1",
                     "options": ["bind", "ro", "nosuid", "nodev"]},
                ],
                "linux": {
                    "resources": {"devices": [
                        {"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 195, "minor": 0, "access": "rw"},
                    ]},
                    "devices": [{"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0,
                                 "fileMode": 0o666, "uid": 0, "gid": 0}],
                },
            })
        );
    }

    #[test]
    fn what_a_spec_cannot_express_is_left_for_the_hook_in_order() {
        let rest = hook_part(gpu());
        let actions: Vec<_> = rest.ops.iter().map(|o| o.what.action()).collect();
        assert_eq!(actions, ["mkdir", "symlink", "ldconfig"]);
        assert!(rest.rules.is_empty() && rest.env.is_empty());
    }

    #[test]
    fn a_device_the_spec_already_lists_is_kept_and_another_node_at_its_path_is_a_conflict() {
        let listed = json!({"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0});
        let mut config = json!({"linux": {"devices": [listed.clone()]}});
        apply(&mut config, &gpu(), Path::new("/")).unwrap();
        assert_eq!(config["linux"]["devices"], json!([listed]));

        let mut config = json!({"linux": {"devices": [
            {"path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 1}
        ]}});
        let err = apply(&mut config, &gpu(), Path::new("/")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "plugin `gpu`: mknod /dev/nvidia0: config.json already has a device {"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bind_over_an_existing_mount_is_a_conflict_naming_the_plugin() {
        let mut config = json!({"mounts": [
            {"destination": "/usr/lib/libcuda.so.1", "type": "bind", "source": "/elsewhere"}
        ]});
        let err = apply(&mut config, &gpu(), Path::new("/")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "plugin `gpu`: bind /usr/lib/libcuda.so.1: config.json already has a mount"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_spec_of_the_wrong_shape_is_refused_by_field() {
        let mut config = json!({"linux": {"devices": {"oops": 1}}});
        assert_eq!(
            apply(&mut config, &gpu(), Path::new("/")),
            Err(EditError::Shape {
                field: "linux.devices",
                expected: "an array"
            })
        );
        let mut config = json!({"linux": {"resources": null}, "mounts": null});
        apply(&mut config, &gpu(), Path::new("/")).unwrap();
        assert_eq!(config["linux"]["resources"]["devices"][0]["major"], 195);
    }
}
