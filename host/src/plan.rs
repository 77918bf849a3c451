//! The injection plan: everything the plugins asked for, checked, attributed
//! and merged. It is the one type every back end consumes (hook executor,
//! runtime shim, CDI, dry run), and it serialises to stable JSON so a plan can
//! be printed, diffed and kept as a test expectation.
//!
//! Conflict checks go through an index by container path (and variable
//! name), so building a plan of n entries costs n log n or better whatever
//! the plugins ask: every add is checked inside a host call, where a
//! plugin's time limit cannot stop the host.

use std::collections::{BTreeSet, HashMap};
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
    /// Derived from the entries: not part of the plan's value or its JSON.
    #[serde(skip)]
    index: Index,
}

/// Where each key of the plan is, and the directories of its libraries.
/// It follows the entries as they are added through `add_*`; when the
/// vectors were changed otherwise (a plan read from JSON), their total
/// length differs from `len` and it is rebuilt.
#[derive(Debug, Clone, Default)]
struct Index {
    /// How many entries are indexed.
    len: usize,
    /// Container path -> the entry claiming it (the first, in plan order).
    paths: HashMap<String, Slot>,
    /// Variable name -> its position in `env`.
    env: HashMap<String, usize>,
    library_dirs: BTreeSet<String>,
    /// `library_dirs` has changed since `ldconfig.library_dirs` was set.
    dirs_changed: bool,
}

/// An entry's kind and position.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Device(usize),
    File(usize),
    Directory(usize),
    Symlink(usize),
    Env(usize),
}

/// The index is a function of the entries: any two are equal.
impl PartialEq for Index {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Index {}

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
    /// Image directories whose libraries must win over every other (CUDA's
    /// forward compatibility), in request order: scanned and listed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_dirs: Vec<String>,
}

impl Ldconfig {
    /// Every directory for ldconfig and the drop-in, the preferred first,
    /// each once.
    pub fn dirs(&self) -> Vec<String> {
        let mut dirs = self.preferred_dirs.clone();
        for dir in &self.library_dirs {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }
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
                // A bind of a directory is not a bind of a file.
                (Entry::File(a), Entry::File(b)) => a.directory == b.directory,
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

    /// The entries' total count, which the index must match.
    fn len(&self) -> usize {
        self.devices.len()
            + self.files.len()
            + self.directories.len()
            + self.symlinks.len()
            + self.env.len()
    }

    /// The index, rebuilt first if the entries changed behind its back.
    fn index(&mut self) -> &mut Index {
        if self.index.len != self.len() {
            let mut index = Index {
                len: self.len(),
                dirs_changed: true,
                ..Index::default()
            };
            let slots = (self.devices.iter().enumerate())
                .map(|(i, d)| (&d.container_path, Slot::Device(i)))
                .chain(
                    (self.files.iter().enumerate())
                        .map(|(i, f)| (&f.container_path, Slot::File(i))),
                )
                .chain(
                    (self.directories.iter().enumerate())
                        .map(|(i, d)| (&d.container_path, Slot::Directory(i))),
                )
                .chain(
                    (self.symlinks.iter().enumerate())
                        .map(|(i, s)| (&s.container_path, Slot::Symlink(i))),
                );
            for (path, slot) in slots {
                index.paths.entry(path.clone()).or_insert(slot);
            }
            for (i, var) in self.env.iter().enumerate() {
                index.env.entry(var.name.clone()).or_insert(i);
            }
            index.library_dirs = self.files.iter().filter_map(library_dir).collect();
            self.index = index;
        }
        &mut self.index
    }

    /// The entry already planned at `new`'s key, if any.
    fn planned(&mut self, new: &Entry) -> Option<Entry<'_>> {
        let index = self.index();
        let slot = match new {
            Entry::Env(var) => Slot::Env(*index.env.get(&var.name)?),
            _ => *index.paths.get(new.key())?,
        };
        Some(match slot {
            Slot::Device(i) => Entry::Device(&self.devices[i]),
            Slot::File(i) => Entry::File(&self.files[i]),
            Slot::Directory(i) => Entry::Directory(&self.directories[i]),
            Slot::Symlink(i) => Entry::Symlink(&self.symlinks[i]),
            Slot::Env(i) => Entry::Env(&self.env[i]),
        })
    }

    /// Checks `new` against the entries already planned. `Ok(true)`: add it;
    /// `Ok(false)`: an identical entry is there already.
    fn admit(&mut self, new: Entry) -> Result<bool, Conflict> {
        let Some(old) = self.planned(&new) else {
            return Ok(true);
        };
        if old.same_as(&new) {
            return Ok(false);
        }
        Err(Conflict {
            path: new.key().to_string(),
            first: format!("plugin `{}` ({})", old.plugin(), old.describe()),
            second: format!("plugin `{}` ({})", new.plugin(), new.describe()),
        })
    }

    /// Indexes an entry about to be pushed at `slot`; `admit` has just
    /// brought the index in step.
    fn indexed(&mut self, path: &str, slot: Slot) {
        self.index.paths.insert(path.to_string(), slot);
        self.index.len += 1;
    }

    pub fn add_device(&mut self, device: Device) -> Result<(), Conflict> {
        if self.admit(Entry::Device(&device))? {
            self.indexed(&device.container_path, Slot::Device(self.devices.len()));
            self.devices.push(device);
        }
        Ok(())
    }

    pub fn add_file(&mut self, file: File) -> Result<(), Conflict> {
        if self.admit(Entry::File(&file))? {
            self.indexed(&file.container_path, Slot::File(self.files.len()));
            if let Some(dir) = library_dir(&file) {
                self.index.dirs_changed |= self.index.library_dirs.insert(dir);
            }
            self.files.push(file);
        }
        Ok(())
    }

    pub fn add_directory(&mut self, dir: Directory) -> Result<(), Conflict> {
        if self.admit(Entry::Directory(&dir))? {
            self.indexed(&dir.container_path, Slot::Directory(self.directories.len()));
            self.directories.push(dir);
        }
        Ok(())
    }

    pub fn add_symlink(&mut self, link: Symlink) -> Result<(), Conflict> {
        if self.admit(Entry::Symlink(&link))? {
            self.indexed(&link.container_path, Slot::Symlink(self.symlinks.len()));
            self.symlinks.push(link);
        }
        Ok(())
    }

    pub fn add_env(&mut self, var: EnvVar) -> Result<(), Conflict> {
        if self.admit(Entry::Env(&var))? {
            self.index.env.insert(var.name.clone(), self.env.len());
            self.index.len += 1;
            self.env.push(var);
        }
        Ok(())
    }

    /// Records that `plugin` wants ldconfig run once the files are in place.
    pub fn request_ldconfig(&mut self, plugin: &str) {
        if self.ldconfig.is_none() {
            self.index().dirs_changed = true;
        }
        let ld = self.ldconfig.get_or_insert_with(Ldconfig::default);
        if !ld.plugins.iter().any(|p| p == plugin) {
            ld.plugins.push(plugin.to_string());
        }
        self.refresh_library_dirs();
    }

    /// Records that `plugin` wants ldconfig run with the image directory
    /// `dir` first.
    pub fn prefer_library_dir(&mut self, plugin: &str, dir: &str) {
        self.request_ldconfig(plugin);
        if let Some(ld) = self.ldconfig.as_mut() {
            if !ld.preferred_dirs.iter().any(|d| d == dir) {
                ld.preferred_dirs.push(dir.to_string());
            }
        }
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
            // Each dir came from one of ld.plugins: the first names it. A
            // plan read from JSON may name none; its dirs then have no owner.
            if let Some(first) = ld.plugins.first() {
                for dir in &ld.preferred_dirs {
                    merged.prefer_library_dir(first, dir);
                }
            }
        }
        merged.refresh_library_dirs();
        *self = merged;
        Ok(())
    }

    /// Sets `ldconfig.library-dirs` to the directories of the planned
    /// libraries, whichever plugin added them. `add_file` only notes a new
    /// directory (so that n adds stay n log n); `merge`, `request_ldconfig`
    /// and `Requests::take_plan` call this.
    pub fn refresh_library_dirs(&mut self) {
        if self.ldconfig.is_none() || !self.index().dirs_changed {
            return;
        }
        self.index.dirs_changed = false;
        let dirs = self.index.library_dirs.iter().cloned().collect();
        if let Some(ld) = self.ldconfig.as_mut() {
            ld.library_dirs = dirs;
        }
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

/// The container directory of a library, which ldconfig must scan.
fn library_dir(file: &File) -> Option<String> {
    (file.role == FileRole::Library)
        .then(|| Path::new(&file.container_path).parent())
        .flatten()
        .map(|p| p.display().to_string())
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
    fn a_file_and_a_directory_bound_at_one_path_conflict_in_either_order() {
        let file = library("a", "/opt/x");
        let dir = File {
            plugin: "b".into(),
            directory: true,
            ..library("b", "/opt/x")
        };
        for (first, second) in [(&file, &dir), (&dir, &file)] {
            let mut plan = Plan::default();
            plan.add_file(first.clone()).unwrap();
            let err = plan.add_file(second.clone()).unwrap_err();
            assert_eq!(err.path, "/opt/x");
            assert_eq!(plan.files, std::slice::from_ref(first));
        }
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
    fn preferred_image_dirs_come_first_once_and_survive_a_merge_and_json() {
        let mut a = Plan::default();
        a.add_file(library("a", "/usr/lib64/libcuda.so.1")).unwrap();
        a.prefer_library_dir("a", "/usr/local/cuda/compat");
        a.prefer_library_dir("a", "/usr/local/cuda/compat");
        let mut b = Plan::default();
        b.prefer_library_dir("b", "/usr/lib64");
        a.merge(b).unwrap();
        let ld = a.ldconfig.as_ref().unwrap();
        assert_eq!(ld.plugins, ["a", "b"]);
        assert_eq!(ld.preferred_dirs, ["/usr/local/cuda/compat", "/usr/lib64"]);
        // A library directory that is also preferred is scanned once, first.
        assert_eq!(ld.dirs(), ["/usr/local/cuda/compat", "/usr/lib64"]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), a);
        // Without preferred directories the JSON is what it always was.
        let mut plain = Plan::default();
        plain.request_ldconfig("a");
        assert!(!serde_json::to_string(&plain).unwrap().contains("preferred"));
    }

    #[test]
    fn a_json_plan_with_preferred_dirs_and_no_plugin_merges_without_them() {
        let other: Plan = serde_json::from_str(
            r#"{"ldconfig": {"plugins": [], "library-dirs": [], "preferred-dirs": ["/x"]}}"#,
        )
        .unwrap();
        let mut plan = Plan::default();
        plan.merge(other).unwrap();
        assert!(plan.ldconfig.is_none_or(|ld| ld.preferred_dirs.is_empty()));
    }

    #[test]
    fn plan_json_round_trips_with_octal_modes() {
        let mut plan = Plan::default();
        plan.add_device(device("a", "/dev/nvidia0", 0)).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains(r#""file-mode":"0666""#), "{json}");
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }

    fn directory(plugin: &str, path: &str) -> Directory {
        Directory {
            plugin: plugin.into(),
            container_path: path.into(),
            mode: 0o755,
        }
    }

    #[test]
    fn a_hundred_thousand_entries_merge_with_every_conflict_check() {
        const N: usize = 100_000;
        let mut a = Plan::default();
        a.request_ldconfig("a");
        for i in 0..N {
            a.add_file(library("a", &format!("/lib/d{i}/lib.so")))
                .unwrap();
        }
        let mut b = Plan::default();
        for i in 0..N {
            b.add_directory(directory("b", &format!("/opt/{i}")))
                .unwrap();
            // The same libraries again, from another plugin: kept once.
            b.add_file(library("b", &format!("/lib/d{i}/lib.so")))
                .unwrap();
        }
        a.merge(b).unwrap();
        assert_eq!((a.files.len(), a.directories.len()), (N, N));
        assert!(a.files.iter().all(|f| f.plugin == "a"));
        let ld = a.ldconfig.as_ref().unwrap();
        assert_eq!(ld.library_dirs.len(), N);
        assert!(ld.library_dirs.windows(2).all(|w| w[0] < w[1]), "sorted");

        // One conflict at the very end of the plan is still found, and the
        // failed merge adds nothing.
        let mut c = Plan::default();
        c.add_directory(directory("c", "/srv")).unwrap();
        c.add_symlink(Symlink {
            plugin: "c".into(),
            container_path: format!("/opt/{}", N - 1),
            target: "/srv".into(),
        })
        .unwrap();
        let err = a.merge(c).unwrap_err();
        assert_eq!(err.path, format!("/opt/{}", N - 1));
        assert!(
            err.first.contains("`b`") && err.second.contains("`c`"),
            "{err}"
        );
        assert_eq!(a.directories.len(), N);
        assert!(!a.directories.iter().any(|d| d.container_path == "/srv"));
    }

    #[test]
    fn a_plan_read_from_json_still_finds_conflicts_and_duplicates() {
        let mut plan = Plan::default();
        plan.add_device(device("a", "/dev/nvidia0", 0)).unwrap();
        plan.add_env(EnvVar {
            plugin: "a".into(),
            name: "X".into(),
            value: "1".into(),
        })
        .unwrap();
        let mut read: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(read, plan);
        read.add_device(device("b", "/dev/nvidia0", 0)).unwrap();
        assert_eq!(read.devices.len(), 1, "an identical device is kept once");
        let err = read.add_device(device("b", "/dev/nvidia0", 1)).unwrap_err();
        assert_eq!(err.path, "/dev/nvidia0");
        let err = read
            .add_env(EnvVar {
                plugin: "b".into(),
                name: "X".into(),
                value: "2".into(),
            })
            .unwrap_err();
        assert!(err.to_string().contains("X=2"), "{err}");
        // A variable and a path never conflict, whatever their names.
        read.add_directory(directory("b", "/X")).unwrap();
        read.add_env(EnvVar {
            plugin: "b".into(),
            name: "/X".into(),
            value: "".into(),
        })
        .unwrap();
    }

    #[test]
    fn library_dirs_follow_files_added_before_and_after_ldconfig() {
        let mut plan = Plan::default();
        plan.add_file(library("a", "/usr/lib/a/liba.so")).unwrap();
        plan.request_ldconfig("a");
        plan.add_file(library("a", "/usr/lib/b/libb.so")).unwrap();
        plan.add_file(library("a", "/usr/lib/b/libc.so")).unwrap();
        plan.refresh_library_dirs();
        assert_eq!(
            plan.ldconfig.unwrap().library_dirs,
            vec!["/usr/lib/a", "/usr/lib/b"]
        );
    }
}
