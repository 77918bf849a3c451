//! The SDK for hookhost policy plugins.
//!
//! A plugin is a WebAssembly component that decides which host devices and
//! files a container gets. It never touches the host itself: it looks through
//! [`host`] (confined to its manifest's allow-list), reads the [`container`],
//! and asks for what it wants through [`inject`]. The host checks every
//! request at once and carries out the whole plan later.
//!
//! ```no_run
//! use hookhost_plugin::inject::{self, Device};
//! use hookhost_plugin::{container, PluginInfo, Policy};
//!
//! struct Example;
//!
//! impl Policy for Example {
//!     fn describe() -> PluginInfo {
//!         PluginInfo {
//!             name: "example".into(),
//!             vendor: "Example Corp.".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             summary: "Gives containers /dev/example0".into(),
//!         }
//!     }
//!     fn validate_settings(_: String) -> Result<(), String> {
//!         Ok(())
//!     }
//!     fn devices() -> Result<Vec<String>, String> {
//!         Ok(vec!["0".into()])
//!     }
//!     fn apply() -> Result<(), String> {
//!         match container::getenv("EXAMPLE_DEVICES") {
//!             Some(name) => give(&name),
//!             None => Ok(()),
//!         }
//!     }
//!     // For CDI specs: the same, for devices named by the host's admin.
//!     fn plan_devices(names: Vec<String>) -> Result<(), String> {
//!         names.iter().try_for_each(|name| give(name))
//!     }
//! }
//!
//! fn give(name: &str) -> Result<(), String> {
//!     if name != "0" {
//!         return Err(format!("no device {name}: this host has device 0"));
//!     }
//!     Device::new("/dev/example0").request()?;
//!     inject::library("/usr/lib/libexample.so.1")?;
//!     inject::run_ldconfig()?;
//!     Ok(())
//! }
//!
//! hookhost_plugin::export!(Example);
//! ```

use std::fmt;

use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit/0.2.1",
        pub_export_macro: true,
        default_bindings_module: "hookhost_plugin::bindings",
        // Our own error type, for a readable Display.
        with: { "hookhost:policy/types@0.2.1/error": crate::Error },
    });
}

pub use bindings::export;
pub use bindings::exports::hookhost::policy::policy::{Guest as Policy, PluginInfo};

/// Why the host refused a request or a look-up (the WIT `types.error`).
///
/// Each case carries the host's explanation, which names the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The path is outside this plugin's allow-list.
    NotAllowed(String),
    /// The path does not exist on the host (under the host root).
    NotFound(String),
    /// The request is malformed: relative path, `..`, wrong file kind...
    Invalid(String),
    /// The stage's back end cannot honour this request.
    Unsupported(String),
    /// It contradicts a request already in the plan.
    Conflict(String),
    /// Any other failure, with the host's explanation.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, message) = match self {
            Error::NotAllowed(m) => ("not allowed", m),
            Error::NotFound(m) => ("not found", m),
            Error::Invalid(m) => ("invalid", m),
            Error::Unsupported(m) => ("unsupported", m),
            Error::Conflict(m) => ("conflict", m),
            Error::Io(m) => ("I/O error", m),
        };
        write!(f, "{kind}: {message}")
    }
}

impl std::error::Error for Error {}

/// Lets `?` turn a host error into the `String` error of the [`Policy`]
/// functions.
impl From<Error> for String {
    fn from(error: Error) -> String {
        error.to_string()
    }
}

/// Checks the names `plan-devices` got against those the plugin offers (its
/// `devices`): an unknown one is an error that names it and lists the
/// offered ones.
pub fn check_device_names(names: &[String], offered: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err("plan-devices: no device named".into());
    }
    match names.iter().find(|name| !offered.contains(name)) {
        None => Ok(()),
        Some(name) if offered.is_empty() => {
            Err(format!("no device `{name}`: this host offers none"))
        }
        Some(name) => Err(format!(
            "no device `{name}`: this host offers {}",
            offered.join(", ")
        )),
    }
}

/// The plugin's `settings` from its manifest, deserialized into `T`.
///
/// The message of the error names the offending field, ready to be returned
/// from [`Policy::apply`].
pub fn settings<T: DeserializeOwned>() -> Result<T, String> {
    parse_settings(&host::settings())
}

/// Parses a settings document, as [`Policy::validate_settings`] receives it.
///
/// Use `#[serde(deny_unknown_fields)]` on `T` so that a misspelt field is an
/// error rather than a silent default.
pub fn parse_settings<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| format!("invalid settings: {e}"))
}

/// Checks a settings list of host directories (`field` names it in the
/// error): each must be absolute, without a trailing `/`, so that
/// `format!("{dir}/{file}")` is a clean path the allow-list can match.
pub fn check_dirs(field: &str, dirs: &[String]) -> Result<(), String> {
    match dirs
        .iter()
        .find(|d| !d.starts_with('/') || d.ends_with('/'))
    {
        Some(dir) => Err(format!(
            "invalid settings: {field}: `{dir}` is not an absolute path without a trailing /"
        )),
        None => Ok(()),
    }
}

/// The container being started, read-only.
pub mod container {
    pub use crate::bindings::hookhost::policy::container::{
        annotation, annotations, args, current_stage, env_match, environment, getenv, gid_mappings,
        id, image_entries, privileged, rootfs_readonly, spec_devices, uid_mappings,
    };
    pub use crate::bindings::hookhost::policy::types::{IdMapping, SpecDevice, Stage};
}

/// The host, seen through the plugin's allow-list and under the host root.
///
/// Paths are absolute host paths. Entries outside the allow-list do not exist
/// for the plugin: [`glob`] skips them, the others return
/// [`Error::NotAllowed`](crate::Error::NotAllowed).
pub mod host {
    pub use crate::bindings::hookhost::policy::host::{glob, read_file, read_link, settings, stat};
    pub use crate::bindings::hookhost::policy::types::{FileKind, FileStat};
    use crate::Error;

    /// At most `limit` bytes of a text file.
    ///
    /// Text that is not UTF-8 is an [`Error::Io`].
    pub fn read_to_string(path: &str, limit: u32) -> Result<String, Error> {
        String::from_utf8(read_file(path, limit)?)
            .map_err(|_| Error::Io(format!("{path} is not UTF-8 text")))
    }
}

/// Requests, checked by the host at once and recorded into the plan.
///
/// Every request returns the host's refusal as an [`Error`](crate::Error);
/// the plugin decides whether that is fatal.
pub mod inject {
    pub use crate::bindings::hookhost::policy::inject::{
        add_device, copy_file, make_dir, prefer_image_libraries, run_ldconfig, set_env, symlink,
        Device, File, FileRole, Transfer,
    };
    use crate::Error;

    impl Device {
        /// The host node `host_path`, at the same path in the container, with
        /// the host node's mode and `rwm` access.
        pub fn new(host_path: impl Into<String>) -> Self {
            Device {
                host_path: host_path.into(),
                container_path: None,
                file_mode: None,
                uid: None,
                gid: None,
                permissions: None,
            }
        }

        /// Puts the node at `container_path` instead.
        pub fn at(mut self, container_path: impl Into<String>) -> Self {
            self.container_path = Some(container_path.into());
            self
        }

        /// Gives the node the permission bits `mode`.
        pub fn mode(mut self, mode: u32) -> Self {
            self.file_mode = Some(mode);
            self
        }

        /// Gives the node to `uid`:`gid` of the container.
        pub fn owner(mut self, uid: u32, gid: u32) -> Self {
            self.uid = Some(uid);
            self.gid = Some(gid);
            self
        }

        /// Limits the device cgroup access to `access`, any of `rwm`.
        pub fn permissions(mut self, access: impl Into<String>) -> Self {
            self.permissions = Some(access.into());
            self
        }

        /// Asks for the device (`add-device`).
        pub fn request(&self) -> Result<(), Error> {
            add_device(self)
        }
    }

    impl File {
        /// The host file `host_path`, bind-mounted read-only at the same path
        /// in the container.
        pub fn new(host_path: impl Into<String>, role: FileRole) -> Self {
            File {
                host_path: host_path.into(),
                container_path: None,
                role,
                transfer: Transfer::Bind,
            }
        }

        /// Puts the file at `container_path` instead.
        pub fn at(mut self, container_path: impl Into<String>) -> Self {
            self.container_path = Some(container_path.into());
            self
        }

        /// Copies the file into the container instead of bind-mounting it.
        pub fn by_copy(mut self) -> Self {
            self.transfer = Transfer::Copy;
            self
        }

        /// Asks for the file (`copy-file`).
        pub fn request(&self) -> Result<(), Error> {
            copy_file(self)
        }
    }

    /// Asks for the shared library `host_path`, bind-mounted at the same path.
    /// Follow with [`run_ldconfig`].
    pub fn library(host_path: &str) -> Result<(), Error> {
        File::new(host_path, FileRole::Library).request()
    }

    /// Asks for the executable `host_path`, bind-mounted at the same path.
    pub fn binary(host_path: &str) -> Result<(), Error> {
        File::new(host_path, FileRole::Binary).request()
    }

    /// Asks for the file `host_path` (firmware, configuration...),
    /// bind-mounted at the same path.
    pub fn misc(host_path: &str) -> Result<(), Error> {
        File::new(host_path, FileRole::Misc).request()
    }
}

/// Messages for the host's log, which names the plugin.
///
/// The macros take `format!` arguments: `log::info!("{n} GPUs")`.
pub mod log {
    pub use crate::bindings::hookhost::policy::log::{log, Level};
    #[doc(inline)]
    pub use crate::{
        __log_debug as debug, __log_error as error, __log_info as info, __log_warn as warn,
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        let error = Error::NotAllowed("/etc/shadow is not in this plugin's allow-list".into());
        assert_eq!(
            String::from(error),
            "not allowed: /etc/shadow is not in this plugin's allow-list"
        );
    }

    #[test]
    fn device_names_must_be_offered() {
        let offered = ["0".to_string(), "all".to_string()];
        assert_eq!(
            check_device_names(&["0".into(), "all".into()], &offered),
            Ok(())
        );
        assert_eq!(
            check_device_names(&["1".into()], &offered).unwrap_err(),
            "no device `1`: this host offers 0, all"
        );
        assert!(check_device_names(&[], &offered).is_err());
        assert_eq!(
            check_device_names(&["0".into()], &[]).unwrap_err(),
            "no device `0`: this host offers none"
        );
    }

    #[test]
    fn settings_errors_say_what_is_wrong() {
        let error = parse_settings::<u32>(r#""many""#).unwrap_err();
        assert!(
            error.starts_with("invalid settings: invalid type: string"),
            "{error}"
        );
    }
}

/// Symlink chains, as read from the host with `host::read_link`: what a
/// policy needs to recreate a library's soname links faithfully.
pub mod links {
    use std::borrow::Borrow;
    use std::collections::BTreeMap;

    /// Whether following `links` (host path → link content; a relative
    /// content is relative to `dir`) from `start` ends at `file`. A chain
    /// visits each link at most once: a longer one is a loop, and false.
    pub fn leads_to<K: Borrow<str> + Ord>(
        start: &str,
        links: &BTreeMap<K, String>,
        dir: &str,
        file: &str,
    ) -> bool {
        let mut path = start.to_string();
        for _ in 0..links.len() {
            let Some(target) = links.get(path.as_str()) else {
                return false;
            };
            path = if target.starts_with('/') {
                target.clone()
            } else {
                format!("{dir}/{target}")
            };
            if path == file {
                return true;
            }
        }
        false
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn chains_are_followed_and_loops_end() {
            let links: BTreeMap<&str, String> = [
                ("/l/a.so", "a.so.1".to_string()),
                ("/l/a.so.1", "/l/a.so.1.2".to_string()),
                ("/l/x", "y".to_string()),
                ("/l/y", "x".to_string()),
            ]
            .into();
            assert!(leads_to("/l/a.so", &links, "/l", "/l/a.so.1.2"));
            assert!(leads_to("/l/a.so.1", &links, "/l", "/l/a.so.1.2"));
            assert!(!leads_to("/l/a.so", &links, "/l", "/l/b.so"));
            assert!(!leads_to("/l/x", &links, "/l", "/l/a.so.1.2"));
        }
    }
}

/// Choosing among the devices the spec already allocates, not among all of
/// the host's.
///
/// A device plugin (Kubernetes) writes what it allocated to a container into
/// the spec's `linux.devices`, while the container's environment comes from
/// its image: every CUDA image says `NVIDIA_VISIBLE_DEVICES=all`. A policy
/// that selects by a variable therefore offers the setting `candidates`:
/// `host` (the default) chooses among every device of the host; `spec`
/// chooses among the devices the spec lists, so the variable can only narrow
/// the allocation (`all` means all of it), and a spec that allocates none of
/// the policy's devices gets nothing, whatever the variable says, as NVIDIA's
/// `accept-nvidia-visible-devices-envvar-when-unprivileged = false` does.
///
/// Devices are matched by number (major:minor of a character device), not by
/// path: the number is what the container gets (the runtime makes the node
/// and allows it in the device cgroup from it), the path only names it.
pub mod allocation {
    use std::collections::BTreeSet;

    use serde::Deserialize;

    use crate::container::{self, SpecDevice};
    use crate::host::{self, FileKind};
    use crate::Error;

    /// The `candidates` setting: which devices a container's selection
    /// chooses from.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Candidates {
        /// Every device of the host.
        #[default]
        Host,
        /// Only the devices the spec's `linux.devices` lists.
        Spec,
    }

    /// The character devices of the spec's `linux.devices`, by number.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SpecDevices {
        numbers: BTreeSet<(u32, u32)>,
    }

    impl SpecDevices {
        /// The container's (`container::spec_devices`).
        pub fn read() -> Self {
            Self::new(&container::spec_devices())
        }

        pub fn new(devices: &[SpecDevice]) -> Self {
            SpecDevices {
                numbers: devices
                    .iter()
                    .filter(|d| d.kind == FileKind::CharDevice)
                    .map(|d| (d.major, d.minor))
                    .collect(),
            }
        }

        /// Whether the spec lists no character device at all.
        pub fn is_empty(&self) -> bool {
            self.numbers.is_empty()
        }

        /// Whether the spec lists the character device `major:minor`.
        pub fn lists(&self, major: u32, minor: u32) -> bool {
            self.numbers.contains(&(major, minor))
        }

        /// Whether the spec lists the host's character device node `path`,
        /// by its number (`host::stat`). A path that is no character device
        /// on this host, or none this plugin may see, is not listed.
        pub fn lists_node(&self, path: &str) -> Result<bool, Error> {
            if self.is_empty() {
                return Ok(false);
            }
            match host::stat(path) {
                Ok(stat) if stat.kind == FileKind::CharDevice => {
                    Ok(self.lists(stat.major, stat.minor))
                }
                Ok(_) | Err(Error::NotFound(_) | Error::NotAllowed(_)) => Ok(false),
                Err(e) => Err(e),
            }
        }
    }

    /// The devices a container gets with `candidates: spec`: `selected`,
    /// what its `variable` chose among every device of the host, narrowed to
    /// the `allocated` ones. `everything` says the variable was `all`: then
    /// the allocated devices among `selected`. Otherwise every selected
    /// device must be allocated; the error names the first that is not and
    /// lists the `allocation` (a description of each allocated device).
    pub fn narrow<T>(
        variable: &str,
        everything: bool,
        selected: Vec<T>,
        allocated: impl Fn(&T) -> bool,
        describe: impl Fn(&T) -> String,
        allocation: &[String],
    ) -> Result<Vec<T>, String> {
        if everything {
            return Ok(selected.into_iter().filter(|d| allocated(d)).collect());
        }
        match selected.iter().find(|d| !allocated(d)) {
            Some(outside) => Err(format!(
                "{variable}: {} is not among the devices the spec allocates in linux.devices \
                 ({}); with the setting `candidates: spec` the variable can only narrow \
                 that allocation",
                describe(outside),
                allocation.join(", ")
            )),
            None => Ok(selected),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn char_device(path: &str, major: u32, minor: u32) -> SpecDevice {
            SpecDevice {
                path: path.into(),
                kind: FileKind::CharDevice,
                major,
                minor,
            }
        }

        #[test]
        fn spec_devices_are_character_devices_by_number() {
            let spec = SpecDevices::new(&[
                char_device("/dev/nvidia0", 195, 1),
                SpecDevice {
                    path: "/dev/sda".into(),
                    kind: FileKind::BlockDevice,
                    major: 195,
                    minor: 2,
                },
            ]);
            assert!(spec.lists(195, 1));
            assert!(!spec.lists(195, 0), "the path does not matter");
            assert!(!spec.lists(195, 2), "a block device is not a candidate");
            assert!(SpecDevices::new(&[]).is_empty());
        }

        #[test]
        fn the_setting_defaults_to_the_hosts_devices() {
            assert_eq!(Candidates::default(), Candidates::Host);
            let spec: Candidates = serde_json::from_str(r#""spec""#).unwrap();
            assert_eq!(spec, Candidates::Spec);
            assert!(serde_json::from_str::<Candidates>(r#""environment""#).is_err());
        }

        fn narrow_gpus(everything: bool, selected: Vec<u32>) -> Result<Vec<u32>, String> {
            let allocation = ["GPU 1".to_string(), "GPU 3".to_string()];
            narrow(
                "GPUS",
                everything,
                selected,
                |gpu| [1, 3].contains(gpu),
                |gpu| format!("GPU {gpu}"),
                &allocation,
            )
        }

        #[test]
        fn all_does_not_widen_the_allocation() {
            assert_eq!(narrow_gpus(true, vec![0, 1, 2, 3]), Ok(vec![1, 3]));
        }

        #[test]
        fn a_list_may_narrow_the_allocation_but_not_leave_it() {
            assert_eq!(narrow_gpus(false, vec![3]), Ok(vec![3]));
            assert_eq!(narrow_gpus(false, vec![]), Ok(vec![]));
            assert_eq!(
                narrow_gpus(false, vec![3, 2]),
                Err(
                    "GPUS: GPU 2 is not among the devices the spec allocates in linux.devices \
                     (GPU 1, GPU 3); with the setting `candidates: spec` the variable can only \
                     narrow that allocation"
                        .into()
                )
            );
        }
    }
}

/// Helpers for a plugin's own unit tests (native, `cargo test`).
pub mod testing {
    use std::collections::BTreeSet;

    /// Asserts that the `allow` list of `manifest` (the plugin's manifest,
    /// parsed) is exactly `expected`: each pattern once, none missing, none
    /// extra. A plugin's test builds `expected` from the code's own tables,
    /// so the manifest cannot drift from what the code asks for.
    pub fn assert_allow_list(manifest: &serde_json::Value, expected: &[impl AsRef<str>]) {
        let allow: Vec<&str> = manifest["allow"]
            .as_array()
            .expect("the manifest has an `allow` list")
            .iter()
            .map(|glob| glob.as_str().expect("allow-list entries are strings"))
            .collect();
        let allowed: BTreeSet<&str> = allow.iter().copied().collect();
        assert_eq!(allowed.len(), allow.len(), "the allow-list has repeats");
        let expected: BTreeSet<&str> = expected.iter().map(AsRef::as_ref).collect();
        assert_eq!(allowed, expected);
    }
}
