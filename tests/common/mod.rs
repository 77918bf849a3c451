//! Shared by the integration tests: the hookhost binary, the plugins built
//! from `plugins/`, fake hosts and throw-away plugin directories.

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

/// No extra arguments for [`test_plan`].
pub const NO_ARGS: &[&str] = &[];

/// Runs `hookhost test BUNDLE --plugins-dir PLUGINS [--host-root HOST]
/// EXTRA…`, the plan of one bundle with one plugins directory.
pub fn test_plan<S: AsRef<std::ffi::OsStr>>(
    bundle: &Path,
    plugins: &Path,
    host: Option<&Path>,
    extra: &[S],
) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "test".as_ref(),
        bundle.as_os_str(),
        "--plugins-dir".as_ref(),
        plugins.as_os_str(),
    ];
    if let Some(host) = host {
        args.extend(["--host-root".as_ref(), host.as_os_str()]);
    }
    args.extend(extra.iter().map(AsRef::as_ref));
    hookhost(args)
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

/// Runs the fixture case `tests/fixtures/FAMILY/NAME` with the installed
/// vendor plugins (`plugins.d`). A case holds a bundle (`config.json`,
/// `rootfs/`, optionally `state.json`), a `case.json` naming the fake host
/// it runs on (`{"host": "nvidia"}`; `"plugin"` names the plugin an error
/// must blame, FAMILY by default; `"stage"` the stage, prestart by default;
/// `"settings"` replaces that plugin's manifest settings; `"manifest"` sets
/// other fields of its manifest, as an administrator's override would
/// (`{"device-rule": "spec-listed"}`); `"allow-add"` appends paths to its
/// installed allow-list; `"plugins-dir"`, a directory under
/// `tests/fixtures/FAMILY`, replaces the installed plugins),
/// and either the plan it must produce
/// (`expected.json`) or a text its error must contain (`expected-error.txt`).
///
/// Set `HOOKHOST_BLESS=1` to rewrite the `expected.json` files from the
/// current output (then review the diff).
pub fn fixture_case(family: &str, name: &str) {
    let case = fixtures().join(family).join(name);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let plugin = spec["plugin"].as_str().unwrap_or(family);
    let host = fake_host(spec["host"].as_str().unwrap());
    let installed = match spec["plugins-dir"].as_str() {
        Some(dir) => fixtures().join(family).join(dir),
        None => plugins().join("plugins.d"),
    };
    let mut fields = spec["manifest"].as_object().cloned().unwrap_or_default();
    if let Some(settings) = spec.get("settings") {
        fields.insert("settings".into(), settings.clone());
    }
    // Entries an administrator adds to the installed allow-list, with the
    // setting that names the path.
    if let Some(added) = spec["allow-add"].as_array() {
        let manifest = installed.join(format!("{plugin}.json"));
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        let mut allow = manifest["allow"].as_array().unwrap().clone();
        allow.extend(added.iter().cloned());
        fields.insert("allow".into(), allow.into());
    }
    let edited = (!fields.is_empty()).then(|| plugins_d_with(&installed, plugin, &fields));
    let plugins_d = match &edited {
        Some(dir) => dir.path().to_path_buf(),
        None => installed,
    };
    let args = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec!["test".into(), case.clone().into()];
        args.extend(["--plugins-dir".into(), plugins_d.clone().into()]);
        args.extend(["--host-root".into(), host.path().into()]);
        if let Some(stage) = spec["stage"].as_str() {
            args.extend(["--stage".into(), stage.into()]);
        }
        args.extend(extra.iter().map(Into::into));
        args
    };

    let expected_error = case.join("expected-error.txt");
    if expected_error.exists() {
        let want = std::fs::read_to_string(&expected_error).unwrap();
        let out = hookhost(args(&[]));
        assert!(!out.status.success(), "case {family}/{name} must fail");
        let err = stderr(&out);
        assert!(
            err.contains(want.trim()),
            "case {family}/{name}: stderr lacks {want:?}:\n{err}"
        );
        assert!(
            err.contains(&format!("plugin `{plugin}`")),
            "the error names the plugin `{plugin}`:\n{err}"
        );
        return;
    }

    let expected = case.join("expected.json");
    if std::env::var_os("HOOKHOST_BLESS").is_some() {
        let out = hookhost(args(&["--json"]));
        assert!(
            out.status.success(),
            "case {family}/{name}: {}",
            stderr(&out)
        );
        std::fs::write(&expected, &out.stdout).unwrap();
    }
    let out = hookhost(args(&["--expect", expected.to_str().unwrap()]));
    assert!(
        out.status.success(),
        "case {family}/{name}: plan differs:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    // --json prints exactly the expected file.
    let out = hookhost(args(&["--json"]));
    assert_eq!(stdout(&out), std::fs::read_to_string(&expected).unwrap());
}

/// The container paths of the device nodes in the expected plan of fixture
/// case `FAMILY/CASE`. Expected plans are blessed from hookhost's own
/// output: a test that claims what a case gives checks it here too.
pub fn expected_devices(family: &str, case: &str) -> Vec<String> {
    expected_plan(family, case)["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["container-path"].as_str().unwrap().to_string())
        .collect()
}

/// The expected plan of fixture case `FAMILY/CASE`, as JSON.
pub fn expected_plan(family: &str, case: &str) -> serde_json::Value {
    let path = fixtures().join(family).join(case).join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A copy of the installed `plugins.d` in which `plugin`'s manifest has these
/// settings instead of its own.
pub fn plugins_d_with_settings(plugin: &str, settings: &serde_json::Value) -> tempfile::TempDir {
    let fields = serde_json::Map::from_iter([("settings".to_string(), settings.clone())]);
    plugins_d_with(&plugins().join("plugins.d"), plugin, &fields)
}

/// A copy of the plugins directory `from` in which `plugin`'s manifest has
/// these top-level `fields` instead of its own.
pub fn plugins_d_with(
    from: &Path,
    plugin: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let manifest = dir.path().join(format!("{plugin}.json"));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    for (field, value) in fields {
        json[field] = value.clone();
    }
    std::fs::write(&manifest, json.to_string()).unwrap();
    dir
}

/// The plan of fixture case `FAMILY/CASE` when an administrator's override
/// (a second plugins directory, masking the vendor's manifest of `plugin`)
/// keeps only the allow-list entries for which `keep` is true, on the fake
/// host `host`.
pub fn plan_with_narrowed_allow_list(
    plugin: &str,
    case: &str,
    host: &str,
    keep: impl Fn(&str) -> bool,
) -> serde_json::Value {
    let host = fake_host(host);
    let vendor = plugins().join("plugins.d");
    let admin = tempfile::tempdir().unwrap();
    let manifest_file = format!("{plugin}.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vendor.join(&manifest_file)).unwrap())
            .unwrap();
    manifest["wasm"] = vendor
        .join(format!("{plugin}.wasm"))
        .to_str()
        .unwrap()
        .into();
    let narrowed: Vec<serde_json::Value> = manifest["allow"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| keep(p.as_str().unwrap()))
        .cloned()
        .collect();
    manifest["allow"] = narrowed.into();
    std::fs::write(admin.path().join(&manifest_file), manifest.to_string()).unwrap();

    let out = hookhost([
        "test".as_ref(),
        fixtures().join(case).as_os_str(),
        "--plugins-dir".as_ref(),
        vendor.as_os_str(),
        "--plugins-dir".as_ref(),
        admin.path().as_os_str(),
        "--host-root".as_ref(),
        host.path().as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The unprivileged user of the attacks on host paths: `nobody`.
pub const NOBODY: u32 = 65534;

/// The fake host `name` after the attack on allowed trees: `/opt/vendor` is
/// owned (and writable) by NOBODY, who has made `etc` in it a symlink to
/// `/etc`, which holds a fake `shadow` and a block device node `vda`
/// (254:0, a root disk).
pub fn host_with_vendor_etc_linked_to_etc(name: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let host = fake_host(name);
    let root = host.path();
    // NOBODY must be able to reach its directory.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/shadow"),
        "root:$6$not-a-real-hash:19000::::::\n",
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("etc/vda"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(254, 0),
    )
    .expect("mknod needs root");
    let vendor = root.join("opt/vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    std::os::unix::fs::chown(&vendor, Some(NOBODY), Some(NOBODY)).unwrap();
    let status = Command::new("/bin/sh")
        .args(["-c", "ln -s /etc etc"])
        .current_dir(&vendor)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(status.success(), "uid {NOBODY} could not make the link");
    host
}
