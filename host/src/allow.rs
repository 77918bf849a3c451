//! The allow-list and path cleaning: what a plugin may name on the host,
//! and the one shape of path it may name it in (absolute, no `..`).
//!
//! Pure: nothing here consults the host. [`crate::hostfs`] checks every
//! look-up against an [`AllowList`], on the path asked for and on what it
//! resolves to; [`crate::requests`] cleans container paths with
//! [`clean_absolute`].

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use glob::{MatchOptions, Pattern};

/// Checks that `path` is absolute and free of `..`, and returns it cleaned
/// (`//` and `.` removed). Plugins name paths; they never navigate.
pub fn clean_absolute(path: &str) -> Result<PathBuf, String> {
    if path.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if !path.starts_with('/') {
        return Err("is not an absolute path".into());
    }
    let mut clean = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => clean.push(part),
            Component::ParentDir => return Err("contains `..`".into()),
            Component::Prefix(_) => unreachable!("no prefixes on Unix"),
        }
    }
    Ok(clean)
}

/// Shell globs over absolute host paths. `*`, `?` and `[...]` stay within one
/// path component; `**` as a whole component matches any depth.
///
/// The globs compile on first use ([`Self::check`], or any match): deciding
/// which plugins are active, on every container start, never needs them.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    globs: Vec<String>,
    /// The compiled globs, each with the literal text it starts with, or
    /// why the first invalid one is not a glob.
    patterns: OnceLock<Result<Vec<(String, Pattern)>, String>>,
    /// Each pattern cut into its components, for [`Self::may_hold_below`]:
    /// only `glob` needs them.
    components: OnceLock<Vec<Vec<Part>>>,
}

/// One component of a pattern.
#[derive(Debug, Clone)]
enum Part {
    /// `**`: any depth.
    AnyDepth,
    /// A glob within one component, if it compiles alone (a `[` split by
    /// a `/` does not: then no directory matches it).
    Name(Option<Pattern>),
}

/// How every pattern matches: `*` never crosses a `/`.
pub(crate) const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl AllowList {
    /// The allow-list of `globs`, which must be absolute path patterns.
    pub fn new(globs: &[String]) -> Result<Self, String> {
        if let Some(g) = globs.iter().find(|g| !g.starts_with('/')) {
            return Err(format!("`{g}` is not an absolute path pattern"));
        }
        Ok(AllowList {
            globs: globs.to_vec(),
            ..AllowList::default()
        })
    }

    /// Compiles the globs: the error names the first that is not valid.
    /// Every path that runs a plugin checks its allow-list first.
    pub fn check(&self) -> Result<(), String> {
        self.compiled().map(drop).map_err(Clone::clone)
    }

    fn compiled(&self) -> Result<&[(String, Pattern)], &String> {
        self.patterns
            .get_or_init(|| {
                self.globs
                    .iter()
                    .map(|g| {
                        let pattern = Pattern::new(g)
                            .map_err(|e| format!("`{g}` is not a valid glob: {e}"))?;
                        let literal = g.find(['*', '?', '[']).map_or(&g[..], |end| &g[..end]);
                        Ok((literal.to_string(), pattern))
                    })
                    .collect()
            })
            .as_deref()
    }

    /// Whether `path` is allowed; nothing is while a glob is invalid, and
    /// no path [`clean_absolute`] refuses (`*` and `**` match `..`: `/dev/*`
    /// would allow `/dev/..`, which is `/`), should a caller not clean it.
    /// A path can only match a glob that it starts like: a GPU policy's
    /// hundred-odd globs cost a string comparison each for most paths.
    pub fn allows(&self, path: &Path) -> bool {
        let text = path.as_os_str().as_bytes();
        if text.contains(&0) || path.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        self.compiled().is_ok_and(|patterns| {
            patterns.iter().any(|(literal, p)| {
                text.starts_with(literal.as_bytes()) && p.matches_path_with(path, MATCH)
            })
        })
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.globs.iter().map(String::as_str)
    }

    /// Whether some allowed path could lie below `dir`: what lets `glob`
    /// skip listing directories that can hold nothing allowed.
    pub fn may_hold_below(&self, dir: &Path) -> bool {
        let dir: Vec<_> = dir.iter().skip(1).collect();
        self.components().iter().any(|parts| {
            for (i, name) in dir.iter().enumerate() {
                match parts.get(i) {
                    Some(Part::AnyDepth) => return true,
                    Some(Part::Name(pattern)) => {
                        let matched = pattern
                            .as_ref()
                            .is_some_and(|p| p.matches_with(&name.to_string_lossy(), MATCH));
                        if !matched {
                            return false;
                        }
                    }
                    None => return false,
                }
            }
            parts.len() > dir.len()
        })
    }

    fn components(&self) -> &[Vec<Part>] {
        self.components.get_or_init(|| {
            self.globs
                .iter()
                .map(|glob| {
                    glob.split('/')
                        .skip(1)
                        .map(|part| match part {
                            "**" => Part::AnyDepth,
                            part => Part::Name(Pattern::new(part).ok()),
                        })
                        .collect()
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_absolute_refuses_relative_and_dotdot() {
        assert_eq!(
            clean_absolute("/dev//./nvidia0").unwrap(),
            PathBuf::from("/dev/nvidia0")
        );
        assert!(clean_absolute("dev/nvidia0").is_err());
        assert!(clean_absolute("/dev/../etc/shadow").is_err());
        assert!(clean_absolute("/dev/a\0b").is_err());
    }

    #[test]
    fn allow_list_star_stays_in_one_component() {
        let allow = AllowList::new(&["/dev/nvidia*".into(), "/opt/xrt/**".into()]).unwrap();
        assert!(allow.allows(Path::new("/dev/nvidia0")));
        assert!(allow.allows(Path::new("/dev/nvidiactl")));
        assert!(!allow.allows(Path::new("/dev/nvidia0/../../etc/shadow")));
        assert!(!allow.allows(Path::new("/dev/nvidia-caps/x")));
        assert!(allow.allows(Path::new("/opt/xrt/lib/libxrt.so")));
        assert!(!allow.allows(Path::new("/etc/shadow")));
    }

    #[test]
    fn the_literal_start_of_a_glob_only_narrows_what_is_tried() {
        let allow = AllowList::new(&[
            "/usr/lib/libcuda.so*".into(),
            "/dev/nvidia[0-9]*".into(),
            "/opt/?pt/lib".into(),
            "/etc/exact".into(),
        ])
        .unwrap();
        for yes in [
            "/usr/lib/libcuda.so",
            "/usr/lib/libcuda.so.1",
            "/dev/nvidia0",
            "/dev/nvidia12",
            "/opt/xpt/lib",
            "/etc/exact",
        ] {
            assert!(allow.allows(Path::new(yes)), "{yes}");
        }
        for no in [
            "/usr/lib/libcud",
            "/usr/lib64/libcuda.so",
            "/dev/nvidiactl",
            "/opt/pt/lib",
            "/etc/exact/x",
            "/etc/exac",
        ] {
            assert!(!allow.allows(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn no_glob_allows_a_path_with_dotdot_or_a_nul() {
        let allow = AllowList::new(&["/dev/*".into(), "/opt/**".into()]).unwrap();
        assert!(allow.allows(Path::new("/dev/null")));
        assert!(allow.allows(Path::new("/opt/a/b")));
        for no in ["/dev/..", "/opt/a/../../etc/shadow", "/dev/a\0b"] {
            assert!(!allow.allows(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn allow_list_refuses_relative_patterns() {
        assert!(AllowList::new(&["dev/*".into()]).is_err());
    }

    #[test]
    fn an_invalid_glob_is_named_by_check_and_allows_nothing() {
        let allow = AllowList::new(&["/dev/null".into(), "/dev/[".into()]).unwrap();
        let e = allow.check().unwrap_err();
        assert!(e.starts_with("`/dev/[` is not a valid glob"), "{e}");
        assert!(!allow.allows(Path::new("/dev/null")));
    }

    #[test]
    fn may_hold_below_prunes_directories_no_allowed_path_can_be_under() {
        let allow =
            AllowList::new(&["/dev/nvidia[0-9]*".into(), "/usr/lib/**/libcuda.so".into()]).unwrap();
        assert!(allow.may_hold_below(Path::new("/")));
        assert!(allow.may_hold_below(Path::new("/dev")));
        assert!(!allow.may_hold_below(Path::new("/proc")));
        assert!(
            !allow.may_hold_below(Path::new("/dev/nvidia0")),
            "a file, not a directory"
        );
        assert!(allow.may_hold_below(Path::new("/usr/lib/x86_64-linux-gnu/deep")));
        assert!(!allow.may_hold_below(Path::new("/usr/share")));
    }
}
