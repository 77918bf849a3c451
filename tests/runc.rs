//! The executor in real runc containers: hookhost runs as the prestart hook
//! of a busybox container, with the NVIDIA policy and a fake GPU host, and
//! what the container sees is the assertion.
//!
//! Needs root, runc and busybox-static (tests/setup.sh installs them). When
//! `CI` is set a missing runtime fails the test; elsewhere it skips loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `runc` if it is installed; a failure in CI, a skip elsewhere.
pub(crate) fn runc() -> Option<PathBuf> {
    let found = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "runc is not installed; CI must run the end-to-end tests (apt-get install runc)"
        );
        eprintln!("SKIPPED: runc is not installed (apt-get install runc)");
    }
    found
}

/// A busybox bundle whose container runs `script` with `env`, hookhost as
/// its prestart hook on the fake host `host`.
pub(crate) struct Bundle {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) audit: PathBuf,
}

impl Bundle {
    /// With the installed vendor plugins.
    pub(crate) fn new(host: &Path, env: &[&str], script: &str) -> Bundle {
        Bundle::with_plugins(&plugins().join("plugins.d"), host, env, script)
    }

    pub(crate) fn with_plugins(
        plugins_dir: &Path,
        host: &Path,
        env: &[&str],
        script: &str,
    ) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for dir in ["bin", "dev", "proc"] {
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static is needed: apt-get install busybox-static");
        for tool in [
            "sh", "ls", "cat", "readlink", "echo", "test", "stat", "grep",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
        }
        let audit = dir.path().join("audit.log");
        let cache = dir.path().join("cache");
        let mut env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        env.push("PATH=/bin".into());
        let hookhost = env!("CARGO_BIN_EXE_hookhost");
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sh", "-c", script],
                "env": env,
                "cwd": "/",
                "noNewPrivileges": true,
            },
            "hostname": "hookhost-test",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            ],
            "hooks": {"prestart": [{
                "path": hookhost,
                "args": ["hookhost",
                         "--plugins-dir", plugins_dir,
                         "--host-root", host,
                         "--cache-dir", cache,
                         "prestart", "--audit-log", &audit],
                "env": [],
            }]},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            },
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        Bundle { dir, audit }
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Runs hookhost as a createContainer hook (`create-container`)
    /// instead of a prestart hook.
    pub(crate) fn as_create_container_hook(&self) {
        let path = self.dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut hook = config["hooks"]["prestart"][0].take();
        for arg in hook["args"].as_array_mut().unwrap() {
            if arg == "prestart" {
                *arg = "create-container".into();
            }
        }
        config["hooks"] = serde_json::json!({"createContainer": [hook]});
        std::fs::write(&path, config.to_string()).unwrap();
    }

    /// Points the hook at the plugin cache `cache` (shared with other
    /// bundles) instead of the bundle's own.
    pub(crate) fn use_cache(&self, cache: &Path) {
        let path = self.dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let args = config["hooks"]["prestart"][0]["args"]
            .as_array_mut()
            .unwrap();
        let at = args.iter().position(|a| a == "--cache-dir").unwrap() + 1;
        args[at] = cache.display().to_string().into();
        std::fs::write(&path, config.to_string()).unwrap();
    }

    /// Points the hook at `ldconfig` and gives the hook `env`, none of
    /// which may reach ldconfig.
    pub(crate) fn hook_ldconfig(&self, ldconfig: &Path, env: &[&str]) {
        let path = self.dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let hook = &mut config["hooks"]["prestart"][0];
        hook["args"]
            .as_array_mut()
            .unwrap()
            .extend(["--ldconfig".into(), ldconfig.display().to_string().into()]);
        hook["env"] = serde_json::json!(env);
        std::fs::write(&path, config.to_string()).unwrap();
    }

    /// `runc run`: the container's output and whether it started.
    pub(crate) fn run(&self, runc: &Path) -> (bool, String) {
        let id = format!(
            "hookhost-{}-{}",
            std::process::id(),
            self.dir
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        let out = Command::new(runc)
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(&id)
            .output()
            .unwrap();
        let _ = Command::new(runc).args(["delete", "--force", &id]).output();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        (out.status.success(), text)
    }
}

/// After a failed run: the rootfs is as it was `before`, and the audit
/// record says so, with no action left `done`. Returns the record.
pub(crate) fn assert_all_undone(
    bundle: &Bundle,
    before: &[String],
    out: &str,
) -> serde_json::Value {
    assert_eq!(
        snapshot(&bundle.rootfs()),
        before,
        "the rootfs was left changed:\n{out}"
    );
    let audit = std::fs::read_to_string(&bundle.audit).unwrap();
    let record: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(record["ok"], false);
    let actions = record["actions"].as_array().unwrap();
    assert!(actions.iter().all(|a| a["outcome"] != "done"), "{record}");
    record
}

/// Every path under `dir`, with its kind: to show that nothing changed.
pub(crate) fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            out.push(format!("{} {:?}", entry.path().display(), kind));
            if kind.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// Replaces a fake host's placeholder library `lib` with a real shared
/// object of that soname, so that ldconfig has an ELF file to put in the
/// cache.
pub(crate) fn real_library(lib: &Path, soname: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lib.c"),
        "int hookhost_test(unsigned f) { return (int)f; }\n",
    )
    .unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", &format!("-Wl,-soname,{soname}"), "-o"])
        .arg(lib)
        .arg(dir.path().join("lib.c"))
        .status()
        .expect("a C compiler (cc) builds the test's shared library");
    assert!(status.success());
}

/// The fake NVIDIA host with a real shared library as its libcuda: ldconfig
/// lists only ELF files.
pub(crate) fn nvidia_host() -> tempfile::TempDir {
    let host = fake_host("nvidia");
    let libcuda = host
        .path()
        .join("usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14");
    real_library(&libcuda, "libcuda.so.1");
    host
}

/// What the host's ldconfig finds in the container's linker cache.
pub(crate) fn cache_listing(bundle: &Bundle) -> String {
    let cache = bundle.rootfs().join("etc/ld.so.cache");
    let listed = Command::new("/sbin/ldconfig")
        .arg("-p")
        .arg("-C")
        .arg(&cache)
        .output()
        .unwrap();
    stdout(&listed)
}

/// Gives the image CUDA compat libraries newer than the fake host's driver
/// (550.54.14): a real `libcuda.so.560.28.03` and its soname link.
pub(crate) fn add_newer_cuda_compat(rootfs: &Path) {
    let compat = rootfs.join("usr/local/cuda/compat");
    std::fs::create_dir_all(&compat).unwrap();
    real_library(&compat.join("libcuda.so.560.28.03"), "libcuda.so.1");
    std::os::unix::fs::symlink("libcuda.so.560.28.03", compat.join("libcuda.so.1")).unwrap();
}

/// The linker cache `listed` gives the image's compat libcuda first (the
/// dynamic loader takes the first entry of a name) and the host's after.
pub(crate) fn assert_compat_libcuda_first(listed: &str) {
    let first = listed
        .lines()
        .find(|l| l.trim_start().starts_with("libcuda.so.1 "))
        .unwrap_or_default();
    assert!(
        first.ends_with("=> /usr/local/cuda/compat/libcuda.so.1"),
        "{listed}"
    );
    assert!(
        listed.contains("libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "the host's libcuda is still listed, after:\n{listed}"
    );
}

#[test]
fn an_images_newer_cuda_compat_libcuda_wins_over_the_hosts_in_the_linker_cache() {
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "cat /etc/ld.so.conf.d/000-hookhost.conf",
    );
    add_newer_cuda_compat(&bundle.rootfs());
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(
        out.starts_with("/usr/local/cuda/compat\n/usr/lib/x86_64-linux-gnu\n"),
        "the drop-in lists the compat directory first:\n{out}"
    );
    assert_compat_libcuda_first(&cache_listing(&bundle));
}

#[test]
fn a_selected_gpu_is_usable_and_an_unselected_one_is_absent() {
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "stat -c '%n %t:%T' /dev/nvidia0 /dev/nvidiactl; \
         cat /dev/nvidia0 2>&1; \
         test -e /dev/nvidia1 && echo nvidia1-present; \
         cat /etc/ld.so.conf.d/000-hookhost.conf; \
         readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1; \
         echo x 2>&1 > /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14 || echo write-refused; \
         test -x /usr/bin/nvidia-smi && echo smi-present",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // stat prints major:minor in hex.
    assert!(out.contains("/dev/nvidia0 c3:0"), "{out}");
    assert!(out.contains("/dev/nvidiactl c3:ff"), "{out}");
    // ENXIO: the node exists and the device cgroup let the open through to
    // a driver that is not there. EPERM would mean the cgroup denied it.
    assert!(out.contains("No such device or address"), "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(
        !out.contains("nvidia1-present"),
        "GPU 1 was not selected:\n{out}"
    );
    assert!(
        out.contains("/usr/lib/x86_64-linux-gnu\n"),
        "the ld.so.conf.d drop-in:\n{out}"
    );
    assert!(
        out.contains("libcuda.so.550.54.14\n"),
        "the soname link:\n{out}"
    );
    assert!(
        out.contains("write-refused"),
        "libraries are read-only:\n{out}"
    );
    assert!(out.contains("smi-present"), "{out}");

    // The host's ldconfig wrote the container's cache, listing the library.
    let listed = cache_listing(&bundle);
    assert!(
        listed.contains("libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "{listed}"
    );

    let audit = std::fs::read_to_string(&bundle.audit).unwrap();
    let record: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(record["ok"], true);
    assert_eq!(record["stage"], "prestart");
    let actions = record["actions"].as_array().unwrap();
    assert!(actions.iter().any(|a| a["action"] == "mknod"
        && a["path"] == "/dev/nvidia0"
        && a["plugin"] == "nvidia"
        && a["outcome"] == "done"));
    assert!(actions
        .iter()
        .any(|a| a["action"] == "cgroup-allow" && a["path"] == "c 195:0 rwm"));
}

/// GPU 1 of the host `nvidia-graphics` (0000:86:00.0) has the DRM nodes
/// card2 and renderD129 (226:2, 226:129); GPU 0's are card1 and renderD128.
#[test]
fn graphics_gives_the_selected_gpus_render_node_and_not_the_others() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia-graphics");
    let bundle = Bundle::new(
        host.path(),
        &[
            "NVIDIA_VISIBLE_DEVICES=1",
            "NVIDIA_DRIVER_CAPABILITIES=graphics",
        ],
        "stat -c '%n %t:%T' /dev/dri/renderD129 /dev/dri/card2; \
         cat /dev/dri/renderD129 2>&1; \
         test -e /dev/dri/renderD128 && echo renderD128-present; \
         test -e /dev/dri/card1 && echo card1-present; \
         readlink /dev/dri/by-path/pci-0000:86:00.0-render; \
         test -e /dev/dri/by-path/pci-0000:3b:00.0-render && echo other-link-present; \
         test -f /etc/vulkan/icd.d/nvidia_icd.json && echo vulkan-icd-present; true",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // stat prints major:minor in hex: 226 is e2, 129 is 81.
    assert!(out.contains("/dev/dri/renderD129 e2:81"), "{out}");
    assert!(out.contains("/dev/dri/card2 e2:2"), "{out}");
    // ENXIO: the device cgroup let the open through to a driver that is not
    // there; EPERM would mean it denied the render node.
    assert!(out.contains("No such device or address"), "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(
        !out.contains("renderD128-present") && !out.contains("card1-present"),
        "GPU 0's nodes:\n{out}"
    );
    assert!(out.contains("../renderD129\n"), "the by-path link:\n{out}");
    assert!(!out.contains("other-link-present"), "{out}");
    assert!(out.contains("vulkan-icd-present"), "{out}");
}

/// MIG device 1:1 of the fake host is gi 2 ci 0 of GPU 1: capabilities 156
/// and 157 of nvidia-caps (major 237), through the host's MIG inventory.
#[test]
fn a_mig_device_gives_the_container_its_parent_gpu_and_its_capability_nodes() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia-mig");
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=1:1"],
        "stat -c '%n %t:%T' /dev/nvidia1 /dev/nvidia-caps/nvidia-cap156 \
         /dev/nvidia-caps/nvidia-cap157; \
         cat /dev/nvidia-caps/nvidia-cap157 2>&1; \
         test -e /dev/nvidia0 && echo nvidia0-present; \
         test -e /dev/nvidia-caps/nvidia-cap147 && echo cap147-present; true",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // stat prints major:minor in hex: 237 is ed, 156 and 157 are 9c and 9d.
    assert!(out.contains("/dev/nvidia1 c3:1"), "{out}");
    assert!(
        out.contains("/dev/nvidia-caps/nvidia-cap156 ed:9c"),
        "{out}"
    );
    assert!(
        out.contains("/dev/nvidia-caps/nvidia-cap157 ed:9d"),
        "{out}"
    );
    // ENXIO: the device cgroup let the open through to a driver that is not
    // there; EPERM would mean it denied the capability.
    assert!(out.contains("No such device or address"), "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("nvidia0-present"), "{out}");
    assert!(
        !out.contains("cap147-present"),
        "another MIG device's capability:\n{out}"
    );
}

#[test]
fn the_imex_channels_named_are_the_only_ones_a_container_gets_and_can_open() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia-imex");
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=3"],
        "stat -c '%n %t:%T' /dev/nvidia-caps-imex-channels/channel3; \
         cat /dev/nvidia-caps-imex-channels/channel3 2>&1; \
         test -e /dev/nvidia-caps-imex-channels/channel0 && echo channel0-present; true",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // stat prints major:minor in hex: 238 is ee.
    assert!(
        out.contains("/dev/nvidia-caps-imex-channels/channel3 ee:3"),
        "{out}"
    );
    // ENXIO: the device cgroup let the open through; EPERM would be a denial.
    assert!(out.contains("No such device or address"), "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("channel0-present"), "{out}");
}

#[test]
fn a_container_without_the_flag_gets_nothing_and_no_audit_line() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(host.path(), &[], "ls /dev");
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "{out}");
    assert!(!out.contains("nvidia"), "{out}");
    assert!(!bundle.audit.exists(), "nothing injected, nothing audited");
}

#[test]
fn an_image_symlink_to_a_host_directory_is_resolved_inside_the_rootfs() {
    // The image's library directory is a link to a host path, absolute. In
    // the rootfs the link dangles (<rootfs><outside> does not exist), so
    // the libraries cannot be placed: a clean failure, all undone.
    hostile_link("/usr/lib/x86_64-linux-gnu", "{outside}", Expect::Fail);
}

#[test]
fn an_image_symlink_with_dotdot_cannot_climb_out() {
    // usr/bin -> ../../../../../../<outside>: relative, climbing past the
    // root; the binaries cannot be placed through the dangling link.
    hostile_link("/usr/bin", "../../../../../../../..{outside}", Expect::Fail);
}

#[test]
fn a_failure_mid_plan_leaves_nothing_behind() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    // The image has a symlink where nvidia-smi must go: the bind of the
    // binaries fails after the devices, libraries and links before it.
    std::fs::create_dir_all(bundle.rootfs().join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", bundle.rootfs().join("usr/bin/nvidia-smi")).unwrap();
    let before = snapshot(&bundle.rootfs());
    let (ok, out) = bundle.run(&runc);
    assert!(!ok, "the hook must fail:\n{out}");
    assert!(
        out.contains("plugin `nvidia`: bind /usr/bin/nvidia-smi"),
        "{out}"
    );
    let record = assert_all_undone(&bundle, &before, &out);
    let actions = record["actions"].as_array().unwrap();
    assert!(actions
        .iter()
        .any(|a| a["action"] == "cgroup-allow" && a["outcome"] == "undone"));
}

#[test]
fn a_read_only_rootfs_still_gets_its_devices_and_files() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "test -c /dev/nvidia0 && echo node-present; \
         test -f /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14 && echo lib-present; \
         echo x 2>/dev/null > /new-file || echo rootfs-read-only",
    );
    // runc makes the rootfs read-only after the prestart hooks have run.
    let config_path = bundle.dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["root"]["readonly"] = true.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "{out}");
    for want in ["node-present", "lib-present", "rootfs-read-only"] {
        assert!(out.contains(want), "{want}:\n{out}");
    }
}

/// Runs the GPU container with `link` in the image pointing at `target`
/// (`{outside}` is replaced by a host directory outside the rootfs), and
/// asserts that the host directory is untouched and that the hook either
/// succeeded or failed leaving the rootfs as it was.
/// What a hostile-link case must end in, besides leaving the host alone.
#[derive(PartialEq)]
enum Expect {
    /// Failing cleanly, naming the path, or staying inside the rootfs.
    Either,
    /// Failing cleanly, naming the link's path.
    Fail,
}

fn hostile_link(link: &str, target: &str, expect: Expect) {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("canary"), "host file").unwrap();
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    let at = bundle.rootfs().join(link.trim_start_matches('/'));
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    let target = target.replace("{outside}", &outside.path().display().to_string());
    std::os::unix::fs::symlink(&target, &at).unwrap();

    let (host_before, rootfs_before) = (snapshot(outside.path()), snapshot(&bundle.rootfs()));
    let (ok, out) = bundle.run(&runc);
    assert_eq!(
        snapshot(outside.path()),
        host_before,
        "{link} -> {target}: the host directory was changed:\n{out}"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("canary")).unwrap(),
        "host file"
    );
    if expect == Expect::Fail {
        assert!(!ok, "{link} -> {target} must fail the hook:\n{out}");
        assert!(out.contains(link), "the error names {link}:\n{out}");
    }
    if !ok {
        assert!(out.contains("hookhost: "), "{out}");
        assert_eq!(snapshot(&bundle.rootfs()), rootfs_before, "{link}: {out}");
    }
}

#[test]
fn image_ld_so_conf_d_linked_to_a_host_directory() {
    hostile_link("/etc/ld.so.conf.d", "{outside}", Expect::Either);
}

#[test]
fn image_usr_linked_to_a_host_directory_several_levels_up() {
    hostile_link("/usr", "{outside}", Expect::Either);
}

#[test]
fn image_etc_linked_out_with_dotdot() {
    hostile_link("/etc", "../../../../../../../..{outside}", Expect::Either);
}

#[test]
fn image_library_file_linked_to_a_host_file() {
    hostile_link(
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "{outside}/canary",
        Expect::Either,
    );
}

#[test]
fn an_existing_image_file_at_a_target_is_covered_read_only() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "cat /usr/bin/nvidia-smi",
    );
    std::fs::create_dir_all(bundle.rootfs().join("usr/bin")).unwrap();
    std::fs::write(bundle.rootfs().join("usr/bin/nvidia-smi"), "image's own\n").unwrap();
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "{out}");
    assert!(
        !out.contains("image's own"),
        "the host's binary is bound over it:\n{out}"
    );
    // The image's file is intact underneath.
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("usr/bin/nvidia-smi")).unwrap(),
        "image's own\n"
    );
}

#[test]
fn the_seed_onload_config_runs_as_a_static_policy_in_a_runc_container() {
    let Some(runc) = runc() else { return };
    let host = fake_host("seed-onload");
    real_library(&host.path().join("usr/lib64/libonload.so"), "libonload.so");
    let bundle = Bundle::with_plugins(
        &fixtures().join("seed/plugins.d"),
        host.path(),
        &["OCI_SOLARFLARE=1"],
        "stat -c '%n %t:%T' /dev/onload /dev/onload_epoll /dev/sfc_char; \
         cat /dev/onload 2>&1; cat /dev/sfc_char 2>&1; \
         test -x /usr/bin/onload && test -x /usr/bin/sfnt-pingpong && \
             test -x /usr/sbin/onload_tool && echo binaries-present; \
         cat /usr/libexec/onload/profiles/latency.opf; \
         test -e /usr/libexec/onload/profiles/throughput.opf && echo unlisted-present; \
         stat -c 'profiles %a' /usr/libexec/onload/profiles; \
         readlink /usr/lib64/libonload_ext.so; \
         echo x 2>&1 > /usr/lib64/libonload.so || echo write-refused",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // stat prints major:minor in hex: 241 = f1, 242 = f2.
    assert!(out.contains("/dev/onload f1:0"), "{out}");
    assert!(out.contains("/dev/onload_epoll f1:1"), "{out}");
    assert!(out.contains("/dev/sfc_char f2:0"), "{out}");
    // ENXIO for both: the device cgroup allowed the nodes (EPERM would mean
    // it denied them); there is no driver behind the fake majors.
    assert_eq!(out.matches("No such device or address").count(), 2, "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("binaries-present"), "{out}");
    assert!(out.contains("onload_set EF_POLL_USEC 100000"), "{out}");
    assert!(!out.contains("unlisted-present"), "{out}");
    assert!(out.contains("profiles 755"), "the listed directory:\n{out}");
    assert!(out.contains("libonload_ext.so.2.0.0\n"), "{out}");
    assert!(out.contains("write-refused"), "read-only binds:\n{out}");
    let listed = cache_listing(&bundle);
    assert!(
        listed.contains("libonload.so (libc6,x86-64) => /usr/lib64/libonload.so"),
        "{listed}"
    );
}

#[test]
fn the_onload_policy_gives_a_runc_container_its_devices_libraries_and_tools() {
    let Some(runc) = runc() else { return };
    let host = fake_host("onload");
    real_library(&host.path().join("usr/lib64/libonload.so"), "libonload.so");
    let bundle = Bundle::new(
        host.path(),
        &["OCI_SOLARFLARE=1"],
        "stat -c '%n %t:%T' /dev/onload /dev/onload_epoll /dev/sfc_char; \
         cat /dev/onload 2>&1; cat /dev/onload_epoll 2>&1; \
         test -x /usr/bin/onload && test -x /usr/sbin/onload_tool && \
             test -x /usr/bin/onload_stackdump && echo tools-present; \
         test -e /usr/bin/onload_fuser && echo unlisted-present; \
         test -e /usr/libexec/onload/profiles/latency.opf && echo profile-present; \
         readlink /opt/onload/usr/lib64/libonload_ext.so.1; \
         cat /etc/ld.so.conf.d/000-hookhost.conf; \
         echo x 2>&1 > /opt/onload/usr/lib64/libonload.so || echo write-refused",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // stat prints major:minor in hex: 241..243 = f1..f3.
    assert!(out.contains("/dev/onload f1:0"), "{out}");
    assert!(out.contains("/dev/onload_epoll f2:0"), "{out}");
    assert!(out.contains("/dev/sfc_char f3:0"), "{out}");
    // ENXIO, not EPERM: the device cgroup let the opens through.
    assert_eq!(out.matches("No such device or address").count(), 2, "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("tools-present"), "{out}");
    assert!(!out.contains("unlisted-present"), "{out}");
    assert!(out.contains("profile-present"), "{out}");
    assert!(out.contains("libonload_ext.so.1.1.0\n"), "{out}");
    assert!(
        out.contains("/opt/onload/usr/lib64\n"),
        "the drop-in:\n{out}"
    );
    assert!(out.contains("write-refused"), "read-only binds:\n{out}");
    let listed = cache_listing(&bundle);
    assert!(
        listed.contains("libonload.so (libc6,x86-64) => /opt/onload/usr/lib64/libonload.so"),
        "{listed}"
    );
}

#[test]
fn a_bound_vendor_directory_keeps_its_soname_links_working() {
    // The XRT policy binds /opt/xilinx/xrt whole. Its lib/ is soname links
    // to versioned files; a nosymfollow mount would make every one of them
    // fail with ELOOP in the container.
    let Some(runc) = runc() else { return };
    let host = fake_host("xilinx");
    let bundle = Bundle::new(
        host.path(),
        &["XILINX_VISIBLE_DEVICES=0"],
        "stat -c '%n %t:%T' /dev/dri/renderD129 /dev/xclmgmt15104; \
         cat /dev/dri/renderD129 2>&1; \
         readlink /opt/xilinx/xrt/lib/libxrt_coreutil.so.2; \
         cat /opt/xilinx/xrt/lib/libxrt_coreutil.so.2 > /dev/null && echo link-followed; \
         test -e /dev/dri/renderD130 && echo unselected-present; \
         echo x 2>&1 > /opt/xilinx/xrt/setup.sh || echo write-refused",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    // 226:129 and 238:0 in hex.
    assert!(out.contains("/dev/dri/renderD129 e2:81"), "{out}");
    assert!(out.contains("/dev/xclmgmt15104 ee:0"), "{out}");
    assert!(out.contains("No such device or address"), "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("libxrt_coreutil.so.2.16.204\n"), "{out}");
    assert!(out.contains("link-followed"), "{out}");
    assert!(!out.contains("unselected-present"), "{out}");
    assert!(out.contains("write-refused"), "{out}");
}

/// A fake host ldconfig: a shell script running `body`, called with
/// `-X -r ROOTFS DIR...` (so `$3` is the rootfs).
fn fake_ldconfig(body: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ldconfig");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, path)
}

/// The soft and hard values of one line of /proc/PID/limits.
fn limit<'a>(limits: &'a str, name: &str) -> Vec<&'a str> {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` in\n{limits}"));
    line[name.len()..].split_whitespace().take(2).collect()
}

#[test]
fn ldconfig_runs_as_pid_1_of_its_own_namespaces_under_limits() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    // It records where it ran into the rootfs it is given (no chroot: the
    // fake ignores -r), from the namespaces and limits it was started in.
    let (_fake_dir, fake) = fake_ldconfig(
        r#"{
  echo "args $*"
  echo "pid $$"
  for ns in pid mnt net ipc uts; do echo "ns $ns $(readlink /proc/self/ns/$ns)"; done
  grep -E '^(NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status
  cat /proc/self/limits
  echo env-start; env; echo env-end
} > "$3/ldconfig-report""#,
    );
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "echo container-mnt $(readlink /proc/self/ns/mnt)",
    );
    bundle.hook_ldconfig(&fake, &["HOOKHOST_CANARY=leaked"]);
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    let report = std::fs::read_to_string(bundle.rootfs().join("ldconfig-report"))
        .unwrap_or_else(|e| panic!("the fake ldconfig did not run ({e}):\n{out}"));

    let rootfs = bundle.rootfs().display().to_string();
    assert!(
        report.contains(&format!("args -X -r {rootfs} /usr/lib/x86_64-linux-gnu\n")),
        "{report}"
    );
    // PID 1 of a pid namespace of its own: everything it starts dies with it.
    assert!(report.contains("pid 1\n"), "{report}");
    // Every namespace is new: not the host's (the hook's, at prestart) ...
    for ns in ["pid", "mnt", "net", "ipc", "uts"] {
        let host_ns = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let line = format!("ns {ns} ");
        let theirs = report
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {ns} namespace in\n{report}"));
        assert!(theirs.starts_with(&format!("{ns}:[")), "{report}");
        assert_ne!(theirs, host_ns.to_str().unwrap(), "{ns}:\n{report}");
    }
    // ... and the mount namespace not the container's either.
    let container_mnt = out
        .lines()
        .find_map(|l| l.strip_prefix("container-mnt "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        !report.contains(&format!("ns mnt {container_mnt}\n")),
        "ldconfig ran in the container's mount namespace ({container_mnt}):\n{report}"
    );
    assert!(report.contains("NoNewPrivs:\t1\n"), "{report}");
    // Only CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2) and CAP_SYS_CHROOT
    // (18), in the bounding set too; nothing inheritable or ambient.
    for (set, mask) in [
        ("CapBnd", "0000000000040006"),
        ("CapPrm", "0000000000040006"),
        ("CapEff", "0000000000040006"),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert!(
            report.contains(&format!("{set}:\t{mask}\n")),
            "{set}:\n{report}"
        );
    }
    for (name, value) in [
        ("Max cpu time", "10"),
        ("Max file size", "134217728"),
        ("Max data size", "1073741824"),
        ("Max core file size", "0"),
        ("Max open files", "256"),
        ("Max address space", "4294967296"),
    ] {
        assert_eq!(limit(&report, name), [value, value], "{name}:\n{report}");
    }
    // An empty environment: only what sh sets itself.
    let env = report
        .split("env-start\n")
        .nth(1)
        .and_then(|r| r.split("env-end\n").next())
        .unwrap();
    for var in env.lines() {
        assert!(
            ["PWD=", "SHLVL=", "_="].iter().any(|p| var.starts_with(p)),
            "{var} reached ldconfig:\n{report}"
        );
    }
}

#[test]
fn a_failing_ldconfig_fails_the_hook_and_leaves_nothing_behind() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let (_fake_dir, fake) =
        fake_ldconfig("echo 'fake ldconfig: cannot write the cache' >&2; exit 1");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    bundle.hook_ldconfig(&fake, &[]);
    let before = snapshot(&bundle.rootfs());
    let (ok, out) = bundle.run(&runc);
    assert!(!ok, "the hook must fail:\n{out}");
    assert!(
        out.contains("plugin `nvidia`: ldconfig /etc/ld.so.cache: "),
        "{out}"
    );
    assert!(
        out.contains("fake ldconfig: cannot write the cache"),
        "ldconfig's own words:\n{out}"
    );
    let record = assert_all_undone(&bundle, &before, &out);
    let actions = record["actions"].as_array().unwrap();
    assert!(actions
        .iter()
        .any(|a| a["action"] == "ldconfig" && a["outcome"] == "failed"));
}

#[test]
fn a_hanging_ldconfig_is_killed_and_the_hook_fails_cleanly() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let (_fake_dir, fake) = fake_ldconfig("sleep 60");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    bundle.hook_ldconfig(&fake, &[]);
    let before = snapshot(&bundle.rootfs());
    let start = std::time::Instant::now();
    let (ok, out) = bundle.run(&runc);
    let took = start.elapsed();
    assert!(!ok, "the hook must fail:\n{out}");
    assert!(
        out.contains(&format!("{} killed after 10 s", fake.display())),
        "{out}"
    );
    assert!(took.as_secs() < 30, "took {took:?}:\n{out}");
    assert_all_undone(&bundle, &before, &out);
}

#[test]
fn copies_directories_and_links_are_the_containers_own() {
    // The scripted test plugin asks for a copy (not a bind), a directory
    // and a symlink: the kinds of request the vendor policies here do not
    // make.
    let Some(runc) = runc() else { return };
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("etc")).unwrap();
    let conf = host.path().join("etc/foo.conf");
    std::fs::write(&conf, "setting=1\n").unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let requests = serde_json::json!({"requests": [
        {"copy": {"host": "/etc/foo.conf", "container": "/etc/foo.conf"}},
        {"make-dir": {"container": "/var/lib/foo", "mode": 0o700}},
        {"symlink": {"target": "foo.conf", "container": "/etc/foo.link"}},
    ]});
    let manifest = serde_json::json!({
        "activation": {"env": ["SCRIPTED"]},
        "allow": ["/etc/foo.conf"],
        "settings": requests,
    });
    let plugins = plugin_dir("scripted", "scripted", &manifest.to_string());
    let bundle = Bundle::with_plugins(
        plugins.path(),
        host.path(),
        &["SCRIPTED=1"],
        "stat -c 'conf %a %u:%g' /etc/foo.conf; cat /etc/foo.link; \
         grep -c foo.conf /proc/self/mountinfo; \
         echo more >> /etc/foo.conf && echo appended; \
         stat -c 'dir %a' /var/lib/foo",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(out.contains("conf 640 0:0"), "the mode is kept:\n{out}");
    assert!(out.contains("setting=1\n"), "the link resolves:\n{out}");
    assert!(out.contains("\n0\n"), "a copy is not a mount:\n{out}");
    assert!(out.contains("appended"), "the copy is writable:\n{out}");
    assert!(out.contains("dir 700"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "setting=1\n",
        "the host's file is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("etc/foo.conf")).unwrap(),
        "setting=1\nmore\n"
    );
}

#[test]
fn create_container_injects_from_inside_the_containers_namespaces() {
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=1"],
        "stat -c '%n %t:%T' /dev/nvidia1; cat /dev/nvidia1 2>&1; \
         test -e /dev/nvidia0 && echo nvidia0-present; \
         readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1",
    );
    bundle.as_create_container_hook();
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(out.contains("/dev/nvidia1 c3:1"), "{out}");
    // ENXIO: the hook allowed the device in the container's own cgroup.
    assert!(out.contains("No such device or address"), "{out}");
    assert!(!out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("nvidia0-present"), "{out}");
    assert!(out.contains("libcuda.so.550.54.14\n"), "{out}");
    assert!(
        cache_listing(&bundle).contains("libcuda.so.1 (libc6,x86-64)"),
        "ldconfig ran from inside the container's namespaces too"
    );
    let audit = std::fs::read_to_string(&bundle.audit).unwrap();
    assert!(audit.contains(r#""stage":"create-container""#), "{audit}");
}

#[test]
fn create_container_outside_a_container_refuses_to_touch_the_host() {
    // Run by hand from the host's mount namespace, create-container would
    // inject into the host's view of the rootfs: it must refuse.
    let host = fake_host("nvidia");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    let state = serde_json::json!({
        "ociVersion": "1.0.2", "id": "by-hand", "status": "creating", "pid": 1,
        "bundle": bundle.dir.path(),
    });
    // As runc runs a hook with an explicit `env` (the test's own has
    // cargo's LD_LIBRARY_PATH, which create-container refuses).
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .env_clear()
        .arg("--plugins-dir")
        .arg(plugins().join("plugins.d"))
        .arg("--host-root")
        .arg(host.path())
        .arg("create-container")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(state.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("create-container must run as a createContainer hook"),
        "{}",
        stderr(&out)
    );
    assert!(!bundle.rootfs().join("dev/nvidia0").exists());
}

#[test]
fn ldconfig_cannot_write_into_the_host_through_the_containers_proc() {
    // The image links ldconfig's aux-cache directory to /proc/1/root/...:
    // the container's procfs is mounted in the rootfs when the hook runs,
    // and /proc/1/root of a root process leads out of any chroot. The
    // sandbox detaches it before ldconfig runs.
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let outside = tempfile::tempdir().unwrap();
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    std::fs::create_dir_all(bundle.rootfs().join("var/cache")).unwrap();
    std::os::unix::fs::symlink(
        format!("/proc/1/root{}", outside.path().display()),
        bundle.rootfs().join("var/cache/ldconfig"),
    )
    .unwrap();
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "{out}");
    assert_eq!(
        snapshot(outside.path()),
        Vec::<String>::new(),
        "ldconfig wrote into the host:\n{out}"
    );
    assert!(cache_listing(&bundle).contains("libcuda.so.1"));
}

#[test]
fn create_container_in_a_cgroup_namespace_refuses_rather_than_touch_the_root_cgroup() {
    // In a cgroup namespace the hook's /proc/self/cgroup says "/", which in
    // the host's cgroup tree is the root: allowing (or, on undo, denying)
    // devices there would miss the container and reach every other one.
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    bundle.as_create_container_hook();
    let path = bundle.dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "cgroup"}));
    std::fs::write(&path, config.to_string()).unwrap();
    let root_rules = std::fs::read_to_string("/sys/fs/cgroup/devices/devices.list").unwrap();
    let before = snapshot(&bundle.rootfs());
    let (ok, out) = bundle.run(&runc);
    assert!(!ok, "{out}");
    assert!(out.contains("(a cgroup namespace?)"), "{out}");
    assert_eq!(snapshot(&bundle.rootfs()), before, "{out}");
    assert_eq!(
        std::fs::read_to_string("/sys/fs/cgroup/devices/devices.list").unwrap(),
        root_rules,
        "the host's root devices cgroup changed"
    );
}

/// Adds `annotations` to a bundle's config.json, as a device plugin's
/// allocation does.
fn annotate(bundle: &Bundle, annotations: serde_json::Value) {
    let path = bundle.dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["annotations"] = annotations;
    std::fs::write(&path, config.to_string()).unwrap();
}

#[test]
fn a_gpu_named_by_a_cdi_annotation_is_the_only_one_a_runc_container_gets() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "stat -c '%n %t:%T' /dev/nvidia1; \
         test -e /dev/nvidia0 && echo nvidia0-present; true",
    );
    annotate(
        &bundle,
        serde_json::json!({"cdi.k8s.io/nvidia-device-plugin_x": "nvidia.com/gpu=1"}),
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(out.contains("/dev/nvidia1 c3:1"), "{out}");
    assert!(!out.contains("nvidia0-present"), "{out}");
}

#[test]
fn a_gpu_named_by_a_device_mount_is_the_only_one_a_runc_container_gets() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let plugins_d = plugins_d_with_settings(
        "nvidia",
        &serde_json::json!({"accept-visible-devices-as-volume-mounts": true}),
    );
    let bundle = Bundle::with_plugins(
        plugins_d.path(),
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "stat -c '%n %t:%T' /dev/nvidia1; \
         test -e /dev/nvidia0 && echo nvidia0-present; true",
    );
    // As NVIDIA's device plugin with `deviceListStrategy: volume-mounts`.
    let path = bundle.dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/var/run/nvidia-container-devices/1",
            "type": "bind", "source": "/dev/null", "options": ["bind", "ro"],
        }));
    std::fs::write(&path, config.to_string()).unwrap();
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(out.contains("/dev/nvidia1 c3:1"), "{out}");
    assert!(!out.contains("nvidia0-present"), "{out}");
}

#[test]
fn with_the_envvar_refused_a_runc_container_asking_for_all_gets_nothing() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let plugins_d = plugins_d_with_settings(
        "nvidia",
        &serde_json::json!({"accept-visible-devices-envvar-when-unprivileged": false}),
    );
    let bundle = Bundle::with_plugins(
        plugins_d.path(),
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=all"],
        "ls /dev; test -e /usr/bin/nvidia-smi && echo smi-present; true",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "{out}");
    assert!(!out.contains("nvidia"), "{out}");
    assert!(!out.contains("smi-present"), "{out}");
}

/// A driver under a driver root (the GPU Operator's /run/nvidia/driver) is
/// at the standard paths in the container, and `libcuda.so`, which that
/// root lacks, leads to it.
#[test]
fn a_driver_root_library_is_at_the_standard_path_and_libcuda_so_resolves() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia-driver-root");
    real_library(
        &host
            .path()
            .join("run/nvidia/driver/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14"),
        "libcuda.so.1",
    );
    let plugins_d = plugins_d_with_settings(
        "nvidia",
        &serde_json::json!({"driver-root": "/run/nvidia/driver"}),
    );
    let bundle = Bundle::with_plugins(
        plugins_d.path(),
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "readlink /usr/lib/x86_64-linux-gnu/libcuda.so; \
         cat /usr/lib/x86_64-linux-gnu/libcuda.so > /dev/null && echo libcuda-so-resolves; \
         cat /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1; \
         /usr/bin/nvidia-smi; \
         test -e /run/nvidia/driver || echo no-driver-root-inside",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(out.contains("libcuda.so.1\n"), "{out}");
    assert!(out.contains("libcuda-so-resolves"), "{out}");
    // Through the root's absolute soname link, at the standard path.
    assert!(
        out.contains("fake libnvidia-ml.so.550.54.14 in a driver root"),
        "{out}"
    );
    // The root's nvidia-smi, not the host's own.
    assert!(
        out.contains("fake nvidia-smi 550.54.14 in a driver root"),
        "{out}"
    );
    assert!(out.contains("no-driver-root-inside"), "{out}");
    let listed = cache_listing(&bundle);
    assert!(
        listed.contains("libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "{listed}"
    );
}

/// The daemons' sockets and the MPS pipe directory are bound read-only, and
/// still work: a client connects to the socket, and writes into the pipe,
/// through the container's binds. busybox has no Unix socket client, so the
/// test connects through the container's root (`/proc/PID/root`), which
/// walks the container's own mounts.
#[test]
fn the_daemons_socket_and_the_mps_pipes_work_through_the_read_only_binds() {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::time::{Duration, Instant};

    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia-ipc");
    // nvidia-persistenced, listening.
    let socket = host.path().join("run/nvidia-persistenced/socket");
    std::fs::remove_file(&socket).unwrap();
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let _ = client.write_all(b"persistenced says hello\n");
        }
    });
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(plugins().join("plugins.d/nvidia.json")).unwrap(),
    )
    .unwrap();
    let mut allow = manifest["allow"].as_array().unwrap().clone();
    allow.push("/run/nvidia/mps".into());
    let mut fields = serde_json::Map::new();
    fields.insert("allow".into(), allow.into());
    fields.insert(
        "settings".into(),
        serde_json::json!({"mps-pipe-directory": "/run/nvidia/mps"}),
    );
    let plugins_d = plugins_d_with(&plugins().join("plugins.d"), "nvidia", &fields);
    let bundle = Bundle::with_plugins(
        plugins_d.path(),
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "stat -c '%n %F' /var/run/nvidia-persistenced/socket /run/nvidia/mps/control; \
         test -e /tmp/nvidia-mps || echo no-tmp-mps; \
         echo x 2>&1 > /run/nvidia/mps/new || echo create-refused; \
         echo from-the-container > /run/nvidia/mps/control",
    );
    let id = format!("hookhost-ipc-{}", std::process::id());
    let container = std::process::Command::new(&runc)
        .args(["run", "--bundle"])
        .arg(bundle.dir.path())
        .arg(&id)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);

    // The container blocks writing into the pipe until a reader opens it:
    // it is running meanwhile.
    let pid = loop {
        let state = std::process::Command::new(&runc)
            .args(["state", &id])
            .output()
            .unwrap();
        let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap_or_default();
        if state["status"] == "running" {
            break state["pid"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "the container never ran");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut greeting = String::new();
    let through = format!("/proc/{pid}/root/var/run/nvidia-persistenced/socket");
    UnixStream::connect(&through)
        .unwrap_or_else(|e| panic!("connecting to {through}: {e}"))
        .read_to_string(&mut greeting)
        .unwrap();
    assert_eq!(greeting, "persistenced says hello\n");

    let mut pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(host.path().join("run/nvidia/mps/control"))
        .unwrap();
    let mut said = Vec::new();
    while !said.ends_with(b"\n") {
        let mut buf = [0; 64];
        match pipe.read(&mut buf) {
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the pipe: {e}"),
        }
        assert!(Instant::now() < deadline, "nothing came through the pipe");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(said, b"from-the-container\n");

    let out = container.wait_with_output().unwrap();
    let _ = std::process::Command::new(&runc)
        .args(["delete", "--force", &id])
        .output();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("/var/run/nvidia-persistenced/socket socket"),
        "{text}"
    );
    assert!(text.contains("/run/nvidia/mps/control fifo"), "{text}");
    assert!(text.contains("no-tmp-mps"), "under a sticky /tmp: {text}");
    assert!(text.contains("create-refused"), "read-only: {text}");
}
