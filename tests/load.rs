//! Proof under load: a hundred containers started at once through hookhost,
//! with the NVIDIA policy and a cold plugin cache shared by all of them.
//!
//! Needs root and runc; when `CI` is set a missing runc fails the test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::*;
use crate::runc::{runc, Bundle};

const CONTAINERS: usize = 100;

/// Lines of `/proc/self/mountinfo` that mention `needle`.
fn mounts_of(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Cgroup directories (any v1 controller, or v2) named after `prefix`.
fn cgroups_of(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![Path::new("/sys/fs/cgroup").to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                if entry.file_name().to_string_lossy().contains(prefix) {
                    found.push(path.display().to_string());
                }
                // Deep enough for runc's `/<controller>/<id>` and a parent.
                if path.components().count() < 7 {
                    stack.push(path);
                }
            }
        }
    }
    found
}

#[test]
fn a_hundred_containers_start_at_once_with_a_cold_cache_and_leak_nothing() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("hookhost");
    let prefix = format!("hookhost-load-{}-", std::process::id());
    let bundles: Vec<Bundle> = (0..CONTAINERS)
        .map(|_| {
            let bundle = Bundle::new(
                host.path(),
                &["NVIDIA_VISIBLE_DEVICES=all"],
                "test -c /dev/nvidia1 && sleep 600",
            );
            bundle.use_cache(&cache_dir);
            bundle
        })
        .collect();
    let id = |i: usize| format!("{prefix}{i}");

    let started = Instant::now();
    let runs: Vec<_> = bundles
        .iter()
        .enumerate()
        .map(|(i, bundle)| {
            // A file, not a pipe: the detached container keeps runc's
            // stdio, and a pipe would not end before the container.
            let log = std::fs::File::create(bundle.dir.path().join("runc.err")).unwrap();
            Command::new(&runc)
                .args(["run", "--detach", "--bundle"])
                .arg(bundle.dir.path())
                .arg(id(i))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for (i, mut run) in runs.into_iter().enumerate() {
        if !run.wait().unwrap().success() {
            let err = std::fs::read_to_string(bundles[i].dir.path().join("runc.err"));
            failed.push(format!("{}: {}", id(i), err.unwrap_or_default()));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{CONTAINERS} containers started at once through hookhost (cold cache) in {:.2} s",
        elapsed.as_secs_f64()
    );
    let running = (0..CONTAINERS)
        .filter(|&i| {
            let state = Command::new(&runc)
                .args(["state", &id(i)])
                .output()
                .unwrap();
            stdout(&state).contains("\"status\": \"running\"")
        })
        .count();
    for i in 0..CONTAINERS {
        let _ = Command::new(&runc)
            .args(["delete", "--force", &id(i)])
            .output();
    }
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(
        running, CONTAINERS,
        "every container is running its GPU check"
    );

    // Every hook wrote its audit line, each with the GPUs.
    for bundle in &bundles {
        let audit = std::fs::read_to_string(&bundle.audit).unwrap();
        assert!(
            audit.contains("\"ok\":true") && audit.contains("/dev/nvidia1"),
            "{audit}"
        );
    }
    // One compiled entry for the one plugin, and no temporary file beside it.
    let entries: Vec<String> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "the cache holds {entries:?}");
    // ... and a valid one: loaded as it is, not compiled again.
    let compile = hookhost([
        "--plugins-dir".as_ref(),
        plugins().join("plugins.d").as_os_str(),
        "--cache-dir".as_ref(),
        cache_dir.as_os_str(),
        "plugins".as_ref(),
        "compile".as_ref(),
        "nvidia".as_ref(),
    ]);
    assert!(
        stdout(&compile).starts_with("cached   nvidia:"),
        "{}{}",
        stdout(&compile),
        stderr(&compile)
    );
    // Nothing of the containers is left mounted or in a cgroup.
    for bundle in &bundles {
        let rootfs = bundle.rootfs().display().to_string();
        assert_eq!(mounts_of(&rootfs), Vec::<String>::new());
    }
    assert_eq!(mounts_of(&prefix), Vec::<String>::new());
    assert_eq!(cgroups_of(&prefix), Vec::<String>::new());
}
