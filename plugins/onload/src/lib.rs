//! hookhost's policy for AMD Solarflare Onload: a container selected by the
//! manifest's activation (`OCI_SOLARFLARE` in its environment, as in
//! oci-injector-hook, or the annotation `org.openonload.enabled=true`) gets
//! the driver's nodes, the user-space libraries, the tools and the profiles,
//! and optionally LD_PRELOAD and TCPDirect (see the settings).

mod files;
mod preload;

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{self, Device};
use hookhost_plugin::{container, log, Error, PluginInfo, Policy};
use serde::Deserialize;

use preload::Decision;

/// The Onload driver's node. The driver registers it with a dynamic major,
/// so its number is only known from the host's node (the host stats it).
const DRIVER_NODE: &str = "/dev/onload";
/// The onload driver's epoll acceleration node.
const EPOLL_NODE: &str = "/dev/onload_epoll";
/// The sfc_char driver's node: ef_vi's, on which TCPDirect is built.
const CHAR_NODE: &str = "/dev/sfc_char";

/// Where the libraries go in the `image` layout: Onload installed with the
/// prefix `/opt/onload` (as AMD's Onload container images are), which is
/// where the images made for AMD's Kubernetes device plugin expect them.
const IMAGE_LIBRARY_DIR: &str = "/opt/onload/usr/lib64";

/// Where the libraries go in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Layout {
    /// All in `/opt/onload/usr/lib64`.
    Image,
    /// Each at its host path.
    Host,
}

/// The manifest's `settings`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    library_layout: Layout,
    /// Where the libraries are on the host, searched in order.
    library_dirs: Vec<String>,
    /// Where the executables are on the host, searched in order.
    binary_dirs: Vec<String>,
    /// Set LD_PRELOAD (runtime-shim and CDI back ends only; see `preload`).
    preload: bool,
    /// Add TCPDirect: its libraries and tool, and `/dev/sfc_char` becomes a
    /// requirement.
    tcpdirect: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let dirs = |dirs: &[&str]| dirs.iter().map(|d| d.to_string()).collect();
        Settings {
            library_layout: Layout::Image,
            // Onload's installer uses /usr/lib64, or the multiarch directory
            // where the distribution has one.
            library_dirs: dirs(&["/usr/lib64", "/usr/lib/x86_64-linux-gnu"]),
            // The installer puts onload_tool in /sbin; packages, /usr/sbin.
            binary_dirs: dirs(&["/usr/bin", "/usr/sbin", "/sbin"]),
            preload: false,
            tcpdirect: false,
        }
    }
}

impl Settings {
    fn parse(json: &str) -> Result<Self, String> {
        let settings: Settings = hookhost_plugin::parse_settings(json)?;
        if settings.library_dirs.is_empty() {
            return Err("invalid settings: library-dirs: name at least one directory".into());
        }
        for (field, dirs) in [
            ("library-dirs", &settings.library_dirs),
            ("binary-dirs", &settings.binary_dirs),
        ] {
            hookhost_plugin::check_dirs(field, dirs)?;
        }
        Ok(settings)
    }

    /// The executables this policy looks for.
    fn binaries(&self) -> Vec<&'static str> {
        let mut names = files::BINARIES.to_vec();
        if self.tcpdirect {
            names.extend(files::TCPDIRECT_BINARIES);
        }
        names
    }
}

struct Onload;

impl Policy for Onload {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "onload".into(),
            vendor: "hookhost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "AMD Solarflare Onload and TCPDirect, selected by OCI_SOLARFLARE \
                      or the annotation org.openonload.enabled=true"
                .into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        Settings::parse(&settings).map(drop)
    }

    /// Onload is not divided into devices: `all` when the driver is loaded.
    fn devices() -> Result<Vec<String>, String> {
        if char_device(DRIVER_NODE)? {
            Ok(vec!["all".into()])
        } else {
            log::info!("the Onload driver is not loaded (no {DRIVER_NODE}): no devices");
            Ok(Vec::new())
        }
    }

    fn apply() -> Result<(), String> {
        // The manifest's activation selected this container, so it asked for
        // Onload: a host that cannot give it (no driver, no libonload.so) is
        // an error, not an empty plan.
        give()
    }

    /// One device, `all`: Onload is the host's driver as a whole. With the
    /// setting `preload`, the spec sets LD_PRELOAD (there is no container's
    /// own value to keep).
    fn plan_devices(names: Vec<String>) -> Result<(), String> {
        hookhost_plugin::check_device_names(&names, &Self::devices()?)?;
        give()
    }
}

/// The driver's nodes, libraries, binaries and profiles, and LD_PRELOAD.
fn give() -> Result<(), String> {
    let settings = Settings::parse(&host::settings())?;
    nodes(&settings)?;
    let onload = libraries(&settings)?;
    let mut launcher = None;
    for name in settings.binaries() {
        let path = files::binary(&settings.binary_dirs, name)?;
        if name == "onload" {
            launcher = path;
        }
    }
    let profiles = files::profiles()?;
    log::info!(
        "Onload from {} in {}, {profiles} profiles{}",
        onload.host_dir,
        onload.container_dir,
        if settings.tcpdirect {
            ", with TCPDirect"
        } else {
            ""
        }
    );
    if settings.preload {
        let library = format!("{}/{}", onload.container_dir, preload::LIBRARY);
        preload(&library, launcher.as_deref())?;
    }
    Ok(())
}

/// The driver's nodes. `/dev/onload` is the driver itself. `/dev/sfc_char`
/// is ef_vi's, which TCPDirect (and other ef_vi applications) work through:
/// the container gets it whenever the host has it, as AMD's device plugin
/// gives it, and `tcpdirect` makes it a requirement.
fn nodes(settings: &Settings) -> Result<(), String> {
    if !char_device(DRIVER_NODE)? {
        return Err(format!(
            "Onload driver not loaded on this host (no {DRIVER_NODE})"
        ));
    }
    Device::new(DRIVER_NODE).request()?;
    for node in [EPOLL_NODE, CHAR_NODE] {
        if char_device(node)? {
            Device::new(node).request()?;
        } else if node == CHAR_NODE && settings.tcpdirect {
            return Err(format!(
                "setting `tcpdirect`: TCPDirect needs {CHAR_NODE}, which this host \
                 does not have (is the sfc_char module loaded?)"
            ));
        } else {
            log::debug!("{node} is not a device node on this host: left out");
        }
    }
    Ok(())
}

/// The libraries, placed as the layout says, and ldconfig (the host lists
/// their container directory in its ld.so.conf.d drop-in, so the `image`
/// layout's directory is known to the linker). Returns where `libonload`
/// went.
fn libraries(settings: &Settings) -> Result<files::Placed, String> {
    let into = match settings.library_layout {
        Layout::Image => Some(IMAGE_LIBRARY_DIR),
        Layout::Host => None,
    };
    let dirs = &settings.library_dirs;
    let missing = |file: &str| format!("{file} is not in {}", dirs.join(", "));
    let [onload, extensions] = files::LIBRARIES;
    // The preload library is Onload: without it there is nothing to give.
    let placed = files::library(dirs, onload, into)?
        .filter(|p| p.names.iter().any(|n| n == preload::LIBRARY))
        .ok_or_else(|| format!("Onload's user-space library {}", missing(preload::LIBRARY)))?;
    // Only applications written to Onload's extensions API need this one.
    files::library(dirs, extensions, into)?;
    if settings.tcpdirect {
        let [zf, control_plane] = files::TCPDIRECT_LIBRARIES;
        if files::library(dirs, zf, into)?.is_none() {
            return Err(format!(
                "setting `tcpdirect`: TCPDirect's library {}",
                missing(&format!("{zf}.so"))
            ));
        }
        files::library(dirs, control_plane, into)?;
    }
    inject::run_ldconfig()?;
    Ok(placed)
}

/// Sets LD_PRELOAD where the back end can; the `preload` module says why a
/// back end that cannot is an error.
fn preload(library: &str, launcher: Option<&str>) -> Result<(), String> {
    let current = container::getenv(preload::VARIABLE);
    let args = container::args();
    match preload::decide(
        library,
        current.as_deref(),
        args.first().map(String::as_str),
    ) {
        Decision::AlreadyPreloaded => {
            log::info!(
                "the container's {} loads {} already",
                preload::VARIABLE,
                preload::LIBRARY
            );
        }
        Decision::Launcher => {
            log::info!(
                "the container runs under Onload's launcher, which sets {}",
                preload::VARIABLE
            );
        }
        Decision::Set(value) => match inject::set_env(preload::VARIABLE, &value) {
            Ok(()) => log::debug!("{}={value}", preload::VARIABLE),
            Err(Error::Unsupported(why)) => return Err(preload::unsupported(&why, launcher)),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

/// Whether the host has a character device at `path` that the plugin may
/// see (a path outside the allow-list counts as missing).
fn char_device(path: &str) -> Result<bool, String> {
    Ok(!host::glob(path)?.is_empty() && host::stat(path)?.kind == FileKind::CharDevice)
}

hookhost_plugin::export!(Onload);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let settings = Settings::parse("{}").unwrap();
        assert_eq!(settings.library_layout, Layout::Image);
        assert_eq!(
            settings.library_dirs,
            ["/usr/lib64", "/usr/lib/x86_64-linux-gnu"]
        );
        assert!(!settings.preload && !settings.tcpdirect);
        assert_eq!(
            settings.binaries(),
            ["onload", "onload_tool", "onload_stackdump"]
        );

        let settings = Settings::parse(
            r#"{"library-layout": "host", "preload": true, "tcpdirect": true,
                "library-dirs": ["/opt/onload/usr/lib64"]}"#,
        )
        .unwrap();
        assert_eq!(settings.library_layout, Layout::Host);
        assert!(settings.preload);
        assert_eq!(settings.library_dirs, ["/opt/onload/usr/lib64"]);
        assert_eq!(settings.binary_dirs, Settings::default().binary_dirs);
        assert_eq!(settings.binaries().last(), Some(&"zf_stackdump"));
    }

    #[test]
    fn bad_settings_are_errors() {
        let error = |json: &str| Settings::parse(json).unwrap_err();
        let unknown = error(r#"{"ld-preload": true}"#);
        assert!(
            unknown.starts_with("invalid settings: unknown field `ld-preload`"),
            "{unknown}"
        );
        let layout = error(r#"{"library-layout": "opt"}"#);
        assert!(
            layout.contains("unknown variant `opt`, expected `image` or `host`"),
            "{layout}"
        );
        let wrong_type = error(r#"{"preload": "yes"}"#);
        assert!(
            wrong_type.starts_with("invalid settings: invalid type: string"),
            "{wrong_type}"
        );
        assert_eq!(
            error(r#"{"binary-dirs": ["/usr/bin/"]}"#),
            "invalid settings: binary-dirs: `/usr/bin/` is not an absolute path without a trailing /"
        );
        assert_eq!(
            error(r#"{"library-dirs": []}"#),
            "invalid settings: library-dirs: name at least one directory"
        );
    }

    /// The manifest's allow-list is exactly what the policy looks at and asks
    /// for with the manifest's settings and TCPDirect, and those settings
    /// are the defaults.
    #[test]
    fn manifest_allows_exactly_what_the_policy_uses() {
        let manifest: serde_json::Value =
            serde_json::from_str(include_str!("../onload.json")).unwrap();
        let mut settings = Settings::parse(&manifest["settings"].to_string()).unwrap();
        let defaults = Settings::default();
        assert_eq!(settings.library_layout, defaults.library_layout);
        assert_eq!(settings.library_dirs, defaults.library_dirs);
        assert_eq!(settings.binary_dirs, defaults.binary_dirs);
        assert_eq!(
            (settings.preload, settings.tcpdirect),
            (defaults.preload, defaults.tcpdirect)
        );
        // TCPDirect is a setting an administrator may turn on: allowed too.
        settings.tcpdirect = true;

        let mut expected: Vec<String> = [DRIVER_NODE, EPOLL_NODE, CHAR_NODE]
            .into_iter()
            .chain(files::PROFILES)
            .map(String::from)
            .collect();
        for dir in &settings.library_dirs {
            for name in files::LIBRARIES.iter().chain(&files::TCPDIRECT_LIBRARIES) {
                expected.push(files::library_glob(dir, name));
            }
        }
        for dir in &settings.binary_dirs {
            for name in settings.binaries() {
                expected.push(format!("{dir}/{name}"));
            }
        }

        hookhost_plugin::testing::assert_allow_list(&manifest, &expected);
    }
}
