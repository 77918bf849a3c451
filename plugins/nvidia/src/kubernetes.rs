//! Where a container's GPUs are named besides `NVIDIA_VISIBLE_DEVICES`: the
//! CDI annotations a Kubernetes device plugin writes (`cdi.k8s.io/…` =
//! `nvidia.com/gpu=GPU-8b3c…`), which the image cannot set, unlike the
//! variable that every CUDA image sets to `all`.

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
