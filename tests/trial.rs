//! `hookhost test BUNDLE --run`: the fixture bundle run for real under
//! runc, hookhost as its hook, and the container's report of what it saw.

use std::path::Path;

use crate::common::*;
use crate::runc::runc;

/// `hookhost test CASE --run` with the installed plugins on the fake NVIDIA
/// host.
fn test_run(case: &Path, host: &Path) -> std::process::Output {
    test_plan(case, &plugins().join("plugins.d"), Some(host), &["--run"])
}

#[test]
fn a_fixture_run_under_runc_reports_what_the_container_saw_at_each_planned_path() {
    let Some(_) = runc() else { return };
    let host = fake_host("nvidia");
    let out = test_run(&fixtures().join("nvidia/all"), host.path());
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    // The plan first, then the container's view, path by path.
    assert!(text.contains("running it under "), "{text}");
    assert!(
        text.contains("ok    /dev/nvidia0: 195:0, allowed by the device cgroup (open: ENXIO"),
        "{text}"
    );
    assert!(
        text.contains(
            "ok    /usr/lib/x86_64-linux-gnu/libcuda.so.1: a link to libcuda.so.550.54.14"
        ),
        "{text}"
    );
    assert!(
        text.contains("ok    /usr/bin/nvidia-smi: a file of "),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
    assert!(stderr(&out).contains("hookhost: the container saw the plan"));
}

#[test]
fn a_fixture_whose_image_defeats_the_plan_fails_with_the_runs_own_output() {
    let Some(_) = runc() else { return };
    let host = fake_host("nvidia");
    // A copy of the fixture whose image has a link where nvidia-smi goes.
    let case = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("nvidia/all/config.json"),
        case.path().join("config.json"),
    )
    .unwrap();
    std::fs::create_dir_all(case.path().join("rootfs/usr/bin")).unwrap();
    std::os::unix::fs::symlink("/bin/true", case.path().join("rootfs/usr/bin/nvidia-smi")).unwrap();
    let out = test_run(case.path(), host.path());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("plugin `nvidia`: bind /usr/bin/nvidia-smi"),
        "the hook's own error, as runc printed it:\n{text}"
    );
    assert!(
        stderr(&out).contains("hookhost: the container did not see the plan"),
        "{}",
        stderr(&out)
    );
    // The bundle itself is untouched: the run used a copy.
    assert!(
        std::fs::symlink_metadata(case.path().join("rootfs/usr/bin/nvidia-smi"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!case.path().join("rootfs/dev/nvidia0").exists());
}
