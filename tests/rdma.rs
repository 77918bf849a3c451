//! The RDMA policy, a plugin written in Python (`plugins/rdma/app.py`, made
//! a component by componentize-py), against the fixture cases in
//! `tests/fixtures/rdma/` (see `common::fixture_case`): vendors are not tied
//! to Rust.

use crate::common::*;

#[test]
fn a_python_plugin_gives_all_verbs_devices_and_the_connection_manager() {
    fixture_case("rdma", "all");
}

#[test]
fn a_python_plugin_selects_one_device_by_name_through_sysfs() {
    fixture_case("rdma", "one");
}

#[test]
fn a_python_plugin_fails_on_an_unknown_device_naming_what_the_host_has() {
    fixture_case("rdma", "unknown");
}

#[test]
fn a_python_plugin_is_inactive_without_its_variable() {
    fixture_case("rdma", "unset");
}

#[test]
fn a_python_plugin_fails_clearly_on_a_host_without_rdma() {
    fixture_case("rdma", "no-driver");
}

#[test]
fn a_python_plugin_passes_plugins_check() {
    let out = hookhost([
        "--plugins-dir".as_ref(),
        plugins().join("plugins.d").as_os_str(),
        "plugins".as_ref(),
        "check".as_ref(),
        "rdma".as_ref(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok      rdma: rdma 0.1.0 (hookhost)"),
        "{}",
        stdout(&out)
    );
}
