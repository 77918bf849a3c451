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

// The spec's linux.devices holds what a device plugin allocated (mlx5_1's
// uverbs1 and rdma_cm), and the image says RDMA_DEVICES=all.

#[test]
fn by_default_all_in_the_environment_gives_every_device_beyond_the_specs_allocation() {
    fixture_case("rdma", "allocated-one-env-all");
}

#[test]
fn with_spec_candidates_all_gives_only_the_device_the_spec_allocates() {
    fixture_case("rdma", "spec-candidates-all");
}

#[test]
fn with_spec_candidates_a_device_outside_the_allocation_fails_naming_the_allocated_ones() {
    fixture_case("rdma", "spec-candidates-outside-allocation");
}

/// The expected plans say what the cases above claim.
#[test]
fn the_allocation_cases_expect_what_their_names_say() {
    assert_eq!(
        expected_devices("rdma", "allocated-one-env-all"),
        [
            "/dev/infiniband/uverbs0",
            "/dev/infiniband/uverbs1",
            "/dev/infiniband/rdma_cm"
        ]
    );
    assert_eq!(
        expected_devices("rdma", "spec-candidates-all"),
        ["/dev/infiniband/uverbs1", "/dev/infiniband/rdma_cm"]
    );
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
