//! The hook on cgroup v2: runc in pure v2 mode attaches its BPF device
//! program to the container's cgroup, and hookhost must replace it with one
//! that also allows the plan's devices (and put runc's back on a failure).
//!
//! This host is hybrid, so each run gets a private mount namespace with the
//! v2 hierarchy mounted at /sys/fs/cgroup: runc (and the hook it starts)
//! see a v2 host there. Needs root, runc and busybox-static; when `CI` is
//! set a missing runtime fails the test.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::runc::{assert_all_undone, runc, snapshot, Bundle};

/// `runc run` of `bundle` in a mount namespace of its own where
/// /sys/fs/cgroup is cgroup v2: the container's output and whether it
/// started.
fn run_v2(bundle: &Bundle, runc: &Path) -> (bool, String) {
    let state = tempfile::tempdir().unwrap();
    let id = format!(
        "hookhost-v2-{}-{}",
        std::process::id(),
        bundle
            .dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    );
    let script = format!(
        "set -e; mount --make-rprivate /; umount -l /sys/fs/cgroup; \
         mount -t cgroup2 none /sys/fs/cgroup; \
         rc=0; {runc} --root {state} run --bundle {bundle} {id} || rc=$?; \
         {runc} --root {state} delete --force {id} >/dev/null 2>&1 || true; exit $rc",
        runc = runc.display(),
        state = state.path().display(),
        bundle = bundle.dir.path().display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("running unshare (util-linux)");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.success(), text)
}

/// The selected GPU's node opens through to the (absent) driver, an
/// unselected one is refused by the program, and runc's own defaults
/// still hold.
fn selected_gpu_opens_and_others_do_not(create_container: bool) {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "cat /proc/self/cgroup; \
         cat /dev/nvidia0 2>&1; \
         cat /dev/x 2>&1; \
         echo hi > /dev/null && echo null-writable",
    );
    // A node of the unselected GPU 1 that runc makes (linux.devices)
    // without any rule allowing it.
    let path = bundle.dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["linux"]["devices"] =
        serde_json::json!([{"path": "/dev/x", "type": "c", "major": 195, "minor": 1}]);
    std::fs::write(&path, config.to_string()).unwrap();
    if create_container {
        bundle.as_create_container_hook();
    }
    let (ok, out) = run_v2(&bundle, &runc);
    assert!(ok, "the container must start:\n{out}");
    // runc put the container in a v2 cgroup of its own.
    assert!(
        out.contains("0::/hookhost-v2-"),
        "not a v2 container:\n{out}"
    );
    // ENXIO: the program let the open through to a driver that is not
    // there. EPERM would mean it denied it, as it must for 195:1, which no
    // rule allows.
    assert!(
        out.contains("'/dev/nvidia0': No such device or address"),
        "{out}"
    );
    assert!(out.contains("'/dev/x': Operation not permitted"), "{out}");
    assert!(out.contains("null-writable"), "runc's defaults:\n{out}");

    let audit = std::fs::read_to_string(&bundle.audit).unwrap();
    let record: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(record["ok"], true, "{record}");
    assert!(record["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == "cgroup-allow"
            && a["path"] == "c 195:0 rwm"
            && a["outcome"] == "done"));
}

#[test]
fn prestart_on_cgroup_v2_allows_the_selected_gpu_only() {
    selected_gpu_opens_and_others_do_not(false);
}

#[test]
fn create_container_on_cgroup_v2_allows_the_selected_gpu_only() {
    selected_gpu_opens_and_others_do_not(true);
}

#[test]
fn a_failure_mid_plan_on_cgroup_v2_puts_runcs_program_back() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    // A symlink where nvidia-smi must go: the bind of the binaries fails
    // after the program was replaced and the devices were made.
    std::fs::create_dir_all(bundle.rootfs().join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", bundle.rootfs().join("usr/bin/nvidia-smi")).unwrap();
    let before = snapshot(&bundle.rootfs());
    let (ok, out) = run_v2(&bundle, &runc);
    assert!(!ok, "the hook must fail:\n{out}");
    assert!(
        out.contains("plugin `nvidia`: bind /usr/bin/nvidia-smi"),
        "{out}"
    );
    assert!(!out.contains("and undoing failed"), "{out}");
    // Undone: the revoke's BPF_PROG_ATTACH put runc's program back with
    // BPF_F_REPLACE naming ours, which the kernel refuses unless ours is
    // the one attached; so ours was in force, and now runc's is again.
    let record = assert_all_undone(&bundle, &before, &out);
    let actions = record["actions"].as_array().unwrap();
    assert!(actions
        .iter()
        .any(|a| a["action"] == "cgroup-allow" && a["outcome"] == "undone"));
}
