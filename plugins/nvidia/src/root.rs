//! Where the driver's user-space files live: the setting `driver-root`.
//!
//! NVIDIA's GPU Operator runs the driver in a container whose root is
//! `/run/nvidia/driver` on the host; other systems install it under a root of
//! their own. Every driver file (libraries, executables, firmware, the
//! loaders' configuration) is looked for under that root and given at its
//! standard path in the container: `<root>/usr/lib64/libcuda.so.550.54.14`
//! becomes `/usr/lib64/libcuda.so.550.54.14`. The kernel's files (`/proc`,
//! `/dev`) and the daemons' endpoints stay where the host has them.

use hookhost_plugin::host;

/// The setting's default: the driver is the host's own.
pub const HOST: &str = "/";

/// Where NVIDIA's GPU Operator mounts its driver container's root. The
/// shipped allow-list names the driver's files under it as well as under
/// `/`, so that such a node needs the setting only.
#[cfg(test)]
pub const GPU_OPERATOR: &str = "/run/nvidia/driver";

/// A driver root, as the setting `driver-root` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The setting's value.
    setting: String,
    /// What is put before a standard path: empty for `/`.
    prefix: String,
}

impl Root {
    /// Checks the setting: `/` or an absolute path without a trailing `/`.
    pub fn parse(setting: &str) -> Result<Root, String> {
        if setting != HOST {
            hookhost_plugin::check_dirs("driver-root", &[setting.to_string()])?;
        }
        Ok(Root {
            setting: setting.to_string(),
            prefix: setting.trim_end_matches('/').to_string(),
        })
    }

    /// The host path of the driver file whose standard path is `path`.
    pub fn on_host(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The standard path, in the container, of `host_path`, a path under
    /// the root.
    pub fn in_container<'a>(&self, host_path: &'a str) -> &'a str {
        host_path.strip_prefix(&self.prefix).unwrap_or(host_path)
    }

    /// `on_host` of every path.
    pub fn on_host_all(&self, paths: &[String]) -> Vec<String> {
        paths.iter().map(|p| self.on_host(p)).collect()
    }

    /// Fails when a root other than `/` holds neither `libcuda` nor
    /// `libnvidia-ml` of the running driver in `library_dirs`, as NVIDIA's
    /// toolkit infers the driver from them. A root the administrator named
    /// that holds no driver (a driver container not yet ready, a typo, a
    /// root the allow-list does not name) would otherwise give containers
    /// GPUs without a driver.
    pub fn check_driver(&self, library_dirs: &[String], version: &str) -> Result<(), String> {
        if self.setting == HOST {
            return Ok(());
        }
        let mut looked = Vec::new();
        for dir in self.on_host_all(library_dirs) {
            for name in ["libcuda", "libnvidia-ml"] {
                let path = format!("{dir}/{name}.so.{version}");
                if !host::glob(&path)?.is_empty() {
                    return Ok(());
                }
                looked.push(path);
            }
        }
        Err(format!(
            "the setting `driver-root` is {}, and the driver {version} is not there: none of {} \
             exists (or the allow-list does not name it)",
            self.setting,
            looked.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_root_changes_no_path() {
        let root = Root::parse("/").unwrap();
        assert_eq!(root.on_host("/usr/bin/nvidia-smi"), "/usr/bin/nvidia-smi");
        assert_eq!(
            root.in_container("/usr/bin/nvidia-smi"),
            "/usr/bin/nvidia-smi"
        );
    }

    #[test]
    fn another_root_is_put_before_the_standard_path_and_taken_off_in_the_container() {
        let root = Root::parse(GPU_OPERATOR).unwrap();
        let host = root.on_host("/usr/lib64/libcuda.so.1");
        assert_eq!(host, "/run/nvidia/driver/usr/lib64/libcuda.so.1");
        assert_eq!(root.in_container(&host), "/usr/lib64/libcuda.so.1");
    }

    #[test]
    fn a_relative_root_or_one_with_a_trailing_slash_is_refused_naming_the_setting() {
        for wrong in ["run/nvidia/driver", "/run/nvidia/driver/", ""] {
            assert_eq!(
                Root::parse(wrong).unwrap_err(),
                format!(
                    "invalid settings: driver-root: `{wrong}` is not an absolute path without \
                     a trailing /"
                )
            );
        }
    }
}
