//! ROCm's user-space libraries, for images that do not bring their own.
//! Most ROCm images do (and must match their own build), so none are given
//! unless the manifest's `libraries` setting names a group.

use std::collections::BTreeMap;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject;
use hookhost_plugin::log;
use serde::Deserialize;

/// A group of libraries, as named in the `libraries` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// What a HIP program needs to run on the GPU.
    Runtime,
    /// The management libraries that rocm-smi and amd-smi are built on.
    Smi,
}

impl Group {
    /// For the manifest test: the allow-list covers every group.
    #[cfg(test)]
    pub const ALL: [Group; 2] = [Group::Runtime, Group::Smi];

    /// Library names (the part before `.so`). A ROCm release lacks some of
    /// them (libhsakmt is no longer a shared library in recent ones,
    /// librocprofiler-register is new in 6.1): those are skipped.
    pub fn libraries(self) -> &'static [&'static str] {
        match self {
            Group::Runtime => &[
                // HIP, the ROCm runtime (ROCr) and its kernel thunk.
                "libamdhip64",
                "libhsa-runtime64",
                "libhsakmt",
                // Loads the GPU code objects of a program.
                "libamd_comgr",
                // HIP and ROCr link against it since ROCm 6.1.
                "librocprofiler-register",
            ],
            Group::Smi => &["librocm_smi64", "libamd_smi"],
        }
    }
}

/// Requests the library `name` from the first of `dirs` that has it, with
/// its symlinks. Returns whether it was found.
pub fn request(dirs: &[String], name: &str) -> Result<bool, String> {
    for dir in dirs {
        if request_in(dir, name)? {
            return Ok(true);
        }
    }
    log::debug!("{name} is not in {}", dirs.join(", "));
    Ok(false)
}

/// Requests the real file of `DIR/NAME.so*` (the regular file; the newest
/// if there are several) and every symlink `DIR/NAME.so*` that leads to it
/// (`libamdhip64.so.6`, `libamdhip64.so` → `libamdhip64.so.6`...), so the
/// container resolves the same names as the host. ROCm's version suffixes
/// (`.so.6.2.60200`) are not derivable from anything else on the host.
fn request_in(dir: &str, name: &str) -> Result<bool, String> {
    let mut files = Vec::new();
    let mut links = BTreeMap::new();
    for path in host::glob(&format!("{dir}/{name}.so*"))? {
        match host::stat(&path)?.kind {
            FileKind::Regular => files.push(path),
            FileKind::Symlink => {
                let target = host::read_link(&path)?;
                links.insert(path, target);
            }
            _ => {}
        }
    }
    let Some(file) = newest(name, &files) else {
        return Ok(false);
    };
    inject::library(file)?;
    for (link, target) in &links {
        if hookhost_plugin::links::leads_to(link, &links, dir, file) {
            inject::symlink(target, link)?;
        }
    }
    Ok(true)
}

/// The file of `files` (all `DIR/NAME.so*`) with the highest version,
/// comparing the numbers after `.so` one by one (a part that is not a
/// number counts as 0). On a tie, the last in name order.
fn newest<'a>(name: &str, files: &'a [String]) -> Option<&'a str> {
    let version = |path: &str| -> Vec<u64> {
        let suffix = path
            .rsplit('/')
            .next()
            .and_then(|file| file.strip_prefix(name))
            .and_then(|rest| rest.strip_prefix(".so"))
            .unwrap_or("");
        suffix
            .split('.')
            .filter(|part| !part.is_empty())
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    files
        .iter()
        .max_by(|a, b| version(a).cmp(&version(b)).then(a.cmp(b)))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_regular_file_wins() {
        let files = |names: &[&str]| -> Vec<String> {
            names.iter().map(|n| format!("/opt/rocm/lib/{n}")).collect()
        };
        let name = "libamdhip64";
        assert_eq!(
            newest(
                name,
                &files(&["libamdhip64.so.5.7.50701", "libamdhip64.so.6.2.60200"])
            ),
            Some("/opt/rocm/lib/libamdhip64.so.6.2.60200")
        );
        // Numbers compare as numbers, not text.
        assert_eq!(
            newest(
                name,
                &files(&["libamdhip64.so.6.10.0", "libamdhip64.so.6.9.0"])
            ),
            Some("/opt/rocm/lib/libamdhip64.so.6.10.0")
        );
        assert_eq!(
            newest(name, &files(&["libamdhip64.so"])),
            Some("/opt/rocm/lib/libamdhip64.so")
        );
        assert_eq!(newest(name, &[]), None);
    }

    #[test]
    fn link_chains() {
        let dir = "/opt/rocm/lib";
        let file = "/opt/rocm/lib/libamdhip64.so.6.2.60200";
        let links: BTreeMap<String, String> = [
            ("libamdhip64.so", "libamdhip64.so.6"),
            ("libamdhip64.so.6", "libamdhip64.so.6.2.60200"),
            (
                "libamdhip64.so.6.2",
                "/opt/rocm/lib/libamdhip64.so.6.2.60200",
            ),
            // An older release's link, dangling.
            ("libamdhip64.so.5", "libamdhip64.so.5.7.50701"),
            ("libamdhip64.so.a", "libamdhip64.so.b"),
            ("libamdhip64.so.b", "libamdhip64.so.a"),
        ]
        .iter()
        .map(|(link, target)| (format!("{dir}/{link}"), target.to_string()))
        .collect();
        let leading: Vec<&str> = links
            .keys()
            .map(String::as_str)
            .filter(|link| hookhost_plugin::links::leads_to(link, &links, dir, file))
            .collect();
        assert_eq!(
            leading,
            [
                "/opt/rocm/lib/libamdhip64.so",
                "/opt/rocm/lib/libamdhip64.so.6",
                "/opt/rocm/lib/libamdhip64.so.6.2"
            ]
        );
    }
}
