//! Where a container's GPUs are named besides `NVIDIA_VISIBLE_DEVICES`: the
//! CDI annotations a Kubernetes device plugin writes (`cdi.k8s.io/…` =
//! `nvidia.com/gpu=GPU-8b3c…`) and the mounts of its volume-mounts strategy
//! (`/dev/null` on `/var/run/nvidia-container-devices/GPU-8b3c…`), which the
//! image cannot set, unlike the variable that every CUDA image sets to `all`.

use hookhost_plugin::container::SpecMount;

/// The CDI kind of this policy's devices (`cdi-kind` in the manifest).
pub const KIND: &str = "nvidia.com/gpu";

/// NVIDIA's toolkit's default annotation prefix.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// A device named by an annotation: the device's name, and the annotation
/// that named it (for errors).
#[derive(Debug, PartialEq, Eq)]
pub struct Annotated {
    pub name: String,
    pub key: String,
}

/// The `nvidia.com/gpu` devices that the annotations whose key starts with
/// one of `prefixes` name, each once, in key order. Each value is a comma
/// list of qualified CDI names (`vendor/class=name`), as NVIDIA's toolkit
/// requires (anything else is an error naming the annotation); names of
/// another kind are another vendor's, and left alone.
pub fn devices(
    annotations: &[(String, String)],
    prefixes: &[String],
) -> Result<Vec<Annotated>, String> {
    let mut found: Vec<Annotated> = Vec::new();
    for (key, value) in annotations {
        if !prefixes
            .iter()
            .any(|prefix| key.starts_with(prefix.as_str()))
        {
            continue;
        }
        for qualified in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some((kind, name)) = parse_qualified(qualified) else {
                return Err(format!(
                    "annotation {key}: `{qualified}` is not a qualified CDI device name \
                     (vendor.com/class=name)"
                ));
            };
            if kind == KIND && !found.iter().any(|a| a.name == name) {
                found.push(Annotated {
                    name: name.to_string(),
                    key: key.clone(),
                });
            }
        }
    }
    Ok(found)
}

/// Where NVIDIA's device plugin (`deviceListStrategy: volume-mounts`)
/// mounts `/dev/null` to name a device: `<root>/<id>`.
pub const VOLUME_MOUNTS_ROOT: &str = "/var/run/nvidia-container-devices";

/// What a device plugin's mount names under [`VOLUME_MOUNTS_ROOT`] is a
/// CDI device under `cdi/` (`cdi/nvidia.com/gpu=0` or
/// `cdi/nvidia.com/gpu/0`) and an IMEX channel under `imex/`.
const CDI_MOUNT: &str = "cdi/";
const IMEX_MOUNT: &str = "imex/";

/// A device named by a mount: its id (as `NVIDIA_VISIBLE_DEVICES` would
/// name it), and the mount's destination (for errors).
#[derive(Debug, PartialEq, Eq)]
pub struct Mounted {
    pub id: String,
    pub destination: String,
}

/// The device requests among `mounts`, as NVIDIA's toolkit reads them: a
/// mount of `/dev/null` whose destination, cleaned, lies under
/// [`VOLUME_MOUNTS_ROOT`] requests the rest of its path; a destination
/// counts once. Each request as it is written (see [`gpus_of`]).
pub fn mount_requests(mounts: &[SpecMount]) -> Vec<Mounted> {
    let mut found: Vec<Mounted> = Vec::new();
    for mount in mounts {
        if mount.source.as_deref().map(clean) != Some("/dev/null".into()) {
            continue;
        }
        let destination = clean(&mount.destination);
        let Some(id) = destination
            .strip_prefix(VOLUME_MOUNTS_ROOT)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        if !found.iter().any(|m| m.destination == destination) {
            found.push(Mounted {
                id: id.to_string(),
                destination,
            });
        }
    }
    found
}

/// The GPUs that mount requests name: a plain request is an id
/// (`GPU-…`, `0`, `all`, a MIG device), a `cdi/` one a qualified CDI name
/// of which the `nvidia.com/gpu` ones are GPUs (others are another
/// vendor's), an `imex/` one an IMEX channel, not a GPU. A `cdi/` request
/// that is no qualified name is an error naming the mount.
pub fn gpus_of(requests: Vec<Mounted>) -> Result<Vec<Mounted>, String> {
    let mut gpus = Vec::new();
    for request in requests {
        if request.id.starts_with(IMEX_MOUNT) {
            continue;
        }
        let Some(cdi) = request.id.strip_prefix(CDI_MOUNT) else {
            gpus.push(request);
            continue;
        };
        // `vendor/class/name` is `vendor/class=name` written as a path.
        let qualified = match cdi.splitn(3, '/').collect::<Vec<_>>()[..] {
            [vendor, class, name] if !cdi.contains('=') => format!("{vendor}/{class}={name}"),
            _ => cdi.to_string(),
        };
        let Some((kind, name)) = parse_qualified(&qualified) else {
            return Err(format!(
                "mount {}: `{cdi}` is not a qualified CDI device name (vendor.com/class=name \
                 or vendor.com/class/name)",
                request.destination
            ));
        };
        if kind == KIND {
            gpus.push(Mounted {
                id: name.to_string(),
                destination: request.destination,
            });
        }
    }
    Ok(gpus)
}

/// The IMEX channel requests among mount requests: the `imex/<N>` ones,
/// each with its `<N>` as its id (see `imex::Channels::from_mounts`).
pub fn imex_of(requests: Vec<Mounted>) -> Vec<Mounted> {
    requests
        .into_iter()
        .filter_map(|request| {
            let channel = request.id.strip_prefix(IMEX_MOUNT)?.to_string();
            Some(Mounted {
                id: channel,
                destination: request.destination,
            })
        })
        .collect()
}

/// `path` made lexically clean as Go's `filepath.Clean` makes an absolute
/// path: no empty or `.` component, `..` taking the one before (none above
/// `/`).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `vendor/class=name` split into its kind and name, if it is one: the
/// vendor a domain name, the class letters, digits, `-` and `_`, the name
/// starting with a letter or digit and made of those and `.`, `:`.
fn parse_qualified(qualified: &str) -> Option<(&str, &str)> {
    let (kind, name) = qualified.split_once('=')?;
    let (vendor, class) = kind.split_once('/')?;
    let word = |s: &str, extra: &[char]| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    (word(vendor, &['-', '.']) && word(class, &['-', '_']) && word(name, &['-', '_', '.', ':']))
        .then_some((kind, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(pairs: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let prefixes = [ANNOTATION_PREFIX.to_string()];
        let found = devices(&annotations(pairs), &prefixes)?;
        Ok(found.into_iter().map(|a| a.name).collect())
    }

    #[test]
    fn nvidia_gpus_named_under_the_prefix_are_found_each_once_in_key_order() {
        assert_eq!(
            names(&[
                (
                    "cdi.k8s.io/a",
                    "nvidia.com/gpu=GPU-aaaa, vendor.com/nic=eth1"
                ),
                ("cdi.k8s.io/b", "nvidia.com/gpu=1,nvidia.com/gpu=GPU-aaaa"),
                ("io.kubernetes.cri.pod", "nvidia.com/gpu=0"),
            ]),
            Ok(vec!["GPU-aaaa".to_string(), "1".to_string()])
        );
        assert_eq!(
            names(&[("cdi.k8s.io/x", "vendor.com/nic=eth1")]),
            Ok(vec![])
        );
        assert_eq!(names(&[]), Ok(vec![]));
        assert_eq!(names(&[("cdi.k8s.io/x", "")]), Ok(vec![]));
    }

    #[test]
    fn a_name_that_is_not_qualified_is_an_error_naming_the_annotation() {
        for wrong in [
            "GPU-aaaa",
            "nvidia.com/gpu",
            "nvidia.com=0",
            "=0",
            "nvidia.com/gpu=",
            "nvidia.com/gpu=-1",
        ] {
            assert_eq!(
                names(&[("cdi.k8s.io/x", wrong)]),
                Err(format!(
                    "annotation cdi.k8s.io/x: `{wrong}` is not a qualified CDI device name \
                     (vendor.com/class=name)"
                )),
                "{wrong}"
            );
        }
        assert_eq!(
            parse_qualified("nvidia.com/gpu=0:1"),
            Some(("nvidia.com/gpu", "0:1"))
        );
    }

    fn mount(destination: &str, source: Option<&str>) -> SpecMount {
        SpecMount {
            destination: destination.into(),
            source: source.map(Into::into),
        }
    }

    fn mounted(mounts: &[SpecMount]) -> Result<Vec<(String, String)>, String> {
        let gpus = gpus_of(mount_requests(mounts))?;
        Ok(gpus.into_iter().map(|m| (m.id, m.destination)).collect())
    }

    fn pair(id: &str, destination: &str) -> (String, String) {
        (id.into(), destination.into())
    }

    #[test]
    fn dev_null_mounted_under_the_root_names_a_device_each_destination_once() {
        let null = Some("/dev/null");
        assert_eq!(
            mounted(&[
                mount("/proc", Some("proc")),
                mount("/var/run/nvidia-container-devices/GPU-aaaa", null),
                mount("/var/run/nvidia-container-devices/1", null),
                mount(
                    "/var/run//nvidia-container-devices/./1/",
                    Some("/dev//null")
                ),
                mount("/var/run/nvidia-container-devices/all", null),
            ]),
            Ok(vec![
                pair("GPU-aaaa", "/var/run/nvidia-container-devices/GPU-aaaa"),
                pair("1", "/var/run/nvidia-container-devices/1"),
                pair("all", "/var/run/nvidia-container-devices/all"),
            ])
        );
    }

    #[test]
    fn other_sources_the_root_itself_and_paths_beside_it_name_nothing() {
        assert_eq!(
            mounted(&[
                mount("/var/run/nvidia-container-devices/0", Some("/tmp/x")),
                mount("/var/run/nvidia-container-devices/0", None),
                mount("/var/run/nvidia-container-devices", Some("/dev/null")),
                mount("/var/run/nvidia-container-devices/", Some("/dev/null")),
                mount("/var/run/nvidia-container-devicesX/0", Some("/dev/null")),
                mount("/var/run/nvidia-container-devices/../0", Some("/dev/null")),
                mount("/run/nvidia-container-devices/0", Some("/dev/null")),
            ]),
            Ok(vec![])
        );
    }

    #[test]
    fn cdi_mounts_name_their_nvidia_gpus_and_imex_mounts_no_gpu() {
        let at = |rest: &str| mount(&format!("{VOLUME_MOUNTS_ROOT}/{rest}"), Some("/dev/null"));
        assert_eq!(
            mounted(&[
                at("cdi/nvidia.com/gpu=0"),
                at("cdi/nvidia.com/gpu/GPU-aaaa"),
                at("cdi/vendor.com/nic=eth1"),
                at("imex/3"),
            ]),
            Ok(vec![
                pair(
                    "0",
                    "/var/run/nvidia-container-devices/cdi/nvidia.com/gpu=0"
                ),
                pair(
                    "GPU-aaaa",
                    "/var/run/nvidia-container-devices/cdi/nvidia.com/gpu/GPU-aaaa"
                ),
            ])
        );
        let imex = imex_of(mount_requests(&[
            at("imex/3"),
            at("0"),
            at("cdi/nvidia.com/gpu=0"),
        ]));
        assert_eq!(
            imex,
            [Mounted {
                id: "3".into(),
                destination: "/var/run/nvidia-container-devices/imex/3".into()
            }]
        );
        assert_eq!(
            mounted(&[at("cdi/gpu0")]),
            Err(
                "mount /var/run/nvidia-container-devices/cdi/gpu0: `gpu0` is not a qualified \
                 CDI device name (vendor.com/class=name or vendor.com/class/name)"
                    .into()
            )
        );
    }

    #[test]
    fn other_prefixes_count_only_when_the_settings_name_them() {
        let pairs = annotations(&[("example.org/devices", "nvidia.com/gpu=all")]);
        assert_eq!(devices(&pairs, &[ANNOTATION_PREFIX.into()]), Ok(vec![]));
        assert_eq!(
            devices(&pairs, &["example.org/".into()]),
            Ok(vec![Annotated {
                name: "all".into(),
                key: "example.org/devices".into()
            }])
        );
        assert_eq!(devices(&pairs, &[]), Ok(vec![]));
    }
}
