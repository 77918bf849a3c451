//! CDI specs from the policies: `hookhost cdi generate` on fake hosts, the
//! specs read back by `hookhost cdi list` (the CDI crate's parser and
//! validation), and podman 4.3 starting containers with `--device
//! KIND=NAME` from them: the device nodes, the read-only mounts, the env
//! and hookhost's createContainer hook (symlinks, the linker cache).
//!
//! podman reads specs from /etc/cdi and /var/run/cdi only: each test writes
//! its spec into /var/run/cdi under a name and a kind of its own, and
//! removes it. Needs root, runc and podman (tests/setup.sh installs them);
//! when `CI` is set a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::*;
use crate::engines::{
    assert_gpu_container, gpu_script, output, podman_storage, rootfs_tar, succeeded, timed, tool,
    PODMAN_RUN,
};
use crate::runc::nvidia_host;
use crate::runc::runc;

const CDI_DIR: &str = "/var/run/cdi";

/// A spec file of the test's own in /var/run/cdi, removed on drop, with a
/// kind no other test uses (`t<pid>-<tag>.hookhost.test/<class>`).
struct SpecFile {
    path: PathBuf,
    kind: String,
}

impl SpecFile {
    fn new(tag: &str, class: &str) -> Self {
        std::fs::create_dir_all(CDI_DIR).unwrap();
        let id = format!("t{}-{tag}", std::process::id());
        SpecFile {
            path: Path::new(CDI_DIR).join(format!("hookhost-test-{id}.json")),
            kind: format!("{id}.hookhost.test/{class}"),
        }
    }
}

impl Drop for SpecFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `hookhost cdi generate` for `plugin` on the fake host `host`, with the
/// plugins of `plugins_dir`, into `spec`.
fn generate(host: &Path, plugins_dir: &Path, plugin: &str, spec: &SpecFile) -> Value {
    let cache = tempfile::tempdir().unwrap();
    let out = hookhost([
        "--plugins-dir".as_ref(),
        plugins_dir.as_os_str(),
        "--host-root".as_ref(),
        host.as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "cdi".as_ref(),
        "generate".as_ref(),
        "--output".as_ref(),
        spec.path.as_os_str(),
        "--vendor-class".as_ref(),
        spec.kind.as_ref(),
        plugin.as_ref(),
    ]);
    assert!(
        out.status.success(),
        "cdi generate {plugin}: {}",
        stderr(&out)
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec.path).unwrap()).unwrap();
    // The lowest version that covers the fields, and one podman 4.3 takes.
    let version = written["cdiVersion"].as_str().unwrap().to_string();
    assert!(
        ["0.3.0", "0.4.0", "0.5.0"].contains(&version.as_str()),
        "{version}"
    );
    written
}

/// `podman run --device KIND=NAME` of the busybox image with `script`.
fn podman_run(dir: &Path, device: &str, script: &str) -> Option<Output> {
    let podman = tool("podman", "podman")?;
    let runc = runc()?;
    let tar = rootfs_tar(dir);
    let podman_cmd = || {
        let mut cmd = timed(&podman);
        cmd.args(podman_storage(dir));
        cmd
    };
    succeeded(
        "podman import",
        output(podman_cmd().arg("import").arg(&tar).arg("hookhost-busybox")),
    );
    Some(output(
        podman_cmd()
            .args(PODMAN_RUN)
            .arg("--runtime")
            .arg(&runc)
            .args(["--device", device, "hookhost-busybox", "sh", "-c", script]),
    ))
}

/// The devices a spec offers, as `hookhost cdi list` reads them back.
fn listed(spec: &SpecFile) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&spec.path, dir.path().join("spec.json")).unwrap();
    let out = hookhost([
        "cdi".as_ref(),
        "list".as_ref(),
        "--dir".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn podman_gives_the_gpu_named_by_the_spec_with_its_driver_and_linker_cache() {
    let host = nvidia_host();
    let dir = tempfile::tempdir().unwrap();
    let spec = SpecFile::new("gpu", "gpu");
    let written = generate(host.path(), &plugins().join("plugins.d"), "nvidia", &spec);
    let kind = &spec.kind;
    assert_eq!(
        listed(&spec),
        [
            format!("{kind}=0"),
            format!("{kind}=1"),
            format!("{kind}=GPU-8b3c4a1e-5f2d-4e7a-9c16-2d0b7e4f1a93"),
            format!("{kind}=GPU-e2a91f07-3c4b-4d58-b6e1-7f90c2d8a514"),
            format!("{kind}=all"),
        ]
        .map(|n| n.to_string())
    );
    // The hook is hookhost's, with an explicit env: an image's LD_PRELOAD
    // never reaches it. Not empty: engines written in Go drop an empty
    // `env` (omitempty), and runc then gives the hook the container's.
    let hooks = &written["containerEdits"]["hooks"];
    assert_eq!(hooks[0]["hookName"], "createContainer");
    assert_eq!(
        hooks[0]["env"],
        serde_json::json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(hooks[0]["args"][1], "cdi-hook");

    let Some(out) = podman_run(dir.path(), &format!("{kind}=0"), &gpu_script()) else {
        return;
    };
    assert_gpu_container(&out);
}

#[test]
fn podman_gives_onload_its_nodes_libraries_soname_links_and_the_preload_setting() {
    let host = fake_host("onload");
    let dir = tempfile::tempdir().unwrap();
    let spec = SpecFile::new("onload", "onload");
    let manifest = plugins().join("plugins.d/onload.json");
    let mut settings: Value =
        serde_json::from_str::<Value>(&std::fs::read_to_string(manifest).unwrap()).unwrap()
            ["settings"]
            .clone();
    settings["preload"] = true.into();
    let preload = plugins_d_with_settings("onload", &settings);
    generate(host.path(), preload.path(), "onload", &spec);
    assert_eq!(listed(&spec), [format!("{}=all", spec.kind)]);
    let script = "stat -c '%n %t:%T' /dev/onload /dev/sfc_char; cat /dev/onload 2>&1; \
                  echo preload=$LD_PRELOAD; \
                  readlink /opt/onload/usr/lib64/libonload_ext.so.1; \
                  echo x 2>&1 > /opt/onload/usr/lib64/libonload.so || echo write-refused; \
                  cat /etc/ld.so.conf.d/000-hookhost.conf";
    let Some(out) = podman_run(dir.path(), &format!("{}=all", spec.kind), script) else {
        return;
    };
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/dev/onload f1:0"), "{text}");
    assert!(text.contains("/dev/sfc_char f3:0"), "{text}");
    assert!(text.contains("No such device or address"), "{text}");
    assert!(
        text.contains("preload=/opt/onload/usr/lib64/libonload.so"),
        "{text}"
    );
    assert!(
        text.contains("libonload_ext.so.1.1.0\n"),
        "the hook's soname link:\n{text}"
    );
    assert!(text.contains("write-refused"), "{text}");
    assert!(
        text.contains("/opt/onload/usr/lib64\n"),
        "the hook's ld.so.conf.d drop-in:\n{text}"
    );
}

#[test]
fn podman_gives_the_xilinx_device_named_and_not_the_others() {
    let host = fake_host("xilinx");
    let dir = tempfile::tempdir().unwrap();
    let spec = SpecFile::new("fpga", "fpga");
    generate(host.path(), &plugins().join("plugins.d"), "xilinx", &spec);
    let script = "stat -c '%n %t:%T' /dev/dri/renderD129 /dev/xclmgmt15104; \
                  cat /dev/dri/renderD129 2>&1; \
                  test -e /dev/dri/renderD130 && echo renderD130-present; \
                  echo xrt=$XILINX_XRT; ls /opt/xilinx/xrt >/dev/null && echo xrt-mounted";
    let Some(out) = podman_run(dir.path(), &format!("{}=0", spec.kind), script) else {
        return;
    };
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/dev/dri/renderD129 e2:81"), "{text}");
    assert!(text.contains("/dev/xclmgmt15104 ee:0"), "{text}");
    assert!(text.contains("No such device or address"), "{text}");
    assert!(
        !text.contains("renderD130-present"),
        "device 1 was not named:\n{text}"
    );
    assert!(text.contains("xrt=/opt/xilinx/xrt"), "{text}");
    assert!(text.contains("xrt-mounted"), "{text}");
}

/// `cdi generate` with the installed plugins on `host`, into `out`.
fn generate_into(host: &Path, out: &Path, plugins_dir: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--plugins-dir".into(),
        plugins_dir.into(),
        "--host-root".into(),
        host.into(),
        "cdi".into(),
        "generate".into(),
        "--output".into(),
        out.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    hookhost(args)
}

#[test]
fn every_shipped_policy_writes_a_spec_of_its_kind_that_reads_back() {
    let cases = [
        ("nvidia", "nvidia", "nvidia.com/gpu", "0"),
        ("amd", "amd", "amd.com/gpu", "0"),
        ("onload", "onload", "amd.com/onload", "all"),
        ("xilinx", "xilinx", "xilinx.com/fpga", "0"),
        ("intel-fpga", "intel-fpga", "intel.com/fpga", "dfl-port.0"),
        ("rdma", "rdma", "hookhost/rdma", "mlx5_0"),
    ];
    let installed = plugins().join("plugins.d");
    for (plugin, host, kind, device) in cases {
        let host = fake_host(host);
        let out = tempfile::tempdir().unwrap();
        let generated = generate_into(host.path(), out.path(), &installed, &[plugin]);
        assert!(
            generated.status.success(),
            "{plugin}: {}",
            stderr(&generated)
        );
        let file = out.path().join(format!("hookhost-{plugin}.json"));
        assert!(stdout(&generated).contains(&format!("wrote {}", file.display())));
        let listed = hookhost([
            "cdi".as_ref(),
            "list".as_ref(),
            "--dir".as_ref(),
            out.path().as_os_str(),
        ]);
        assert!(listed.status.success(), "{plugin}: {}", stderr(&listed));
        let names = stdout(&listed);
        for name in [device, "all"] {
            assert!(
                names.contains(&format!("{kind}={name}\t{}", file.display())),
                "{plugin}: {kind}={name} in:\n{names}"
            );
        }
    }
}

#[test]
fn an_invalid_spec_is_never_written_and_the_old_one_stays() {
    let host = fake_host("onload");
    let out = tempfile::tempdir().unwrap();
    let installed = plugins().join("plugins.d");
    let file = out.path().join("hookhost-onload.json");
    std::fs::write(&file, "{\"old\": true}\n").unwrap();
    let refused = generate_into(
        host.path(),
        out.path(),
        &installed,
        &["--vendor-class", "Not A Kind", "onload"],
    );
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("Not A Kind: invalid CDI spec"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"old\": true}\n");
    let leftovers: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

#[test]
fn a_failing_plugin_is_named_the_others_are_written_and_a_0_1_plugin_is_not_offered() {
    let host = nvidia_host();
    let out = tempfile::tempdir().unwrap();
    let plugins_dir = tempfile::tempdir().unwrap();
    for name in ["nvidia.wasm", "nvidia.json"] {
        std::fs::copy(
            plugins().join("plugins.d").join(name),
            plugins_dir.path().join(name),
        )
        .unwrap();
    }
    // Offers a device whose plan is a copy, which a CDI spec cannot carry.
    let scripted = serde_json::json!({
        "activation": {"always": true},
        "allow": ["/proc/driver/nvidia/version"],
        "settings": {
            "devices": ["x"],
            "requests": [{"copy": {"host": "/proc/driver/nvidia/version", "container": "/etc/nvidia-version"}}],
        },
    });
    for (name, component, manifest) in [
        ("scripted", "scripted", scripted.to_string()),
        (
            "previous",
            "previous",
            r#"{"activation": {"always": true}}"#.to_string(),
        ),
    ] {
        std::fs::copy(
            plugins()
                .join("test-plugins")
                .join(format!("{component}.wasm")),
            plugins_dir.path().join(format!("{name}.wasm")),
        )
        .unwrap();
        std::fs::write(plugins_dir.path().join(format!("{name}.json")), manifest).unwrap();
    }
    let all = generate_into(host.path(), out.path(), plugins_dir.path(), &[]);
    let (text, err) = (stdout(&all), stderr(&all));
    assert!(!all.status.success(), "{text}{err}");
    assert!(
        err.contains("plugin `scripted`")
            && err.contains("/proc/driver/nvidia/version: a CDI spec cannot copy files"),
        "the failure names the plugin and the path:\n{err}"
    );
    assert!(text.contains("skipped plugin `previous`"), "{text}");
    assert!(text.contains("cannot plan named devices"), "{text}");
    assert!(out.path().join("hookhost-nvidia.json").is_file(), "{text}");
    assert!(!out.path().join("hookhost-scripted.json").exists());
    assert!(!out.path().join("hookhost-previous.json").exists());

    // Named, the 0.1 plugin is an error.
    let named = generate_into(host.path(), out.path(), plugins_dir.path(), &["previous"]);
    assert!(!named.status.success());
    assert!(
        stderr(&named).contains("hookhost:policy@0.1.x, which cannot plan named devices"),
        "{}",
        stderr(&named)
    );
}

#[test]
fn the_spec_of_a_plugin_whose_devices_are_gone_is_removed() {
    let out = tempfile::tempdir().unwrap();
    let installed = plugins().join("plugins.d");
    let file = out.path().join("hookhost-onload.json");
    let with_driver = fake_host("onload");
    let written = generate_into(with_driver.path(), out.path(), &installed, &["onload"]);
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(file.is_file());
    // The driver is gone: an old spec would still offer amd.com/onload=all.
    let without = fake_host("bare");
    let again = generate_into(without.path(), out.path(), &installed, &["onload"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let text = stdout(&again);
    assert!(
        text.contains("skipped onload: it offers no device on this host"),
        "{text}"
    );
    assert!(
        text.contains(&format!("removed {}", file.display())),
        "{text}"
    );
    assert!(!file.exists());
}
