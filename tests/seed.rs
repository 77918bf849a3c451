//! oci-injector-hook configs dropped into a plugins directory: the seed's
//! Onload sample config (`tests/fixtures/seed/plugins.d/solarflare.json`)
//! run by the host as a static policy, against the fixture cases in
//! `tests/fixtures/seed/` (see `common::fixture_case`).

use std::path::Path;
use std::process::Output;

use crate::common::*;

#[test]
fn the_onload_sample_config_gives_its_devices_binaries_libraries_and_profiles() {
    fixture_case("seed", "onload");
}

#[test]
fn a_bare_activation_flag_matches_a_variable_set_to_the_empty_string() {
    fixture_case("seed", "empty-flag");
}

#[test]
fn without_the_activation_flag_the_config_is_inactive() {
    fixture_case("seed", "unset");
}

#[test]
fn a_listed_device_missing_on_the_host_fails_naming_config_and_path() {
    fixture_case("seed", "no-driver");
}

// The host's device rule holds for static policies too (`device_rule` in
// the config, as an administrator's override would set it).

#[test]
fn the_spec_listed_device_rule_refuses_a_listed_device_the_spec_does_not_allocate() {
    fixture_case("seed", "device-rule-spec-listed");
}

#[test]
fn the_privileged_only_device_rule_refuses_an_unprivileged_container() {
    fixture_case("seed", "device-rule-privileged-only");
}

#[test]
fn the_privileged_only_device_rule_lets_a_privileged_container_have_the_devices() {
    fixture_case("seed", "device-rule-privileged-only-privileged");
    assert_eq!(
        expected_devices("seed", "device-rule-privileged-only-privileged"),
        expected_devices("seed", "onload")
    );
}

#[test]
fn a_symlink_to_an_unlisted_file_is_recreated_with_a_warning() {
    let host = fake_host("seed-onload");
    let out = test_with_plugins(&fixtures().join("seed/plugins.d"), host.path(), false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "solarflare: warn: /usr/lib64/libonload_ext.so is a symlink to \
             libonload_ext.so.2.0.0, which this config does not list"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plugins_list_check_and_compile_know_a_static_policy() {
    let dir = fixtures().join("seed/plugins.d");
    let run = |args: &[&str]| {
        let mut all = vec!["--plugins-dir", dir.to_str().unwrap()];
        all.extend(args);
        hookhost(all)
    };
    let list = run(&["plugins", "list"]);
    assert!(
        stdout(&list).contains("(oci-injector-hook config)"),
        "{}",
        stdout(&list)
    );
    let check = run(&["plugins", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("ok      solarflare: oci-injector-hook config"));
    let compile = run(&["plugins", "compile"]);
    assert!(compile.status.success(), "{}", stderr(&compile));
    assert!(stdout(&compile).contains("solarflare: nothing to compile"));
}

#[test]
fn a_misspelt_key_in_a_seed_config_is_an_error_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("foo.json"),
        r#"{"activation_flag": "OCI_FOO", "libaries": ["/usr/lib64/libfoo.so"]}"#,
    )
    .unwrap();
    let bundle = bundle(&config_with_env(&["OCI_FOO=1"]));
    let out = test_plan(bundle.path(), dir.path(), None, NO_ARGS);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("foo.json") && err.contains("unknown field `libaries`"),
        "{err}"
    );
}

#[test]
fn a_seed_config_cannot_reach_paths_it_does_not_list() {
    // A listed glob is matched against the host, never widened: a library
    // that exists but is not listed stays out even though it sits in a
    // listed directory.
    let host = fake_host("seed-onload");
    let out = test_with_plugins(&fixtures().join("seed/plugins.d"), host.path(), true);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let files: Vec<&str> = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["host-path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"/usr/lib64/libonload.so"), "{files:?}");
    for unlisted in [
        "/usr/lib64/libonload_ext.so.2.0.0",
        "/usr/libexec/onload/profiles/throughput.opf",
    ] {
        assert!(!files.contains(&unlisted), "{unlisted} in {files:?}");
    }
}

/// `hookhost test` of the seed case `onload` (`OCI_SOLARFLARE=1`) with the
/// plugins in `dir`, on the fake host `host`.
fn test_with_plugins(dir: &Path, host: &Path, json: bool) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        "test".into(),
        fixtures().join("seed/onload").into_os_string(),
        "--plugins-dir".into(),
        dir.into(),
        "--host-root".into(),
        host.into(),
    ];
    if json {
        args.push("--json".into());
    }
    hookhost(args)
}

/// The same with one config, `foo.json`, as the plan's JSON.
fn test_with_config(config: &str, host: &Path) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("foo.json"), config).unwrap();
    test_with_plugins(dir.path(), host, true)
}

#[test]
fn a_device_pattern_skips_what_is_not_a_device_node() {
    // /dev/onload* also matches a directory, as /dev/nvidia* matches
    // /dev/nvidia-caps on a real host.
    let host = fake_host("seed-onload");
    std::fs::create_dir(host.path().join("dev/onload-caps")).unwrap();
    let out = test_with_config(
        r#"{"activation_flag": "OCI_SOLARFLARE", "devices": ["/dev/onload*"]}"#,
        host.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devices: Vec<&str> = plan["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["host-path"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["/dev/onload", "/dev/onload_epoll"]);
    assert!(
        stderr(&out).contains("/dev/onload-caps (from /dev/onload*) is not a device node; skipped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_double_star_is_refused_when_the_config_loads() {
    let host = fake_host("seed-onload");
    let out = test_with_config(
        r#"{"activation_flag": "OCI_SOLARFLARE", "libraries": ["/usr/**/libonload.so"]}"#,
        host.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("foo.json") && err.contains("`**` is not supported"),
        "{err}"
    );
}

#[test]
fn a_listed_path_under_a_directory_another_user_linked_to_etc_is_refused_naming_both() {
    // Each entry alone, so that each kind of look-up is shown refused.
    let host = host_with_vendor_etc_linked_to_etc("seed-onload");
    let cases = [
        (
            "devices",
            "/opt/vendor/etc/*",
            "/opt/vendor/etc resolves to /etc",
        ),
        (
            "miscellaneous",
            "/opt/vendor/etc/*",
            "/opt/vendor/etc resolves to /etc",
        ),
        (
            "devices",
            "/opt/vendor/etc/vda",
            "/opt/vendor/etc/vda resolves to /etc/vda",
        ),
        (
            "miscellaneous",
            "/opt/vendor/etc/shadow",
            "/opt/vendor/etc/shadow resolves to /etc/shadow",
        ),
    ];
    for (key, path, refusal) in cases {
        let out = test_with_config(
            &format!(r#"{{"activation_flag": "OCI_SOLARFLARE", "{key}": ["{path}"]}}"#),
            host.path(),
        );
        let err = stderr(&out);
        assert!(!out.status.success(), "{key} {path}: {err}");
        assert!(
            err.contains(&format!(
                "{refusal}, which this plugin's allow-list does not name"
            )),
            "{key} {path}: {err}"
        );
        // No plan is printed: nothing of /etc reaches one.
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
    }
}

#[test]
fn a_listed_tree_another_user_can_write_is_refused_naming_the_directory() {
    let host = fake_host("seed-onload");
    let vendor = host.path().join("opt/vendor");
    std::fs::create_dir_all(vendor.join("etc")).unwrap();
    std::fs::write(vendor.join("etc/vendor.conf"), "x").unwrap();
    std::os::unix::fs::chown(&vendor, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = test_with_config(
        r#"{"activation_flag": "OCI_SOLARFLARE", "miscellaneous": ["/opt/vendor/etc/vendor.conf"]}"#,
        host.path(),
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "/opt/vendor/etc/vendor.conf: the directory /opt/vendor is owned by uid 65534 \
             with mode 0755"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}
