//! hookhost's policy for NVIDIA GPUs: the container's
//! `NVIDIA_VISIBLE_DEVICES` and `NVIDIA_DRIVER_CAPABILITIES` pick the GPUs
//! and the parts of the driver it gets, with the meanings NVIDIA documents
//! for its container toolkit; `NVIDIA_REQUIRE_*` what the host must offer;
//! `NVIDIA_MIG_*` the MIG capabilities; `NVIDIA_IMEX_CHANNELS` the IMEX
//! channels.

mod compat;
mod driver;
mod files;
mod graphics;
mod imex;
mod ipc;
mod kubernetes;
mod mig;
mod require;
mod root;
mod select;

use hookhost_plugin::allocation::{self, Candidates, SpecDevices};
use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{self, Device, File, FileRole};
use hookhost_plugin::{container, log, PluginInfo, Policy};
use serde::Deserialize;

use driver::{Driver, Gpu};
use require::Unverifiable;
use root::Root;
use select::{Capability, Visible};

const VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";
const DRIVER_CAPABILITIES: &str = "NVIDIA_DRIVER_CAPABILITIES";
/// A legacy CUDA image (see `select::is_legacy_image`) sets the first and
/// not the second.
const CUDA_VERSION: &str = "CUDA_VERSION";
const REQUIRE_CUDA: &str = "NVIDIA_REQUIRE_CUDA";

/// The manifest's `settings`: which GPUs a container may choose from, and
/// where the driver's files live on this host.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    /// `host`: every GPU of the host; `spec`: only those the spec's
    /// `linux.devices` allocates (see `hookhost_plugin::allocation`).
    candidates: Candidates,
    /// The 64-bit libraries, searched in order.
    library_dirs: Vec<String>,
    /// The 32-bit libraries of `compat32`, searched in order.
    compat32_dirs: Vec<String>,
    /// The executables, searched in order.
    binary_dirs: Vec<String>,
    /// What a requirement that hookhost cannot check (a GPU's brand or
    /// architecture, a CUDA beyond NVIDIA's table) does to the container.
    unverifiable_requirements: Unverifiable,
    /// The MPS control daemon's pipe directory on this host (its
    /// `CUDA_MPS_PIPE_DIRECTORY`), bound at the same path.
    mps_pipe_directory: String,
    /// Whether `NVIDIA_VISIBLE_DEVICES` (and a legacy image's implicit
    /// `all`) selects GPUs for an unprivileged container; when not, only
    /// the CDI annotations and the device mounts do. A privileged container
    /// may always use it.
    accept_visible_devices_envvar_when_unprivileged: bool,
    /// Whether `/dev/null` mounted under `kubernetes::VOLUME_MOUNTS_ROOT`
    /// names the container's GPUs, before the variable (off by default, as
    /// in NVIDIA's toolkit: any pod author can write such a mount).
    accept_visible_devices_as_volume_mounts: bool,
    /// The annotations, by key prefix, whose `nvidia.com/gpu=…` names
    /// select GPUs before the variable.
    cdi_annotation_prefixes: Vec<String>,
    /// The MIG inventory (see `mig::MigDevice`), read when a container
    /// names a MIG device.
    mig_inventory: String,
    /// Whether an image's newer CUDA compat libraries win (see `compat`).
    cuda_compat: bool,
    /// Where the driver's files are (see `root`): the directories above are
    /// looked for under it.
    driver_root: String,
}

impl Default for Settings {
    fn default() -> Self {
        let dirs = |dirs: &[&str]| dirs.iter().map(|d| d.to_string()).collect();
        Settings {
            candidates: Candidates::Host,
            library_dirs: dirs(&["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]),
            compat32_dirs: dirs(&["/usr/lib/i386-linux-gnu", "/usr/lib32"]),
            binary_dirs: dirs(&["/usr/bin"]),
            unverifiable_requirements: Unverifiable::Refuse,
            mps_pipe_directory: ipc::MPS_PIPE_DIRECTORY.to_string(),
            accept_visible_devices_envvar_when_unprivileged: true,
            accept_visible_devices_as_volume_mounts: false,
            cdi_annotation_prefixes: vec![kubernetes::ANNOTATION_PREFIX.to_string()],
            mig_inventory: mig::DEFAULT_INVENTORY.to_string(),
            cuda_compat: true,
            driver_root: root::HOST.to_string(),
        }
    }
}

impl Settings {
    fn parse(json: &str) -> Result<Self, String> {
        let settings: Settings = hookhost_plugin::parse_settings(json)?;
        let all = [
            ("library-dirs", &settings.library_dirs),
            ("compat32-dirs", &settings.compat32_dirs),
            ("binary-dirs", &settings.binary_dirs),
        ];
        for (field, dirs) in all {
            hookhost_plugin::check_dirs(field, dirs)?;
        }
        hookhost_plugin::check_dirs(
            "mps-pipe-directory",
            std::slice::from_ref(&settings.mps_pipe_directory),
        )?;
        if settings
            .cdi_annotation_prefixes
            .iter()
            .any(String::is_empty)
        {
            return Err(
                "invalid settings: cdi-annotation-prefixes: an empty prefix would \
                        match every annotation"
                    .into(),
            );
        }
        let inventory = std::slice::from_ref(&settings.mig_inventory);
        hookhost_plugin::check_dirs("mig-inventory", inventory)?;
        Root::parse(&settings.driver_root)?;
        Ok(settings)
    }
}

struct Nvidia;

impl Policy for Nvidia {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "nvidia".into(),
            vendor: "hookhost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "NVIDIA GPUs and driver, selected by NVIDIA_VISIBLE_DEVICES \
                      and NVIDIA_DRIVER_CAPABILITIES"
                .into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        Settings::parse(&settings).map(drop)
    }

    fn devices() -> Result<Vec<String>, String> {
        let Some(driver) = Driver::probe()? else {
            log::info!("the NVIDIA driver is not loaded: no devices");
            return Ok(Vec::new());
        };
        let indices = (0..driver.gpus.len()).map(|i| i.to_string());
        let uuids = driver.gpus.iter().map(|gpu| gpu.uuid.clone());
        Ok(indices.chain(uuids).chain(["all".to_string()]).collect())
    }

    fn apply() -> Result<(), String> {
        let settings = Settings::parse(&host::settings())?;
        let legacy = select::is_legacy_image(
            container::getenv(CUDA_VERSION).as_deref(),
            container::getenv(REQUIRE_CUDA).as_deref(),
        );
        let visible_env = container::getenv(VISIBLE_DEVICES);
        let privileged = container::privileged();
        let annotated =
            kubernetes::devices(&container::annotations(), &settings.cdi_annotation_prefixes)?;
        // NVIDIA's order: the annotations, then the mounts (when accepted),
        // then the variable; the mounts are read only when they may choose.
        let mut mounted = Vec::new();
        if annotated.is_empty() {
            let requests = kubernetes::mount_requests(&container::mounts());
            if settings.accept_visible_devices_as_volume_mounts {
                mounted = kubernetes::gpus_of(requests)?;
            } else if let Some(first) = requests.first() {
                log::info!(
                    "mount {} (and any other under {}) is not read: the setting \
                     `accept-visible-devices-as-volume-mounts` is false",
                    first.destination,
                    kubernetes::VOLUME_MOUNTS_ROOT
                );
            }
        }
        // What chose the GPUs, for errors; whether the variable did.
        let source;
        let by_env = annotated.is_empty() && mounted.is_empty();
        let visible = if !annotated.is_empty() {
            source = format!("the {} annotations", kubernetes::KIND);
            from_annotations(&annotated)?
        } else if !mounted.is_empty() {
            source = format!("the mounts under {}", kubernetes::VOLUME_MOUNTS_ROOT);
            from_mounts(&mounted)?
        } else if privileged || settings.accept_visible_devices_envvar_when_unprivileged {
            source = VISIBLE_DEVICES.to_string();
            Visible::from_env(visible_env.as_deref(), legacy)?
        } else {
            if visible_env.is_some() || legacy {
                log::info!(
                    "{VISIBLE_DEVICES} is not read: the container is unprivileged, the setting \
                     `accept-visible-devices-envvar-when-unprivileged` is false, and no \
                     annotation or mount names an {} device",
                    kubernetes::KIND
                );
            }
            return Ok(());
        };
        if visible == Visible::Nothing {
            log::debug!("{VISIBLE_DEVICES} is unset, empty or void: nothing to inject");
            return Ok(());
        }
        // Refused before anything is looked at, as NVIDIA's toolkit does.
        let mig_env = |name| container::getenv(name);
        let mig_config = mig::gpu_wide_wanted(
            mig::CONFIG_DEVICES,
            mig_env(mig::CONFIG_DEVICES).as_deref(),
            privileged,
        )?;
        let mig_monitor = mig::gpu_wide_wanted(
            mig::MONITOR_DEVICES,
            mig_env(mig::MONITOR_DEVICES).as_deref(),
            privileged,
        )?;
        if (mig_config || mig_monitor) && !visible.mig_ids().is_empty() {
            return Err(format!(
                "{} or {} cannot go with MIG devices in {VISIBLE_DEVICES}: they grant every \
                 MIG capability of the visible GPUs, as in NVIDIA's toolkit",
                mig::CONFIG_DEVICES,
                mig::MONITOR_DEVICES
            ));
        }
        let (imex_source, channels) = imex_channels(&settings, privileged)?;
        let caps_env = container::getenv(DRIVER_CAPABILITIES);
        if legacy && by_env {
            let unset: Vec<&str> = [
                (VISIBLE_DEVICES, &visible_env),
                (DRIVER_CAPABILITIES, &caps_env),
            ]
            .into_iter()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name)
            .collect();
            if !unset.is_empty() {
                log::info!(
                    "a legacy CUDA image ({CUDA_VERSION} without {REQUIRE_CUDA}): {} unset \
                     means all",
                    unset.join(" and ")
                );
            }
        }
        let caps = Capability::from_env(caps_env.as_deref(), legacy)?;
        let spec = match settings.candidates {
            Candidates::Host => None,
            Candidates::Spec => Some(SpecDevices::read()),
        };
        if spec.as_ref().is_some_and(SpecDevices::is_empty) {
            log::info!("{}", nothing_allocated());
            return Ok(());
        }
        let driver = probe()?;
        let allocated = match &spec {
            Some(spec) => {
                let allocated = allocated_gpus(spec, &driver.gpus)?;
                if allocated.is_empty() {
                    log::info!("{}", nothing_allocated());
                    return Ok(());
                }
                Some(allocated)
            }
            None => None,
        };
        for mount in &mounted {
            check_mounted(mount, &driver.gpus, &settings.mig_inventory)?;
        }
        let mut gpus = visible.select(&driver.gpus)?;
        // A MIG device brings its parent GPU's node, as in NVIDIA's toolkit.
        let migs = mig::resolve(&visible.mig_ids(), &driver.gpus, &settings.mig_inventory)?;
        for device in &migs {
            if !gpus.iter().any(|gpu| std::ptr::eq(*gpu, device.parent)) {
                gpus.push(device.parent);
            }
        }
        if driver.gpus.is_empty() && matches!(visible, Visible::List(_)) {
            log::info!("this host has no NVIDIA GPU: {VISIBLE_DEVICES} gives the driver only");
        }
        if let Some(allocated) = &allocated {
            let describe = |gpu: &&Gpu| describe(&driver.gpus, gpu);
            gpus = allocation::narrow(
                &source,
                visible == Visible::All,
                gpus,
                |gpu| allocated.iter().any(|a| std::ptr::eq(*a, *gpu)),
                describe,
                &allocated.iter().map(describe).collect::<Vec<_>>(),
            )?;
        }
        check_requirements(&settings, legacy, &driver.version, !gpus.is_empty())?;

        let mut mig_caps = mig::Caps::default();
        for device in &migs {
            mig_caps.add_device(device.parent, device.gi, device.ci)?;
        }
        if visible == Visible::All {
            for gpu in &gpus {
                mig_caps.add_all_devices(gpu)?;
            }
        }
        for (wanted, global) in [(mig_config, mig::CONFIG), (mig_monitor, mig::MONITOR)] {
            if wanted {
                mig_caps.add_gpu_wide(global, &gpus)?;
            }
        }
        give(&settings, &caps, &driver.version, gpus)?;
        mig_caps.request()?;
        channels.request(&imex_source)?;
        // Only a container has an image (not `plan_devices`).
        if settings.cuda_compat && Capability::libraries_of(&caps).contains(&Capability::Compute) {
            compat::prefer_if_newer(&driver.version)?;
        }
        Ok(())
    }

    /// The names are those of NVIDIA_VISIBLE_DEVICES (an index, a UUID,
    /// `all`), with the default driver capabilities (utility, compute).
    fn plan_devices(names: Vec<String>) -> Result<(), String> {
        hookhost_plugin::check_device_names(&names, &Self::devices()?)?;
        let settings = Settings::parse(&host::settings())?;
        let caps = Capability::parse_list(None)?;
        let driver = probe()?;
        let gpus = Visible::parse(Some(&names.join(",")))?.select(&driver.gpus)?;
        give(&settings, &caps, &driver.version, gpus)
    }
}

/// The GPUs the annotations name, each one of `devices()` (an index, a
/// UUID, `all`), as `NVIDIA_VISIBLE_DEVICES` would name them.
fn from_annotations(annotated: &[kubernetes::Annotated]) -> Result<Visible, String> {
    let offered = Nvidia::devices()?;
    if let Some(unknown) = annotated.iter().find(|a| !offered.contains(&a.name)) {
        return Err(format!(
            "annotation {}: no {} device `{}`: this host offers {}",
            unknown.key,
            kubernetes::KIND,
            unknown.name,
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        ));
    }
    let names: Vec<&str> = annotated.iter().map(|a| a.name.as_str()).collect();
    log::info!(
        "the annotations name {} {}: {VISIBLE_DEVICES} is not read",
        kubernetes::KIND,
        names.join(", ")
    );
    Visible::parse(Some(&names.join(",")))
}

/// The GPUs the mounts name, as `NVIDIA_VISIBLE_DEVICES` would name them:
/// each id in its grammar, an error naming the mount otherwise.
fn from_mounts(mounted: &[kubernetes::Mounted]) -> Result<Visible, String> {
    for mount in mounted {
        Visible::parse(Some(&mount.id)).map_err(|e| mount_error(mount, &e))?;
    }
    let ids: Vec<&str> = mounted.iter().map(|m| m.id.as_str()).collect();
    log::info!(
        "the mounts under {} name {}: {VISIBLE_DEVICES} is not read",
        kubernetes::VOLUME_MOUNTS_ROOT,
        ids.join(", ")
    );
    Visible::parse(Some(&ids.join(",")))
}

/// Whether the device `mount` names is one of `gpus` (or a MIG device of
/// the inventory at `inventory`): the error names the mount.
fn check_mounted(mount: &kubernetes::Mounted, gpus: &[Gpu], inventory: &str) -> Result<(), String> {
    let visible = Visible::parse(Some(&mount.id)).map_err(|e| mount_error(mount, &e))?;
    visible.select(gpus).map_err(|e| mount_error(mount, &e))?;
    mig::resolve(&visible.mig_ids(), gpus, inventory).map_err(|e| mount_error(mount, &e))?;
    Ok(())
}

/// An error of the variable's grammar, said of the mount that named the
/// device instead (the parser's messages name the variable).
fn mount_error(mount: &kubernetes::Mounted, error: &str) -> String {
    let why = error
        .strip_prefix(VISIBLE_DEVICES)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(error);
    format!("mount {}: {why}", mount.destination)
}

/// The IMEX channels a container that gets GPUs asks for, with what named
/// them (for errors), as NVIDIA's toolkit reads them: the `imex/` mounts
/// when mounts may name devices and there are some, else the variable,
/// which an unprivileged container may use only as it may use
/// `NVIDIA_VISIBLE_DEVICES`.
fn imex_channels(
    settings: &Settings,
    privileged: bool,
) -> Result<(String, imex::Channels), String> {
    if settings.accept_visible_devices_as_volume_mounts {
        let mounted = kubernetes::imex_of(kubernetes::mount_requests(&container::mounts()));
        if !mounted.is_empty() {
            let source = format!("the mounts under {}/imex", kubernetes::VOLUME_MOUNTS_ROOT);
            return Ok((source, imex::Channels::from_mounts(&mounted)?));
        }
    }
    let value = container::getenv(imex::CHANNELS);
    let name = imex::CHANNELS.to_string();
    if !privileged && !settings.accept_visible_devices_envvar_when_unprivileged {
        if value.as_deref().is_some_and(|v| !v.trim().is_empty()) {
            log::info!(
                "{name} is not read: the container is unprivileged and the setting \
                 `accept-visible-devices-envvar-when-unprivileged` is false"
            );
        }
        return Ok((name, imex::Channels::Nothing));
    }
    let channels = imex::Channels::parse(value.as_deref())?;
    Ok((name, channels))
}

/// `NVIDIA_REQUIRE_*`, and a legacy image's `CUDA_VERSION`, against the
/// driver, unless `NVIDIA_DISABLE_REQUIRE` turns them off. `gpus`: whether
/// the container gets a GPU.
fn check_requirements(
    settings: &Settings,
    legacy: bool,
    driver_version: &str,
    gpus: bool,
) -> Result<(), String> {
    let disable = require::DISABLE;
    if let Some(value) = container::getenv(disable) {
        match require::parse_disable(&value) {
            Some(true) => {
                log::info!("{disable}={value}: the requirements are not checked");
                return Ok(());
            }
            Some(false) => {}
            // Empty reads as unset: no warning.
            None if value.is_empty() => {}
            None => log::warn!(
                "{disable}={value:?} is no boolean as NVIDIA's toolkit reads it (1, t, true, \
                 TRUE, True or their false counterparts): the requirements are checked"
            ),
        }
    }
    let legacy_cuda = if legacy {
        container::getenv(CUDA_VERSION)
    } else {
        None
    };
    let requirements = require::from_env(&container::environment(), legacy_cuda.as_deref())?;
    if requirements.is_empty() {
        return Ok(());
    }
    let host = require::Host::new(driver_version, gpus)
        .map_err(|e| format!("{}: {e}", driver::VERSION_FILE))?;
    for warning in require::check(&requirements, &host, settings.unverifiable_requirements)? {
        log::warn!("{warning}");
    }
    log::debug!(
        "{} requirement(s) checked against driver {driver_version}",
        requirements.len()
    );
    Ok(())
}

fn probe() -> Result<Driver, String> {
    Driver::probe()?.ok_or_else(|| {
        format!(
            "NVIDIA driver not loaded on this host (no {})",
            driver::VERSION_FILE
        )
    })
}

/// The GPUs' nodes, the control nodes, the driver's files and its
/// daemons' sockets.
fn give(
    settings: &Settings,
    caps: &[Capability],
    version: &str,
    gpus: Vec<&Gpu>,
) -> Result<(), String> {
    let libraries_of = Capability::libraries_of(caps);
    control_devices(&libraries_of)?;
    for gpu in gpus {
        log::debug!("GPU {} at {}, {}", gpu.uuid, gpu.bus_id, gpu_node(gpu));
        Device::new(gpu_node(gpu)).request()?;
        // `display` brings graphics' libraries, and so its DRM nodes.
        if libraries_of.contains(&Capability::Graphics) {
            graphics::dri_nodes(gpu)?;
        }
    }
    driver_files(settings, caps, version)?;
    ipc::request(&libraries_of, &settings.mps_pipe_directory)
}

fn gpu_node(gpu: &Gpu) -> String {
    format!("/dev/nvidia{}", gpu.minor)
}

/// `GPU 1 (GPU-e2a9…, /dev/nvidia1)`, for errors.
fn describe(gpus: &[Gpu], gpu: &Gpu) -> String {
    let index = gpus.iter().position(|g| std::ptr::eq(g, gpu));
    format!(
        "GPU {} ({}, {})",
        index.map_or("?".to_string(), |i| i.to_string()),
        gpu.uuid,
        gpu_node(gpu)
    )
}

/// The GPUs whose node the spec lists, by number, in bus order.
fn allocated_gpus<'a>(spec: &SpecDevices, gpus: &'a [Gpu]) -> Result<Vec<&'a Gpu>, String> {
    let mut allocated = Vec::new();
    for gpu in gpus {
        if spec.lists_node(&gpu_node(gpu))? {
            allocated.push(gpu);
        }
    }
    Ok(allocated)
}

fn nothing_allocated() -> String {
    format!(
        "the spec's linux.devices allocates no NVIDIA GPU and the setting `candidates` is \
         `spec`: nothing to inject, whatever {VISIBLE_DEVICES} says"
    )
}

/// The nodes beside the GPUs' own, each with the capability whose libraries
/// need it (see `Capability::libraries_of`: `video` brings compute's and so
/// the UVM nodes), as libnvidia-container grants them.
const CONTROL_DEVICES: [(&str, Option<Capability>); 4] = [
    ("/dev/nvidiactl", None),
    ("/dev/nvidia-uvm", Some(Capability::Compute)),
    ("/dev/nvidia-uvm-tools", Some(Capability::Compute)),
    ("/dev/nvidia-modeset", Some(Capability::Display)),
];

/// `libraries_of`: the capabilities whose libraries the container gets.
fn control_devices(libraries_of: &[Capability]) -> Result<(), String> {
    for (path, needs) in CONTROL_DEVICES {
        if needs.is_some_and(|cap| !libraries_of.contains(&cap)) {
            continue;
        }
        if files::exists(path)? && host::stat(path)?.kind == FileKind::CharDevice {
            Device::new(path).request()?;
        } else {
            log::debug!("{path} is not a device node on this host");
        }
    }
    Ok(())
}

/// Libraries, executables, firmware and configuration of the driver.
fn driver_files(settings: &Settings, caps: &[Capability], version: &str) -> Result<(), String> {
    let root = Root::parse(&settings.driver_root)?;
    root.check_driver(&settings.library_dirs, version)?;
    // The 64-bit build of each library, and the 32-bit one with compat32.
    let mut search_paths = vec![&settings.library_dirs];
    if caps.contains(&Capability::Compat32) {
        search_paths.push(&settings.compat32_dirs);
    }
    // `video` brings compute's libraries but not its executables, `display`
    // graphics' libraries and their loaders' configuration.
    let libraries_of = Capability::libraries_of(caps);
    let mut any_library = false;
    for &cap in &libraries_of {
        for name in files::libraries(cap) {
            for dirs in &search_paths {
                let dirs = files::library_dirs(dirs, name);
                any_library |= files::versioned(&root, &dirs, name, version, FileRole::Library)?;
            }
        }
        if !caps.contains(&cap) {
            continue;
        }
        for name in files::binaries(cap) {
            files::first_of(&root, &settings.binary_dirs, name, FileRole::Binary)?;
        }
    }
    if libraries_of.contains(&Capability::Graphics) {
        for dirs in &search_paths {
            any_library |= graphics::libraries(&root, dirs, version)?;
        }
        graphics::configs(&root, &graphics::GRAPHICS_CONFIGS)?;
    }
    if caps.contains(&Capability::Display) {
        graphics::xorg_modules(&root, &settings.library_dirs, version)?;
        graphics::configs(&root, &graphics::DISPLAY_CONFIGS)?;
    }
    for path in host::glob(&root.on_host(&files::firmware(version)))? {
        File::new(path.as_str(), FileRole::Misc)
            .at(root.in_container(&path))
            .request()?;
    }
    if any_library {
        inject::run_ldconfig()?;
    }
    Ok(())
}

hookhost_plugin::export!(Nvidia);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let settings = Settings::parse("{}").unwrap();
        assert_eq!(settings.binary_dirs, ["/usr/bin"]);
        assert_eq!(settings.candidates, Candidates::Host);
        let settings = Settings::parse(r#"{"candidates": "spec"}"#).unwrap();
        assert_eq!(settings.candidates, Candidates::Spec);
        let wrong = Settings::parse(r#"{"candidates": "env"}"#).unwrap_err();
        assert!(
            wrong.starts_with("invalid settings: unknown variant `env`, expected `host` or `spec`"),
            "{wrong}"
        );
        assert_eq!(settings.unverifiable_requirements, Unverifiable::Refuse);
        let settings = Settings::parse(r#"{"unverifiable-requirements": "ignore"}"#).unwrap();
        assert_eq!(settings.unverifiable_requirements, Unverifiable::Ignore);
        let wrong = Settings::parse(r#"{"unverifiable-requirements": "pass"}"#).unwrap_err();
        assert!(
            wrong.starts_with(
                "invalid settings: unknown variant `pass`, expected `refuse` or `ignore`"
            ),
            "{wrong}"
        );
        assert_eq!(settings.mig_inventory, "/run/hookhost/nvidia-mig.json");
        let settings = Settings::parse(r#"{"mig-inventory": "/etc/mig.json"}"#).unwrap();
        assert_eq!(settings.mig_inventory, "/etc/mig.json");
        assert_eq!(
            Settings::parse(r#"{"mig-inventory": "mig.json"}"#).unwrap_err(),
            "invalid settings: mig-inventory: `mig.json` is not an absolute path without a \
             trailing /"
        );
        let settings = Settings::parse(r#"{"binary-dirs": ["/opt/nvidia/bin"]}"#).unwrap();
        assert_eq!(settings.binary_dirs, ["/opt/nvidia/bin"]);
        assert_eq!(settings.library_dirs, Settings::default().library_dirs);

        let unknown = Settings::parse(r#"{"library-dir": ["/lib"]}"#).unwrap_err();
        assert!(
            unknown.starts_with("invalid settings: unknown field `library-dir`"),
            "{unknown}"
        );
        let wrong_type = Settings::parse(r#"{"binary-dirs": "/usr/bin"}"#).unwrap_err();
        assert!(
            wrong_type.starts_with("invalid settings: invalid type: string"),
            "{wrong_type}"
        );
        assert_eq!(
            Settings::parse(r#"{"compat32-dirs": ["lib32"]}"#).unwrap_err(),
            "invalid settings: compat32-dirs: `lib32` is not an absolute path without a trailing /"
        );
    }

    #[test]
    fn kubernetes_and_ipc_settings() {
        let settings = Settings::parse("{}").unwrap();
        assert!(settings.accept_visible_devices_envvar_when_unprivileged);
        assert!(!settings.accept_visible_devices_as_volume_mounts);
        assert_eq!(settings.cdi_annotation_prefixes, ["cdi.k8s.io/"]);
        assert_eq!(settings.mps_pipe_directory, "/tmp/nvidia-mps");
        let settings = Settings::parse(
            r#"{"accept-visible-devices-envvar-when-unprivileged": false, "cdi-annotation-prefixes": [],
                "mps-pipe-directory": "/run/nvidia/mps"}"#,
        )
        .unwrap();
        assert!(!settings.accept_visible_devices_envvar_when_unprivileged);
        assert!(settings.cdi_annotation_prefixes.is_empty());
        assert_eq!(settings.mps_pipe_directory, "/run/nvidia/mps");
        let settings =
            Settings::parse(r#"{"accept-visible-devices-as-volume-mounts": true}"#).unwrap();
        assert!(settings.accept_visible_devices_as_volume_mounts);
        assert_eq!(
            Settings::parse(r#"{"cdi-annotation-prefixes": [""]}"#).unwrap_err(),
            "invalid settings: cdi-annotation-prefixes: an empty prefix would match every \
             annotation"
        );
        assert_eq!(
            Settings::parse(r#"{"mps-pipe-directory": "nvidia-mps"}"#).unwrap_err(),
            "invalid settings: mps-pipe-directory: `nvidia-mps` is not an absolute path \
             without a trailing /"
        );
    }

    #[test]
    fn driver_root_setting() {
        assert_eq!(Settings::parse("{}").unwrap().driver_root, "/");
        let settings = Settings::parse(r#"{"driver-root": "/run/nvidia/driver"}"#).unwrap();
        assert_eq!(settings.driver_root, "/run/nvidia/driver");
        assert_eq!(
            Settings::parse(r#"{"driver-root": "run/nvidia/driver"}"#).unwrap_err(),
            "invalid settings: driver-root: `run/nvidia/driver` is not an absolute path \
             without a trailing /"
        );
    }

    /// The manifest's allow-list is exactly what the policy looks at and asks
    /// for, with the manifest's settings.
    #[test]
    fn manifest_allows_exactly_what_the_policy_uses() {
        let manifest: serde_json::Value =
            serde_json::from_str(include_str!("../nvidia.json")).unwrap();
        let settings = Settings::parse(&manifest["settings"].to_string()).unwrap();

        let mut expected = vec![
            driver::VERSION_FILE.to_string(),
            driver::GPU_INFORMATION.to_string(),
            mig::PROC_DEVICES.to_string(),
            mig::MIG_MINORS.to_string(),
            mig::CONFIG.to_string(),
            mig::MONITOR.to_string(),
            // The access files of GPU and compute instances (`gpu<minor>`),
            // and their nodes.
            format!("{}/gpu[0-9]*/mig/gi[0-9]*/access", mig::CAPS),
            format!("{}/gpu[0-9]*/mig/gi[0-9]*/ci[0-9]*/access", mig::CAPS),
            "/dev/nvidia-caps/nvidia-cap[0-9]*".to_string(),
            settings.mig_inventory.clone(),
            "/dev/nvidia[0-9]*".to_string(),
            format!("{}/channel[0-9]*", imex::DIR),
        ];
        expected.extend(CONTROL_DEVICES.map(|(path, _)| path.to_string()));
        expected.extend(ipc::SOCKETS.map(String::from));
        expected.extend(ipc::SOCKETS.map(ipc::resolved));
        expected.push(settings.mps_pipe_directory.clone());
        let (graphics_host, graphics_driver) = graphics_allow_list(&settings);
        expected.extend(graphics_host);

        // The driver's files, at their standard paths.
        let mut driver_files = vec![
            files::firmware("*"),
            // Where merged-/usr hosts keep it (/lib is a link to usr/lib):
            // the host checks the allow-list on what a path resolves to too.
            format!("/usr{}", files::firmware("*")),
        ];
        driver_files.extend(graphics_driver);
        let library_dirs: Vec<String> = settings
            .library_dirs
            .iter()
            .chain(&settings.compat32_dirs)
            .cloned()
            .collect();
        for cap in Capability::ALL {
            for name in files::libraries(cap) {
                let dirs = files::library_dirs(&library_dirs, name);
                driver_files.extend(dirs.iter().map(|dir| format!("{dir}/{name}.so*")));
            }
            for name in files::binaries(cap) {
                driver_files.extend(
                    settings
                        .binary_dirs
                        .iter()
                        .map(|dir| format!("{dir}/{name}")),
                );
            }
        }
        // Under the host's root and the GPU Operator's.
        assert_eq!(settings.driver_root, root::HOST);
        for driver_root in [root::HOST, root::GPU_OPERATOR] {
            let driver_root = Root::parse(driver_root).unwrap();
            expected.extend(driver_files.iter().map(|f| driver_root.on_host(f)));
        }

        hookhost_plugin::testing::assert_allow_list(&manifest, &expected);
    }

    /// What `graphics` and `display` look at and ask for: the host's own
    /// paths (sysfs, the DRM nodes), and the driver's files at their
    /// standard paths, which the allow-list names under each driver root.
    fn graphics_allow_list(settings: &Settings) -> (Vec<String>, Vec<String>) {
        use graphics::*;
        let mut on_host = Vec::new();
        for node in DRM_NODES {
            on_host.push(format!("{PCI_DEVICES}/*/drm/{node}"));
            on_host.push(format!("{PCI_DEVICE_TREE}/drm/{node}"));
            on_host.push(format!("{DRI}/{node}"));
        }
        for kind in BY_PATH_KINDS {
            on_host.push(format!("{BY_PATH}/pci-*-{kind}"));
        }
        let mut driver_files = Vec::new();
        let all_dirs = settings.library_dirs.iter().chain(&settings.compat32_dirs);
        for dir in all_dirs.clone() {
            for name in EGL_PLATFORM_LIBRARIES {
                driver_files.push(format!("{dir}/{name}.so*"));
            }
            driver_files.push(format!("{dir}/{GBM_BACKEND}"));
            driver_files.push(format!("{dir}/{ALLOCATOR}.so*"));
        }
        for config in GRAPHICS_CONFIGS.iter().chain(&DISPLAY_CONFIGS) {
            driver_files.extend(CONFIG_DIRS.map(|dir| format!("{dir}/{}", config.name)));
        }
        for dir in &settings.library_dirs {
            driver_files.push(format!("{dir}/{XORG_DRIVER}"));
            driver_files.push(format!("{dir}/{XORG_GLX_DIR}/{XORG_GLX}.so*"));
        }
        (on_host, driver_files)
    }
}
