//! Shared by the integration tests: the hookhost binary, the plugins built
//! from `plugins/`, fake hosts and throw-away plugin directories.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// The plugins, built once per test binary by `plugins/build.sh` (the same
/// script the README uses): `plugins.d/` and `test-plugins/` inside.
pub fn plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = repo().join("target/hookhost");
        let status = Command::new("bash")
            .arg(repo().join("plugins/build.sh"))
            .arg(&out)
            .status()
            .expect("running plugins/build.sh");
        assert!(status.success(), "plugins/build.sh failed");
        out
    })
}

/// A fake host root made by `tests/fixtures/make-host.sh NAME` (files and
/// device nodes), in a directory removed with the returned guard.
pub fn fake_host(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(fixtures().join("make-host.sh"))
        .arg(name)
        .arg(dir.path())
        .status()
        .expect("running make-host.sh");
    assert!(
        status.success(),
        "make-host.sh {name} failed (it needs root for mknod)"
    );
    dir
}

/// A plugin directory holding one test component under `name`, with the
/// given manifest.
pub fn plugin_dir(name: &str, component: &str, manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        plugins()
            .join("test-plugins")
            .join(format!("{component}.wasm")),
        dir.path().join(format!("{name}.wasm")),
    )
    .unwrap();
    std::fs::write(dir.path().join(format!("{name}.json")), manifest).unwrap();
    dir
}

/// Runs hookhost with `args` and a private cache (unless `args` names one).
pub fn hookhost<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookhost"));
    cmd.args(&args);
    if !args.iter().any(|a| a == "--cache-dir" || a == "--no-cache") {
        cmd.arg("--cache-dir").arg(cache.path());
    }
    // As under runc: no PATH, no HOME.
    cmd.env_clear().output().expect("running hookhost")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A bundle in a temporary directory with this config.json and an empty rootfs.
pub fn bundle(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// A minimal runtime spec whose process has these environment entries.
pub fn config_with_env(env: &[&str]) -> String {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh"], "cwd": "/", "env": env},
    })
    .to_string()
}
