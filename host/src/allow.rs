//! The allow-list and path cleaning: what a plugin may name on the host,
//! and the one shape of path it may name it in (absolute, no `..`).
//!
//! Pure: nothing here consults the host. [`crate::hostfs`] checks every
//! look-up against an [`AllowList`], on the path asked for and on what it
//! resolves to; [`crate::requests`] cleans container paths with
//! [`clean_absolute`].

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
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<Pattern>,
    /// Each pattern cut into its components, for [`Self::may_hold_below`]:
    /// made on its first use, since only `glob` needs them and a container
    /// start that activates no plugin should not pay for them.
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
    pub fn new(globs: &[String]) -> Result<Self, String> {
        let patterns = globs
            .iter()
            .map(|g| {
                if !g.starts_with('/') {
                    return Err(format!("`{g}` is not an absolute path pattern"));
                }
                Pattern::new(g).map_err(|e| format!("`{g}` is not a valid glob: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList {
            patterns,
            components: OnceLock::new(),
        })
    }

    pub fn allows(&self, path: &Path) -> bool {
        self.patterns
            .iter()
            .any(|p| p.matches_path_with(path, MATCH))
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Pattern::as_str)
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
            self.patterns
                .iter()
                .map(|pattern| {
                    pattern
                        .as_str()
                        .split('/')
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
    fn allow_list_refuses_relative_patterns() {
        assert!(AllowList::new(&["dev/*".into()]).is_err());
        assert!(AllowList::new(&["/dev/[".into()]).is_err());
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
