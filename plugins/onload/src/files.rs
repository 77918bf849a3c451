//! Onload's user-space files on the host, and where they go in the
//! container. Names and places follow Onload's own installer
//! (`scripts/onload_install`): `libonload.so` is one unversioned file (it is
//! what LD_PRELOAD loads), the other libraries are `NAME.so.X.Y.Z` with the
//! links `NAME.so.X` and `NAME.so`.

use std::collections::BTreeMap;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{self, File, FileRole};
use hookhost_plugin::log;

/// Onload proper: the sockets acceleration library that LD_PRELOAD (or the
/// `onload` launcher) loads, and the extensions API applications link to.
pub const LIBRARIES: [&str; 2] = ["libonload", "libonload_ext"];

/// TCPDirect: its library, and `libefcp`, the ef_vi control plane that
/// `libonload_zf` dlopen()s since Onload 9 (older releases do not ship it,
/// and it is skipped there).
pub const TCPDIRECT_LIBRARIES: [&str; 2] = ["libonload_zf", "libefcp"];

/// The launcher (`onload APP` preloads `libonload.so` and applies profiles),
/// the driver tool and the stack inspector.
pub const BINARIES: [&str; 3] = ["onload", "onload_tool", "onload_stackdump"];

/// TCPDirect's stack inspector. (`zf_debug` is left out: it runs the debug
/// build of the library, which lives in a subdirectory not injected.)
pub const TCPDIRECT_BINARIES: [&str; 1] = ["zf_stackdump"];

/// The profiles `onload --profile=NAME` reads. The launcher looks for them in
/// this directory and nowhere else, so they keep their host path in every
/// layout. Profiles import `*.opf-fragment` files (`onload_import
/// proxy-throughput`), so those come too.
pub const PROFILES: [&str; 2] = [
    "/usr/libexec/onload/profiles/*.opf",
    "/usr/libexec/onload/profiles/*.opf-fragment",
];

/// The glob that finds the library `name` (`libonload`) in `dir`.
pub fn library_glob(dir: &str, name: &str) -> String {
    format!("{dir}/{name}.so*")
}

/// What the host has at one path of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    File,
    /// A symlink, with its content.
    Link(String),
    /// A directory, a device...: never injected.
    Other,
}

/// One request for the container.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// The host file `host`, bind-mounted at `at`.
    File { host: String, at: String },
    /// A symlink at `at` whose content is `target`.
    Link { target: String, at: String },
}

/// A library as placed in the container.
#[derive(Debug)]
pub struct Placed {
    /// The host directory it came from.
    pub host_dir: String,
    /// The container directory it went to.
    pub container_dir: String,
    /// The file names made there (files and links), sorted.
    pub names: Vec<String>,
}

/// Whether `file_name` is the shared library `name`: `NAME.so` or
/// `NAME.so.1.2.3`. The glob `NAME.so*` also matches leftovers such as
/// `NAME.so.rpmsave`, which must not reach the container.
pub fn is_library(file_name: &str, name: &str) -> bool {
    let Some(version) = file_name
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(".so"))
    else {
        return false;
    };
    version.is_empty()
        || version.strip_prefix('.').is_some_and(|numbers| {
            numbers
                .split('.')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The requests for one library found in the host directory `dir` (file
/// name → what is there), placed in the container directory `into`: every
/// file, and every symlink that leads to one of them through links of the
/// same directory, so that the container resolves the same names (the
/// soname, the unversioned name) as the host.
///
/// Link targets are written relative (`libonload_ext.so.1`): an absolute
/// target into `dir` would dangle when `into` is another directory. Links
/// that lead nowhere (out of `dir`, dangling, looping) are left out. No host
/// calls here, so that the choice is unit-tested natively.
pub fn select(dir: &str, found: &BTreeMap<String, Found>, into: &str) -> Vec<Request> {
    let in_dir = |target: &str| -> Option<String> {
        let name = target
            .strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(target);
        (!name.contains('/')).then(|| name.to_string())
    };
    // Follows links from `name`; a chain visits each link at most once,
    // longer is a loop.
    let leads_to_file = |name: &str| {
        let mut name = name.to_string();
        for _ in 0..=found.len() {
            match found.get(&name) {
                Some(Found::File) => return true,
                Some(Found::Link(target)) => match in_dir(target) {
                    Some(next) => name = next,
                    None => return false,
                },
                Some(Found::Other) | None => return false,
            }
        }
        false
    };

    let mut requests = Vec::new();
    for (name, what) in found {
        if *what == Found::File {
            requests.push(Request::File {
                host: format!("{dir}/{name}"),
                at: format!("{into}/{name}"),
            });
        }
    }
    for (name, what) in found {
        let Found::Link(target) = what else { continue };
        if let Some(target) = in_dir(target).filter(|_| leads_to_file(name)) {
            requests.push(Request::Link {
                target,
                at: format!("{into}/{name}"),
            });
        }
    }
    requests
}

/// Requests the library `name` from the first of `dirs` that has a file of
/// it, into `into` (`None`: its host directory). `None` when no directory
/// has it.
pub fn library(dirs: &[String], name: &str, into: Option<&str>) -> Result<Option<Placed>, String> {
    for dir in dirs {
        let found = scan(dir, name)?;
        if !found.values().any(|what| *what == Found::File) {
            continue;
        }
        let container_dir = into.unwrap_or(dir).to_string();
        let requests = select(dir, &found, &container_dir);
        let mut names = Vec::new();
        for request in requests {
            let at = match request {
                Request::File { host, at } => {
                    File::new(host, FileRole::Library).at(&at).request()?;
                    at
                }
                Request::Link { target, at } => {
                    inject::symlink(&target, &at)?;
                    at
                }
            };
            names.push(at.rsplit('/').next().unwrap_or_default().to_string());
        }
        names.sort();
        for (name, what) in &found {
            if !names.contains(name) {
                log::debug!("{dir}/{name} ({what:?}) leads to no library file: left out");
            }
        }
        return Ok(Some(Placed {
            host_dir: dir.clone(),
            container_dir,
            names,
        }));
    }
    log::debug!("{name}.so is not in {}", dirs.join(", "));
    Ok(None)
}

/// What `dir` has of the library `name`, by file name.
fn scan(dir: &str, name: &str) -> Result<BTreeMap<String, Found>, String> {
    let mut found = BTreeMap::new();
    for path in host::glob(&library_glob(dir, name))? {
        let file_name = path.rsplit('/').next().unwrap_or_default();
        if !is_library(file_name, name) {
            log::debug!("{path} is not a version of {name}.so: left out");
            continue;
        }
        let what = match host::stat(&path)?.kind {
            FileKind::Regular => Found::File,
            FileKind::Symlink => Found::Link(host::read_link(&path)?),
            _ => Found::Other,
        };
        found.insert(file_name.to_string(), what);
    }
    Ok(found)
}

/// Requests the executable `name` from the first of `dirs` that has it, at
/// the same path. Returns that path, or `None` when no directory has it.
pub fn binary(dirs: &[String], name: &str) -> Result<Option<String>, String> {
    for dir in dirs {
        let path = format!("{dir}/{name}");
        if !regular_file(&path)? {
            continue;
        }
        inject::binary(&path)?;
        return Ok(Some(path));
    }
    log::debug!("{name} is not in {}", dirs.join(", "));
    Ok(None)
}

/// Requests every profile and profile fragment, at its host path. Returns
/// how many.
pub fn profiles() -> Result<usize, String> {
    let mut count = 0;
    for pattern in PROFILES {
        for path in host::glob(pattern)? {
            if regular_file(&path)? {
                inject::misc(&path)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Whether the plugin sees a regular file at `path`. A path outside the
/// allow-list counts as missing, so an administrator can narrow what the
/// plugin hands out; a symlink is skipped (the host refuses to bind one).
fn regular_file(path: &str) -> Result<bool, String> {
    if host::glob(path)?.is_empty() {
        return Ok(false);
    }
    let kind = host::stat(path)?.kind;
    if kind != FileKind::Regular {
        log::warn!("{path} is not a regular file ({kind:?}): left out");
    }
    Ok(kind == FileKind::Regular)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(entries: &[(&str, Found)]) -> BTreeMap<String, Found> {
        entries
            .iter()
            .map(|(name, what)| (name.to_string(), what.clone()))
            .collect()
    }

    fn link(target: &str) -> Found {
        Found::Link(target.into())
    }

    #[test]
    fn library_names() {
        assert!(is_library("libonload.so", "libonload"));
        assert!(is_library("libonload_ext.so.1", "libonload_ext"));
        assert!(is_library("libonload_ext.so.1.1.0", "libonload_ext"));
        assert!(!is_library("libonload_ext.so.1.1.0", "libonload"));
        assert!(!is_library("libonload.so.rpmsave", "libonload"));
        assert!(!is_library("libonload.so.1..0", "libonload"));
        assert!(!is_library("libonload.so.", "libonload"));
        assert!(!is_library("libonload.sox", "libonload"));
        assert!(!is_library("libonload_ext.a", "libonload_ext"));
    }

    #[test]
    fn a_versioned_library_comes_with_its_link_chain() {
        let dir = "/usr/lib64";
        let found = found(&[
            ("libonload_ext.so", link("libonload_ext.so.1")),
            ("libonload_ext.so.1", link("libonload_ext.so.1.1.0")),
            ("libonload_ext.so.1.1.0", Found::File),
        ]);
        assert_eq!(
            select(dir, &found, "/opt/onload/usr/lib64"),
            [
                Request::File {
                    host: "/usr/lib64/libonload_ext.so.1.1.0".into(),
                    at: "/opt/onload/usr/lib64/libonload_ext.so.1.1.0".into(),
                },
                Request::Link {
                    target: "libonload_ext.so.1".into(),
                    at: "/opt/onload/usr/lib64/libonload_ext.so".into(),
                },
                Request::Link {
                    target: "libonload_ext.so.1.1.0".into(),
                    at: "/opt/onload/usr/lib64/libonload_ext.so.1".into(),
                },
            ]
        );
    }

    #[test]
    fn the_unversioned_preload_library_is_one_file() {
        let found = found(&[("libonload.so", Found::File)]);
        assert_eq!(
            select("/usr/lib64", &found, "/usr/lib64"),
            [Request::File {
                host: "/usr/lib64/libonload.so".into(),
                at: "/usr/lib64/libonload.so".into(),
            }]
        );
    }

    #[test]
    fn absolute_links_become_relative_and_strays_are_left_out() {
        let dir = "/usr/lib64";
        let found = found(&[
            // Absolute, into the same directory: kept, made relative.
            ("libefcp.so.1", link("/usr/lib64/libefcp.so.1.0.0")),
            ("libefcp.so.1.0.0", Found::File),
            // Out of the directory, dangling, looping, or onto a directory.
            ("libefcp.so.2", link("/opt/other/libefcp.so.2.0.0")),
            ("libefcp.so.3", link("libefcp.so.3.0.0")),
            ("libefcp.so.4", link("libefcp.so.5")),
            ("libefcp.so.5", link("libefcp.so.4")),
            ("libefcp.so.6", link("libefcp.so.7")),
            ("libefcp.so.7", Found::Other),
        ]);
        assert_eq!(
            select(dir, &found, "/opt/onload/usr/lib64"),
            [
                Request::File {
                    host: "/usr/lib64/libefcp.so.1.0.0".into(),
                    at: "/opt/onload/usr/lib64/libefcp.so.1.0.0".into(),
                },
                Request::Link {
                    target: "libefcp.so.1.0.0".into(),
                    at: "/opt/onload/usr/lib64/libefcp.so.1".into(),
                },
            ]
        );
    }
}
