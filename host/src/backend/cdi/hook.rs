//! `hookhost cdi-hook`: the createContainer hook a CDI spec names for what
//! a spec cannot express (directories, symlinks, the linker cache). Its
//! work is its arguments, which root wrote into the spec: nothing is taken
//! from the container, its image or its environment, and no plugin runs at
//! container start. The hook back end carries it out, as a createContainer
//! hook, with the same confined rootfs operations as every other hook.

use crate::allow::clean_absolute;
use crate::lowering::{ldconfig_ops, Attributed, Lowered, Op};

/// The work, as `hookhost cdi-hook` was given it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookWork {
    /// Who asked, for messages and the audit log.
    pub plugin: String,
    /// (path, octal mode), each made with its parents.
    pub dirs: Vec<(String, String)>,
    /// (path, target).
    pub symlinks: Vec<(String, String)>,
    /// Library directories for the ld.so.conf.d drop-in and ldconfig.
    pub ldconfig_dirs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookWorkError {
    #[error("cdi-hook: {flag} {value}: {reason}")]
    Argument {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

impl HookWork {
    /// The operations, in the order every back end uses (directories,
    /// symlinks, then the linker cache), each path checked as a request's.
    pub fn lower(&self) -> Result<Lowered, HookWorkError> {
        let bad = |flag, value: &str, reason: String| HookWorkError::Argument {
            flag,
            value: value.to_string(),
            reason,
        };
        let path = |flag, p: &str| {
            clean_absolute(p)
                .map(|p| p.display().to_string())
                .map_err(|reason| bad(flag, p, reason))
        };
        let mut ops = Vec::new();
        for (dir, mode) in &self.dirs {
            let mode = u32::from_str_radix(mode, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| bad("--dir", mode, "is not an octal mode up to 7777".into()))?;
            ops.push(Op::Directory {
                path: path("--dir", dir)?,
                mode,
            });
        }
        for (link, target) in &self.symlinks {
            if target.is_empty() || target.contains('\0') {
                return Err(bad("--symlink", target, "is not a symlink target".into()));
            }
            ops.push(Op::Symlink {
                path: path("--symlink", link)?,
                target: target.clone(),
            });
        }
        if !self.ldconfig_dirs.is_empty() {
            let dirs = self
                .ldconfig_dirs
                .iter()
                .map(|d| path("--ldconfig-dir", d))
                .collect::<Result<Vec<_>, _>>()?;
            ops.extend(ldconfig_ops(&dirs));
        }
        Ok(Lowered {
            ops: ops
                .into_iter()
                .map(|what| Attributed {
                    plugin: self.plugin.clone(),
                    what,
                })
                .collect(),
            ..Lowered::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lowering::LDCONFIG_DROP_IN;

    fn work() -> HookWork {
        HookWork {
            plugin: "nvidia".into(),
            dirs: vec![("/var/run/nvidia".into(), "0755".into())],
            symlinks: vec![("/usr/lib/libcuda.so".into(), "libcuda.so.1".into())],
            ldconfig_dirs: vec!["/usr/lib/x86_64-linux-gnu".into()],
        }
    }

    #[test]
    fn arguments_become_ordered_operations_with_the_drop_in_before_ldconfig() {
        let lowered = work().lower().unwrap();
        let actions: Vec<(&str, &str)> = lowered
            .ops
            .iter()
            .map(|op| (op.what.action(), op.what.path()))
            .collect();
        assert_eq!(
            actions,
            [
                ("mkdir", "/var/run/nvidia"),
                ("symlink", "/usr/lib/libcuda.so"),
                ("write", LDCONFIG_DROP_IN),
                ("ldconfig", "/etc/ld.so.cache"),
            ]
        );
        assert!(lowered.ops.iter().all(|op| op.plugin == "nvidia"));
        assert!(lowered.rules.is_empty() && lowered.env.is_empty());
        assert_eq!(
            lowered.ops[0].what,
            Op::Directory {
                path: "/var/run/nvidia".into(),
                mode: 0o755
            }
        );
    }

    #[test]
    fn relative_or_climbing_paths_and_bad_modes_are_refused_naming_the_flag() {
        let mut w = work();
        w.symlinks[0].0 = "/usr/lib/../../etc/passwd".into();
        assert_eq!(
            w.lower().unwrap_err().to_string(),
            "cdi-hook: --symlink /usr/lib/../../etc/passwd: contains `..`"
        );
        let mut w = work();
        w.ldconfig_dirs[0] = "lib".into();
        assert!(w
            .lower()
            .unwrap_err()
            .to_string()
            .starts_with("cdi-hook: --ldconfig-dir lib:"));
        let mut w = work();
        w.dirs[0].1 = "17777".into();
        assert!(w.lower().is_err());
        w.dirs[0].1 = "rwx".into();
        assert!(w.lower().is_err());
    }
}
