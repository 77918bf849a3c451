//! The AMD GPU (ROCm) policy, built from `plugins/amd`, against the fixture
//! cases in `tests/fixtures/amd/` (see `common::fixture_case`).
//!
//! The fake host `hosts/amd` has three GPUs whose KFD node order is not
//! their PCI bus order, so the cases show the numbering:
//!
//! | index | PCI address    | KFD node | unique ID            | nodes                  |
//! |-------|----------------|----------|----------------------|------------------------|
//! | 0     | `0000:03:00.0` | 2        | `0x2f6a1c0e5b7d9384` | `card2`, `renderD129`  |
//! | 1     | `0000:83:00.0` | 3        | `0x7d41e92a0c3b5f16` | `card3`, `renderD130`  |
//! | 2     | `0000:c3:00.0` | 1        | `0xa3c58e1f60d2b749` | `card1`, `renderD128`  |
//!
//! `card0` is the BMC's display, never handed out; `/dev/kfd` is 235:0.
//! ROCm 6.2.0 is in `/opt/rocm-6.2.0/lib`, reached through `/opt/rocm`.

use crate::common::*;

fn run_case(name: &str) {
    fixture_case("amd", name);
}

/// The table `hookhost test` prints for a case on the `amd` host, with the
/// installed plugins.
fn table(name: &str) -> String {
    let host = fake_host("amd");
    let out = test_plan(
        &fixtures().join("amd").join(name),
        &plugins().join("plugins.d"),
        Some(host.path()),
        NO_ARGS,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn all_gives_kfd_and_every_gpus_card_and_render_node_in_bus_order() {
    run_case("all");
}

#[test]
fn unset_leaves_the_plugin_inactive() {
    run_case("unset");
    let table = table("unset");
    assert!(
        table.contains("amd: not active for this container"),
        "{table}"
    );
}

#[test]
fn an_empty_value_runs_the_plugin_but_injects_nothing() {
    run_case("empty");
    let table = table("empty");
    assert!(
        table.contains("amd: amd ") && table.contains("\n  (nothing)"),
        "{table}"
    );
}

#[test]
fn an_index_list_selects_those_gpus_by_bus_order() {
    run_case("index-list");
}

#[test]
fn a_range_selects_every_gpu_in_it() {
    run_case("range");
}

#[test]
fn a_unique_id_selects_that_gpu() {
    run_case("unique-id");
}

#[test]
fn an_unknown_unique_id_fails_listing_the_hosts_ids() {
    run_case("unknown-unique-id");
}

#[test]
fn a_range_past_the_last_gpu_fails_naming_the_missing_index() {
    run_case("unknown-index");
}

#[test]
fn a_malformed_value_fails_naming_it() {
    run_case("bad-value");
}

#[test]
fn a_host_without_the_driver_fails_clearly() {
    run_case("no-driver");
}

#[test]
fn the_libraries_setting_adds_its_group_with_soname_links_and_ldconfig() {
    run_case("libraries");
}

#[test]
fn the_shipped_settings_validate_and_an_unknown_library_group_is_refused() {
    let check = |plugins_d: &std::path::Path| {
        hookhost([
            "plugins".as_ref(),
            "check".as_ref(),
            "amd".as_ref(),
            "--plugins-dir".as_ref(),
            plugins_d.as_os_str(),
        ])
    };
    let out = check(&plugins().join("plugins.d"));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).starts_with("ok      amd: "),
        "{}",
        stdout(&out)
    );

    let bad = plugins_d_with_settings("amd", &serde_json::json!({"libraries": ["hip"]}));
    let out = check(bad.path());
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("unknown variant `hip`, expected `runtime` or `smi`"),
        "{}",
        stdout(&out)
    );
}

// The spec's linux.devices holds what a device plugin allocated (GPU 1:
// /dev/kfd, card3, renderD130), and the image says AMD_VISIBLE_DEVICES=all.

#[test]
fn by_default_all_in_the_environment_gives_every_gpu_beyond_the_specs_allocation() {
    run_case("allocated-one-env-all");
}

#[test]
fn with_spec_candidates_all_gives_only_the_gpu_the_spec_allocates() {
    run_case("spec-candidates-all");
}

#[test]
fn with_spec_candidates_a_gpu_outside_the_allocation_fails_naming_the_allocated_ones() {
    run_case("spec-candidates-outside-allocation");
}

/// The expected plans say what the cases above claim.
#[test]
fn the_allocation_cases_expect_what_their_names_say() {
    let renders = |case| -> Vec<String> {
        expected_devices("amd", case)
            .into_iter()
            .filter(|p| p.starts_with("/dev/dri/renderD"))
            .collect()
    };
    assert_eq!(
        renders("allocated-one-env-all"),
        [
            "/dev/dri/renderD129",
            "/dev/dri/renderD130",
            "/dev/dri/renderD128"
        ]
    );
    assert_eq!(
        expected_devices("amd", "spec-candidates-all"),
        ["/dev/kfd", "/dev/dri/card3", "/dev/dri/renderD130"]
    );
}
