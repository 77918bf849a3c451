//! Lowered plans translated into one CDI spec: the edits every device of
//! the kind shares at the top level, then one device per name.
//!
//! Device nodes always carry their type, numbers, mode, owner and cgroup
//! permissions, so no runtime has to stat a host path to fill them in, and
//! no `hostPath` is written: the lowering has none (the node is made from
//! its numbers), and the field alone would raise the spec to CDI 0.5.0.
//! What CDI cannot express (directories, symlinks, the ld.so.conf.d drop-in
//! and ldconfig) becomes one createContainer hook entry per set of edits,
//! running `hookhost cdi-hook` with the work in its arguments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use container_device_interface::specs::config;
use container_device_interface::version::minimum_required_version;
use serde_json::{json, Map, Value};

use super::CdiError;
use crate::lowering::{Attributed, Lowered, Op, LDCONFIG_DROP_IN};

/// The hook entry's whole environment. runc runs a createContainer hook
/// from the container's init, and a hook without an environment of its own
/// inherits the image's (CVE-2025-23266: `LD_PRELOAD` into a root process).
/// An empty list is not enough: engines copy it into config.json through
/// the OCI Go types, whose `env` is `omitempty`, and runc starts a hook
/// whose `env` is absent with a nil one, which Go's exec takes as "inherit
/// mine". So the list is never empty.
pub const HOOK_ENV: &[&str] = &["PATH=/usr/sbin:/usr/bin:/sbin:/bin"];

/// What a spec's hook entry runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCommand {
    /// The hookhost binary, absolute: the runtime runs it by this path.
    pub hookhost: PathBuf,
    /// The host's ldconfig, which `cdi-hook` runs over the rootfs.
    pub ldconfig: PathBuf,
}

/// A CDI spec built here: the CDI crate's document (whose fields the crate
/// keeps to itself), with its kind and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    kind: String,
    version: String,
    document: config::Spec,
}

impl Spec {
    /// `vendor.com/class`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The `cdiVersion`: the lowest that covers the fields used.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn document(&self) -> &config::Spec {
        &self.document
    }
}

/// The spec's `cdiVersion`, the lowest its fields allow (podman 4.3 reads
/// none above 0.5.0).
pub fn version(spec: &Spec) -> &str {
    spec.version()
}

/// The spec of `kind`: `common` as its top-level edits, and one device per
/// `(name, lowered)`. CDI wants at least one device, each with at least one
/// edit: a device whose plan is empty is [`CdiError::EmptyDevice`].
pub fn build(
    kind: &str,
    common: &Lowered,
    devices: &[(String, Lowered)],
    hook: &HookCommand,
    host_root: &Path,
) -> Result<Spec, CdiError> {
    if devices.is_empty() {
        return Err(CdiError::NoDevices { kind: kind.into() });
    }
    let mut listed = Vec::new();
    for (name, lowered) in devices {
        let edits = container_edits(lowered, hook, host_root)?;
        if edits.is_empty() {
            return Err(CdiError::EmptyDevice {
                kind: kind.into(),
                name: name.clone(),
            });
        }
        listed.push(json!({"name": name, "containerEdits": edits}));
    }
    // The crate's earliest version; raised below to what the fields need.
    let mut doc = json!({"cdiVersion": "0.3.0", "kind": kind, "devices": listed});
    let common = container_edits(common, hook, host_root)?;
    if !common.is_empty() {
        doc["containerEdits"] = Value::Object(common);
    }
    let invalid = |reason: String| CdiError::Invalid {
        kind: kind.into(),
        reason,
    };
    let parse = |doc: &Value| {
        serde_json::from_value::<config::Spec>(doc.clone()).map_err(|e| invalid(e.to_string()))
    };
    let version = minimum_required_version(&parse(&doc)?)
        .map_err(|e| invalid(format!("{e:#}")))?
        .to_string();
    doc["cdiVersion"] = Value::String(version.clone());
    Ok(Spec {
        kind: kind.into(),
        version,
        document: parse(&doc)?,
    })
}

/// The containerEdits of one lowered plan; a field with nothing in it is
/// left out, as the CDI schema has it.
fn container_edits(
    lowered: &Lowered,
    hook: &HookCommand,
    host_root: &Path,
) -> Result<Map<String, Value>, CdiError> {
    let (mut nodes, mut mounts) = (Vec::new(), Vec::new());
    let (mut work, mut plugins) = (Vec::<String>::new(), BTreeSet::new());
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
                let rule = lowered
                    .rules
                    .iter()
                    .find(|r| (r.what.kind, r.what.major, r.what.minor) == (*kind, *major, *minor))
                    .ok_or_else(|| CdiError::NoRule {
                        plugin: plugin.clone(),
                        path: path.clone(),
                        device: format!("{} {major}:{minor}", kind.letter()),
                    })?;
                nodes.push(json!({
                    "path": path,
                    "type": kind.letter().to_string(),
                    "major": major,
                    "minor": minor,
                    "fileMode": mode,
                    "permissions": rule.what.access,
                    "uid": uid,
                    "gid": gid,
                }));
            }
            Op::Bind {
                host_path,
                path,
                directory,
            } => {
                let source = host_root.join(host_path.trim_start_matches('/'));
                // `type` needs CDI 0.4.0, still within podman 4.3's 0.5.0.
                mounts.push(json!({
                    "hostPath": source.to_string_lossy(),
                    "containerPath": path,
                    "type": "bind",
                    "options": ["ro", "nosuid", "nodev", if *directory { "rbind" } else { "bind" }],
                }));
            }
            Op::Directory { path, mode } => {
                work.extend(["--dir".into(), path.clone(), format!("{mode:04o}")]);
                plugins.extend(plugin.split(','));
            }
            Op::Symlink { path, target } => {
                work.extend(["--symlink".into(), path.clone(), target.clone()]);
                plugins.extend(plugin.split(','));
            }
            Op::Ldconfig { dirs } => {
                for dir in dirs {
                    work.extend(["--ldconfig-dir".into(), dir.clone()]);
                }
                plugins.extend(plugin.split(','));
            }
            // `cdi-hook` writes the drop-in itself, from its --ldconfig-dirs.
            Op::Write { path, .. } if path == LDCONFIG_DROP_IN => {}
            Op::Copy { path, .. } | Op::Write { path, .. } => {
                return Err(CdiError::Unsupported {
                    plugin: plugin.clone(),
                    action: op.action(),
                    path: path.clone(),
                });
            }
        }
    }
    let mut edits = Map::new();
    if !lowered.env.is_empty() {
        let env: Vec<String> = lowered
            .env
            .iter()
            .map(|e| format!("{}={}", e.what.0, e.what.1))
            .collect();
        edits.insert("env".into(), json!(env));
    }
    if !nodes.is_empty() {
        edits.insert("deviceNodes".into(), Value::Array(nodes));
    }
    if !mounts.is_empty() {
        edits.insert("mounts".into(), Value::Array(mounts));
    }
    if !plugins.is_empty() {
        let hookhost = hook.hookhost.to_string_lossy().into_owned();
        let mut args = vec![
            hookhost.clone(),
            "cdi-hook".into(),
            "--ldconfig".into(),
            hook.ldconfig.to_string_lossy().into_owned(),
            "--plugin".into(),
            plugins.into_iter().collect::<Vec<_>>().join(","),
        ];
        args.extend(work);
        edits.insert(
            "hooks".into(),
            json!([{
                "hookName": "createContainer",
                "path": hookhost,
                "args": args,
                "env": HOOK_ENV,
            }]),
        );
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cdi::{validate, Format};
    use crate::lowering::DeviceRule;
    use crate::plan::DeviceType;

    fn at<T>(plugin: &str, what: T) -> Attributed<T> {
        Attributed {
            plugin: plugin.into(),
            what,
        }
    }

    fn hook() -> HookCommand {
        HookCommand {
            hookhost: "/usr/bin/hookhost".into(),
            ldconfig: "/sbin/ldconfig".into(),
        }
    }

    fn node(minor: u32) -> Lowered {
        Lowered {
            rules: vec![at(
                "gpu",
                DeviceRule {
                    kind: DeviceType::Char,
                    major: 195,
                    minor,
                    access: "rw".into(),
                },
            )],
            ops: vec![at(
                "gpu",
                Op::DeviceNode {
                    path: format!("/dev/nvidia{minor}"),
                    kind: DeviceType::Char,
                    major: 195,
                    minor,
                    mode: 0o666,
                    uid: 0,
                    gid: 44,
                },
            )],
            env: Vec::new(),
        }
    }

    fn libraries() -> Lowered {
        Lowered {
            rules: Vec::new(),
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
                    Op::Bind {
                        host_path: "/usr/lib/libcuda.so.1".into(),
                        path: "/usr/lib/libcuda.so.1".into(),
                        directory: false,
                    },
                ),
                at(
                    "gpu",
                    Op::Bind {
                        host_path: "/usr/share/gpu".into(),
                        path: "/usr/share/gpu".into(),
                        directory: true,
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
                    "gpu,audio",
                    Op::Write {
                        path: LDCONFIG_DROP_IN.into(),
                        content: b"/usr/lib\n".to_vec(),
                        mode: 0o644,
                    },
                ),
                at(
                    "gpu,audio",
                    Op::Ldconfig {
                        dirs: vec!["/usr/lib".into(), "/opt/gpu/lib".into()],
                    },
                ),
            ],
            env: vec![at("gpu", ("GPU_DRIVER".into(), "550".into()))],
        }
    }

    fn doc(spec: &Spec) -> Value {
        serde_json::to_value(spec.document()).unwrap()
    }

    fn one(name: &str, lowered: Lowered) -> Vec<(String, Lowered)> {
        vec![(name.into(), lowered)]
    }

    #[test]
    fn a_device_node_carries_its_numbers_owner_and_cgroup_permissions_and_no_host_path() {
        let spec = build(
            "nvidia.com/gpu",
            &Lowered::default(),
            &one("gpu0", node(0)),
            &hook(),
            Path::new("/fake"),
        )
        .unwrap();
        assert_eq!(
            doc(&spec),
            json!({
                "cdiVersion": "0.3.0",
                "kind": "nvidia.com/gpu",
                "devices": [{"name": "gpu0", "containerEdits": {"deviceNodes": [{
                    "path": "/dev/nvidia0", "type": "c", "major": 195, "minor": 0,
                    "fileMode": 0o666, "permissions": "rw", "uid": 0, "gid": 44,
                }]}}],
            })
        );
        assert_eq!(version(&spec), "0.3.0");
    }

    #[test]
    fn binds_env_and_the_hook_go_into_the_top_level_edits_with_sources_under_the_host_root() {
        let spec = build(
            "nvidia.com/gpu",
            &libraries(),
            &one("gpu0", node(0)),
            &hook(),
            Path::new("/fake"),
        )
        .unwrap();
        let edits = &doc(&spec)["containerEdits"];
        assert_eq!(edits["env"], json!(["GPU_DRIVER=550"]));
        assert_eq!(
            edits["mounts"],
            json!([
                {"hostPath": "/fake/usr/lib/libcuda.so.1", "containerPath": "/usr/lib/libcuda.so.1",
                 "type": "bind", "options": ["ro", "nosuid", "nodev", "bind"]},
                {"hostPath": "/fake/usr/share/gpu", "containerPath": "/usr/share/gpu",
                 "type": "bind", "options": ["ro", "nosuid", "nodev", "rbind"]},
            ])
        );
        // The drop-in is not there: the hook writes it from --ldconfig-dir.
        assert_eq!(
            edits["hooks"],
            json!([{
                "hookName": "createContainer",
                "path": "/usr/bin/hookhost",
                "args": [
                    "/usr/bin/hookhost", "cdi-hook", "--ldconfig", "/sbin/ldconfig",
                    "--plugin", "audio,gpu",
                    "--dir", "/opt/gpu", "0755",
                    "--symlink", "/usr/lib/libcuda.so", "libcuda.so.1",
                    "--ldconfig-dir", "/usr/lib", "--ldconfig-dir", "/opt/gpu/lib",
                ],
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            }])
        );
        // A mount's `type` needs 0.4.0.
        assert_eq!(spec.version(), "0.4.0");
        assert!(doc(&spec)["devices"][0]["containerEdits"]
            .get("hooks")
            .is_none());
    }

    #[test]
    fn the_hooks_own_environment_is_written_out_in_both_formats() {
        let spec = build(
            "nvidia.com/gpu",
            &Lowered::default(),
            &one("gpu0", libraries()),
            &hook(),
            Path::new("/"),
        )
        .unwrap();
        let json = String::from_utf8(validate(&spec, Format::Json).unwrap()).unwrap();
        let json: Value = serde_json::from_str(&json).unwrap();
        let hook = &json["devices"][0]["containerEdits"]["hooks"][0];
        assert_eq!(hook["env"], json!(HOOK_ENV));
        let yaml = String::from_utf8(validate(&spec, Format::Yaml).unwrap()).unwrap();
        assert!(
            yaml.contains("env:\n      - PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"),
            "{yaml}"
        );
    }

    #[test]
    fn a_device_name_not_starting_with_a_letter_needs_cdi_0_5_0() {
        let spec = build(
            "nvidia.com/gpu",
            &Lowered::default(),
            &one("0", node(0)),
            &hook(),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(spec.version(), "0.5.0");
        assert_eq!(doc(&spec)["cdiVersion"], "0.5.0");
    }

    #[test]
    fn copies_and_files_of_a_plugins_own_are_refused_by_plugin_action_and_path() {
        let mut lowered = node(0);
        lowered.ops.push(at(
            "cfg",
            Op::Copy {
                host_path: "/etc/a.conf".into(),
                path: "/etc/a.conf".into(),
            },
        ));
        let err = build(
            "x.com/y",
            &lowered,
            &one("a", node(1)),
            &hook(),
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `cfg`: copy /etc/a.conf: a CDI spec cannot write a file into the container"
        );

        let mut lowered = node(0);
        lowered.ops.push(at(
            "cfg",
            Op::Write {
                path: "/etc/b.conf".into(),
                content: Vec::new(),
                mode: 0o644,
            },
        ));
        let err = build(
            "x.com/y",
            &Lowered::default(),
            &one("a", lowered),
            &hook(),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                CdiError::Unsupported {
                    action: "write",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_device_node_without_its_rule_is_refused_rather_than_allowed_rwm() {
        let mut lowered = node(0);
        lowered.rules[0].what.minor = 1;
        let err = build(
            "x.com/y",
            &Lowered::default(),
            &one("a", lowered),
            &hook(),
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin `gpu`: mknod /dev/nvidia0: no device cgroup rule for c 195:0"
        );
    }

    #[test]
    fn cdi_wants_devices_each_with_an_edit_and_leaves_empty_top_level_edits_out() {
        let err = build("x.com/y", &node(0), &[], &hook(), Path::new("/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.com/y: a CDI spec needs at least one device"
        );
        let err = build(
            "x.com/y",
            &node(0),
            &one("a", Lowered::default()),
            &hook(),
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.com/y=a: a CDI device needs at least one edit"
        );

        let spec = build(
            "x.com/y",
            &Lowered::default(),
            &one("a", node(0)),
            &hook(),
            Path::new("/"),
        )
        .unwrap();
        assert!(doc(&spec).get("containerEdits").is_none());
    }
}
