//! The injection plan: everything the plugins asked for, checked, attributed
//! and merged. It is the one type every back end consumes (hook executor,
//! runtime shim, CDI, dry run), and it serialises to stable JSON so a plan can
//! be printed, diffed and kept as a test expectation.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Plan {
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub files: Vec<File>,
    #[serde(default)]
    pub directories: Vec<Directory>,
    #[serde(default)]
    pub symlinks: Vec<Symlink>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Present when some plugin asked for the linker cache to be refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldconfig: Option<Ldconfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceType {
    Char,
    Block,
}

impl DeviceType {
    /// The letter of a device cgroup rule and of `ls -l`.
    pub fn letter(self) -> char {
        match self {
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Device {
    pub plugin: String,
    pub container_path: String,
    pub host_path: String,
    #[serde(rename = "type")]
    pub kind: DeviceType,
    pub major: u32,
    pub minor: u32,
    #[serde(with = "octal")]
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device cgroup access: a subset of "rwm".
    pub permissions: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    Binary,
    Library,
    Misc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transfer {
    Bind,
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct File {
    pub plugin: String,
    pub host_path: String,
    pub container_path: String,
    pub role: FileRole,
    pub transfer: Transfer,
    /// Whether the host path is a directory (bound or copied whole).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub directory: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Directory {
    pub plugin: String,
    pub container_path: String,
    #[serde(with = "octal")]
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Symlink {
    pub plugin: String,
    pub container_path: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EnvVar {
    pub plugin: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Ldconfig {
    /// The plugins that asked for it.
    pub plugins: Vec<String>,
    /// Container directories holding injected libraries, sorted: what the
    /// ld.so.conf.d drop-in will list.
    pub library_dirs: Vec<String>,
}

/// Two requests that cannot both be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {first} conflicts with {second}")]
pub struct Conflict {
    pub path: String,
    /// "plugin `nvidia` (device c 195:0)" and the like.
    pub first: String,
    pub second: String,
}

/// One entry of the plan, for conflict checks and display.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    Device(&'a Device),
    File(&'a File),
    Directory(&'a Directory),
    Symlink(&'a Symlink),
    Env(&'a EnvVar),
}

impl<'a> Entry<'a> {
    pub fn plugin(&self) -> &'a str {
        match self {
            Entry::Device(d) => &d.plugin,
            Entry::File(f) => &f.plugin,
            Entry::Directory(d) => &d.plugin,
            Entry::Symlink(s) => &s.plugin,
            Entry::Env(e) => &e.plugin,
        }
    }

    /// The container path (or variable name) the entry claims.
    pub fn key(&self) -> &'a str {
        match self {
            Entry::Device(d) => &d.container_path,
            Entry::File(f) => &f.container_path,
            Entry::Directory(d) => &d.container_path,
            Entry::Symlink(s) => &s.container_path,
            Entry::Env(e) => &e.name,
        }
    }

    /// What the entry puts at its key, without the plugin's name.
    pub fn describe(&self) -> String {
        match self {
            Entry::Device(d) => format!(
                "device {} {}:{} from {}",
                d.kind.letter(),
                d.major,
                d.minor,
                d.host_path
            ),
            Entry::File(f) => format!(
                "{} {} of {}",
                format!("{:?}", f.role).to_lowercase(),
                format!("{:?}", f.transfer).to_lowercase(),
                f.host_path
            ),
            Entry::Directory(d) => format!("directory mode {:04o}", d.mode),
            Entry::Symlink(s) => format!("symlink to {}", s.target),
            Entry::Env(e) => format!("{}={}", e.name, e.value),
        }
    }

    /// Equal apart from the plugin that asked: the second one is redundant.
    fn same_as(&self, other: &Entry) -> bool {
        self.describe() == other.describe()
            && match (self, other) {
                (Entry::Device(a), Entry::Device(b)) => {
                    (a.file_mode, a.uid, a.gid, &a.permissions)
                        == (b.file_mode, b.uid, b.gid, &b.permissions)
                }
                _ => true,
            }
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.files.is_empty()
            && self.directories.is_empty()
            && self.symlinks.is_empty()
            && self.env.is_empty()
            && self.ldconfig.is_none()
    }

    /// All entries, in plan order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        self.devices
            .iter()
            .map(Entry::Device)
            .chain(self.files.iter().map(Entry::File))
            .chain(self.directories.iter().map(Entry::Directory))
            .chain(self.symlinks.iter().map(Entry::Symlink))
            .chain(self.env.iter().map(Entry::Env))
    }

    /// Checks `new` against the entries already planned. `Ok(true)`: add it;
    /// `Ok(false)`: an identical entry is there already.
    fn admit(&self, new: Entry) -> Result<bool, Conflict> {
        let is_env = matches!(new, Entry::Env(_));
        for old in self.entries() {
            if old.key() != new.key() || matches!(old, Entry::Env(_)) != is_env {
                continue;
            }
            if old.same_as(&new) {
                return Ok(false);
            }
            return Err(Conflict {
                path: new.key().to_string(),
                first: format!("plugin `{}` ({})", old.plugin(), old.describe()),
                second: format!("plugin `{}` ({})", new.plugin(), new.describe()),
            });
        }
        Ok(true)
    }

    pub fn add_device(&mut self, device: Device) -> Result<(), Conflict> {
        if self.admit(Entry::Device(&device))? {
            self.devices.push(device);
        }
        Ok(())
    }

    pub fn add_file(&mut self, file: File) -> Result<(), Conflict> {
        if self.admit(Entry::File(&file))? {
            self.files.push(file);
        }
        Ok(())
    }

    pub fn add_directory(&mut self, dir: Directory) -> Result<(), Conflict> {
        if self.admit(Entry::Directory(&dir))? {
            self.directories.push(dir);
        }
        Ok(())
    }

    pub fn add_symlink(&mut self, link: Symlink) -> Result<(), Conflict> {
        if self.admit(Entry::Symlink(&link))? {
            self.symlinks.push(link);
        }
        Ok(())
    }

    pub fn add_env(&mut self, var: EnvVar) -> Result<(), Conflict> {
        if self.admit(Entry::Env(&var))? {
            self.env.push(var);
        }
        Ok(())
    }

    /// Records that `plugin` wants ldconfig run once the files are in place.
    pub fn request_ldconfig(&mut self, plugin: &str) {
        let ld = self.ldconfig.get_or_insert_with(Ldconfig::default);
        if !ld.plugins.iter().any(|p| p == plugin) {
            ld.plugins.push(plugin.to_string());
        }
        self.refresh_library_dirs();
    }

    /// Adds every entry of `other` (one plugin's plan) to this plan, or
    /// nothing at all if any of them conflicts.
    pub fn merge(&mut self, other: Plan) -> Result<(), Conflict> {
        let mut merged = self.clone();
        for d in other.devices {
            merged.add_device(d)?;
        }
        for f in other.files {
            merged.add_file(f)?;
        }
        for d in other.directories {
            merged.add_directory(d)?;
        }
        for s in other.symlinks {
            merged.add_symlink(s)?;
        }
        for e in other.env {
            merged.add_env(e)?;
        }
        if let Some(ld) = other.ldconfig {
            for plugin in &ld.plugins {
                merged.request_ldconfig(plugin);
            }
        }
        merged.refresh_library_dirs();
        *self = merged;
        Ok(())
    }

    /// Keeps `ldconfig.library-dirs` equal to the directories of the planned
    /// libraries, whichever plugin added them.
    pub fn refresh_library_dirs(&mut self) {
        let Some(ld) = self.ldconfig.as_mut() else {
            return;
        };
        let dirs: BTreeSet<String> = self
            .files
            .iter()
            .filter(|f| f.role == FileRole::Library)
            .filter_map(|f| Path::new(&f.container_path).parent())
            .map(|p| p.display().to_string())
            .collect();
        ld.library_dirs = dirs.into_iter().collect();
    }

    /// The names of the plugins that contributed, in first-seen order.
    pub fn plugins(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        let ld = self.ldconfig.iter().flat_map(|l| l.plugins.iter());
        for name in self
            .entries()
            .map(|e| e.plugin())
            .chain(ld.map(String::as_str))
        {
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        seen
    }
}

/// File modes as octal strings ("0666") in JSON: that is how people read them.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8)
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an octal file mode")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(plugin: &str, path: &str, minor: u32) -> Device {
        Device {
            plugin: plugin.into(),
            container_path: path.into(),
            host_path: path.into(),
            kind: DeviceType::Char,
            major: 195,
            minor,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
            permissions: "rwm".into(),
        }
    }

    fn library(plugin: &str, path: &str) -> File {
        File {
            plugin: plugin.into(),
            host_path: path.into(),
            container_path: path.into(),
            role: FileRole::Library,
            transfer: Transfer::Bind,
            directory: false,
        }
    }

    #[test]
    fn identical_requests_of_two_plugins_are_kept_once() {
        let mut a = Plan::default();
        a.add_device(device("a", "/dev/nvidia0", 0)).unwrap();
        let mut b = Plan::default();
        b.add_device(device("b", "/dev/nvidia0", 0)).unwrap();
        a.merge(b).unwrap();
        assert_eq!(a.devices.len(), 1);
        assert_eq!(a.devices[0].plugin, "a");
    }

    #[test]
    fn same_path_different_device_is_a_conflict_naming_both_plugins() {
        let mut a = Plan::default();
        a.add_device(device("a", "/dev/nvidia0", 0)).unwrap();
        let mut b = Plan::default();
        b.add_device(device("b", "/dev/nvidia0", 1)).unwrap();
        b.add_file(library("b", "/usr/lib/libb.so")).unwrap();
        let err = a.merge(b).unwrap_err();
        assert_eq!(err.path, "/dev/nvidia0");
        assert!(err.first.contains("`a`") && err.second.contains("`b`"));
        assert!(err.to_string().contains("c 195:1"));
        assert!(a.files.is_empty(), "a failed merge adds nothing");
    }

    #[test]
    fn a_file_and_a_symlink_at_one_path_conflict() {
        let mut plan = Plan::default();
        plan.add_file(library("a", "/usr/lib/libx.so.1")).unwrap();
        let err = plan
            .add_symlink(Symlink {
                plugin: "a".into(),
                container_path: "/usr/lib/libx.so.1".into(),
                target: "libx.so.2".into(),
            })
            .unwrap_err();
        assert!(err.to_string().contains("symlink to libx.so.2"));
    }

    #[test]
    fn ldconfig_lists_the_directories_of_all_libraries() {
        let mut a = Plan::default();
        a.add_file(library("a", "/usr/lib64/liba.so")).unwrap();
        a.request_ldconfig("a");
        let mut b = Plan::default();
        b.add_file(library("b", "/opt/b/lib/libb.so")).unwrap();
        a.merge(b).unwrap();
        let ld = a.ldconfig.unwrap();
        assert_eq!(ld.plugins, vec!["a"]);
        assert_eq!(ld.library_dirs, vec!["/opt/b/lib", "/usr/lib64"]);
    }

    #[test]
    fn plan_json_round_trips_with_octal_modes() {
        let mut plan = Plan::default();
        plan.add_device(device("a", "/dev/nvidia0", 0)).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains(r#""file-mode":"0666""#), "{json}");
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}
