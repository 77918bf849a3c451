//! The command line as a user meets it: bad input gives one clear error that
//! names the file at fault and a non-zero exit, and changes nothing; the
//! `plugins` commands report what is installed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::*;

fn test_bundle(bundle: &Path, plugins: &Path) -> std::process::Output {
    hookhost([
        "test".as_ref(),
        bundle.as_os_str(),
        "--plugins-dir".as_ref(),
        plugins.as_os_str(),
    ])
}

fn assert_error(out: &std::process::Output, wants: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line of error:\n{err}");
    assert!(err.starts_with("hookhost: "), "{err}");
    for want in wants {
        assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    }
}

/// A plugin directory with one well-behaved plugin `h`.
fn noop_plugin() -> tempfile::TempDir {
    plugin_dir(
        "h",
        "hostile",
        r#"{"activation": {"always": true}, "settings": {"mode": "noop"}}"#,
    )
}

/// `hookhost plugins compile` of the plugins in `plugins` into `cache`.
fn compile_into(plugins: &Path, cache: &Path) -> std::process::Output {
    hookhost([
        "plugins".as_ref(),
        "compile".as_ref(),
        "--plugins-dir".as_ref(),
        plugins.as_os_str(),
        "--cache-dir".as_ref(),
        cache.as_os_str(),
    ])
}

#[test]
fn a_missing_bundle_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let out = test_bundle(Path::new("/nonexistent/bundle"), empty.path());
    assert_error(&out, &["/nonexistent/bundle", "not a directory"]);
}

#[test]
fn a_malformed_config_json_is_named_with_the_position() {
    let empty = tempfile::tempdir().unwrap();
    let b =
        bundle(r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": 7}}"#);
    let out = test_bundle(b.path(), empty.path());
    assert_error(
        &out,
        &[
            "config.json",
            "not valid JSON for an OCI runtime spec",
            "line 1",
        ],
    );
}

#[test]
fn a_config_json_without_root_is_refused() {
    let empty = tempfile::tempdir().unwrap();
    let b = bundle(r#"{"ociVersion": "1.0.2"}"#);
    let out = test_bundle(b.path(), empty.path());
    assert_error(&out, &["config.json", "field `root` is missing"]);
}

#[test]
fn a_malformed_state_file_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let b = bundle(&config_with_env(&[]));
    let state = b.path().join("state.json");
    for (text, want) in [
        ("{not json", "not valid JSON for an OCI state"),
        (
            r#"{"ociVersion": "1.0.2", "bundle": "/x"}"#,
            "field `id` is missing",
        ),
        (
            r#"{"ociVersion": "1.0.2", "id": "c1"}"#,
            "field `bundle` is missing",
        ),
    ] {
        std::fs::write(&state, text).unwrap();
        let out = hookhost([
            "test".as_ref(),
            b.path().as_os_str(),
            "--state".as_ref(),
            state.as_os_str(),
            "--plugins-dir".as_ref(),
            empty.path().as_os_str(),
        ]);
        assert_error(&out, &["state.json", want]);
    }
}

#[test]
fn a_manifest_with_an_unknown_field_is_named() {
    let plugins = plugin_dir(
        "gpu",
        "hostile",
        r#"{"activation": {"always": true}, "alow": []}"#,
    );
    let b = bundle(&config_with_env(&[]));
    let out = test_bundle(b.path(), plugins.path());
    assert_error(&out, &["gpu.json", "unknown field `alow`"]);
}

#[test]
fn a_manifest_with_a_bad_regex_is_named() {
    let plugins = plugin_dir(
        "gpu",
        "hostile",
        r#"{"activation": {"commands": ["nvidia-[smi"]}}"#,
    );
    let b = bundle(&config_with_env(&[]));
    let out = test_bundle(b.path(), plugins.path());
    assert_error(&out, &["gpu.json", "activation.commands", "nvidia-[smi"]);
}

#[test]
fn a_cache_writable_by_others_is_refused_and_nothing_is_written() {
    let plugins = noop_plugin();
    let b = bundle(&config_with_env(&[]));
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = hookhost([
        "test".as_ref(),
        b.path().as_os_str(),
        "--plugins-dir".as_ref(),
        plugins.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
    ]);
    assert_error(&out, &["cache directory", "writable by group or others"]);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    let mode = std::fs::metadata(cache.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o777);
}

#[test]
fn the_cache_is_filled_once_and_then_reused() {
    let plugins = noop_plugin();
    let cache = tempfile::tempdir().unwrap();
    let compile = || compile_into(plugins.path(), cache.path());
    let first = compile();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).starts_with("compiled h: "),
        "{}",
        stdout(&first)
    );
    let second = compile();
    assert!(
        stdout(&second).starts_with("cached   h: "),
        "{}",
        stdout(&second)
    );
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].ends_with(".cwasm") && entries[0].contains("wasmtime48.0.8"));
}

#[test]
fn a_cache_entry_writable_by_others_is_refused() {
    let plugins = noop_plugin();
    let cache = tempfile::tempdir().unwrap();
    assert!(compile_into(plugins.path(), cache.path()).status.success());
    let entry = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = compile_into(plugins.path(), cache.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("writable by group or others"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plugins_list_shows_enabled_disabled_masked_and_activation() {
    let vendor = plugin_dir("gpu", "hostile", r#"{"activation": {"env": ["GPU"]}}"#);
    std::fs::copy(
        plugins().join("test-plugins/hostile.wasm"),
        vendor.path().join("nic.wasm"),
    )
    .unwrap();
    std::fs::write(
        vendor.path().join("nic.json"),
        r#"{"activation": {"env": ["NIC"]}}"#,
    )
    .unwrap();
    let admin = tempfile::tempdir().unwrap();
    std::fs::write(admin.path().join("nic.json"), r#"{"disabled": true}"#).unwrap();
    let b = bundle(&config_with_env(&["GPU=1"]));

    let out = hookhost([
        "plugins".as_ref(),
        "list".as_ref(),
        "--plugins-dir".as_ref(),
        vendor.path().as_os_str(),
        "--plugins-dir".as_ref(),
        admin.path().as_os_str(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |name: &str, status: &str| {
        text.lines()
            .any(|l| l.split_whitespace().take(2).eq([name, status]))
    };
    assert!(line("gpu", "active"), "{text}");
    assert!(line("nic", "disabled"), "{text}");
    assert!(line("nic", "masked"), "{text}");
}

/// `hookhost plugins check` of one hostile plugin with these settings.
fn check_hostile(settings: &str) -> std::process::Output {
    let manifest = format!(r#"{{"activation": {{"always": true}}, "settings": {settings}}}"#);
    let dir = plugin_dir("h", "hostile", &manifest);
    hookhost([
        "plugins".as_ref(),
        "check".as_ref(),
        "--plugins-dir".as_ref(),
        dir.path().as_os_str(),
    ])
}

#[test]
fn plugins_check_runs_validate_settings() {
    let out = check_hostile(r#"{"mode": "noop"}"#);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ok      h: hostile "), "{text}");
}

#[test]
fn plugins_check_fails_on_settings_the_plugin_rejects() {
    let out = check_hostile(r#"{"mode": "fly"}"#);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("FAILED  plugin `h`"), "{text}");
    assert!(text.contains("validate-settings failed"), "{text}");
    assert!(text.contains("fly"), "{text}");
    assert!(stderr(&out).contains("1 plugin(s) failed the check"));
}

#[test]
fn plugins_check_of_the_nvidia_plugin_passes_with_its_shipped_manifest() {
    let out = hookhost([
        "plugins".as_ref(),
        "check".as_ref(),
        "nvidia".as_ref(),
        "--plugins-dir".as_ref(),
        plugins().join("plugins.d").as_os_str(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn an_unknown_plugin_name_is_an_error_listing_the_installed_ones() {
    let out = hookhost([
        "plugins".as_ref(),
        "check".as_ref(),
        "nosuch".as_ref(),
        "--plugins-dir".as_ref(),
        plugins().join("plugins.d").as_os_str(),
    ]);
    assert_error(
        &out,
        &["no enabled plugin named `nosuch`", "installed: ", "nvidia"],
    );
}

#[test]
fn help_describes_every_command() {
    let out = hookhost(["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for word in [
        "test",
        "plugins",
        "--plugins-dir",
        "--host-root",
        "--cache-dir",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}
