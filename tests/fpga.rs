//! The FPGA policies, built from `plugins/xilinx` and `plugins/intel-fpga`,
//! against the fixture cases in `tests/fixtures/xilinx/` and
//! `tests/fixtures/intel-fpga/` (see `common::fixture_case`).
//!
//! The fake host `hosts/xilinx` has three XRT devices on two cards; `card0`
//! (the BMC's display) and `renderD128` (an AMD GPU) are not theirs:
//!
//! | index | card | user function  | render node  | management node     | serial         |
//! |-------|------|----------------|--------------|---------------------|----------------|
//! | 0     | 0    | `0000:3b:00.1` | `renderD129` | `xclmgmt15104` (3b:00.0) | `21330621T04E` (U250) |
//! | 1     | 1    | `0000:88:00.1` | `renderD130` | `xclmgmt34816` (88:00.0) | `XFL1YV0M20E0` (U30)  |
//! | 2     | 1    | `0000:8a:00.1` | `renderD131` | `xclmgmt35328` (8a:00.0) | `XFL1YV0M20E0` (U30)  |
//!
//! XRT is in `/opt/xilinx/xrt`. `hosts/xilinx-empty` has the xocl driver
//! loaded and no device.
//!
//! The fake host `hosts/intel-fpga` has three PACs run by the DFL driver;
//! `hosts/intel-fpga-legacy` one run by OPAE 1.x's `intel-fpga` driver:
//!
//! | FPGA               | FME                | interface ID      | port                | AFU                  |
//! |--------------------|--------------------|-------------------|---------------------|----------------------|
//! | `region0` (D5005)  | `dfl-fme.0`        | `bfac4d85…` | `dfl-port.0`        | `d8424dc4…` (NLB0)   |
//! | `region2` (D5005)  | `dfl-fme.1`        | `bfac4d85…` | `dfl-port.1`        | `f7df405c…`          |
//! | `region4` (N3000)  | `dfl-fme.2`        | `69528db6…` | `dfl-port.2`        | `d8424dc4…` (NLB0)   |
//! | `intel-fpga-dev.0` | `intel-fpga-fme.0` | `9926ab6d…` | `intel-fpga-port.0` | `d8424dc4…` (NLB0)   |
//!
//! `hosts/intel-fpga-twins` has the two D5005 of `hosts/intel-fpga`
//! (`region0`, `region2`), both running NLB0, so that one pair fits either
//! port: `dfl-port.0` (508:0) unless the spec allocates `dfl-port.1` (508:1).

use crate::common::*;

fn xilinx(name: &str) {
    fixture_case("xilinx", name);
}

fn intel(name: &str) {
    fixture_case("intel-fpga", name);
}

// Xilinx / AMD XRT.

#[test]
fn xilinx_all_gives_every_devices_render_and_management_nodes_and_xrt_read_only() {
    xilinx("all");
}

#[test]
fn xilinx_an_index_selects_one_device_of_the_host() {
    xilinx("index");
}

#[test]
fn xilinx_a_pci_address_selects_that_device_only_not_the_rest_of_its_card() {
    xilinx("address");
}

#[test]
fn xilinx_a_card_index_selects_every_device_of_that_card() {
    xilinx("cards");
}

#[test]
fn xilinx_the_annotation_wins_over_the_environment() {
    xilinx("annotation");
}

#[test]
fn xilinx_the_runtime_shim_also_sets_xilinx_xrt() {
    xilinx("runtime-shim");
}

#[test]
fn xilinx_a_container_that_sets_xilinx_xrt_keeps_its_value() {
    xilinx("own-xilinx-xrt");
}

#[test]
fn xilinx_at_prestart_xilinx_xrt_is_left_unset_with_a_warning() {
    // The plan of `index` has no env (its expected.json says so); the log
    // says why and what to do instead.
    xilinx("index");
    let host = fake_host("xilinx");
    let out = test_plan(
        &fixtures().join("xilinx/index"),
        &plugins().join("plugins.d"),
        Some(host.path()),
        NO_ARGS,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("xilinx: warn: XILINX_XRT is left unset: ")
            && log.contains("`source /opt/xilinx/xrt/setup.sh` in the container"),
        "{log}"
    );
}

// The spec's linux.devices holds what a device plugin allocated (device 1:
// renderD130, xclmgmt34816), and the image says XILINX_VISIBLE_DEVICES=all.

#[test]
fn xilinx_by_default_all_in_the_environment_gives_every_device_beyond_the_specs_allocation() {
    xilinx("allocated-one-env-all");
}

#[test]
fn xilinx_with_spec_candidates_all_gives_only_the_device_the_spec_allocates() {
    xilinx("spec-candidates-all");
}

#[test]
fn xilinx_with_spec_candidates_a_device_outside_the_allocation_fails_naming_the_allocated_ones() {
    xilinx("spec-candidates-outside-allocation");
}

/// The expected plans say what the cases above claim.
#[test]
fn xilinx_the_allocation_cases_expect_what_their_names_say() {
    assert_eq!(expected_devices("xilinx", "allocated-one-env-all").len(), 6);
    assert_eq!(
        expected_devices("xilinx", "spec-candidates-all"),
        ["/dev/dri/renderD130", "/dev/xclmgmt34816"]
    );
}

#[test]
fn xilinx_unset_leaves_the_plugin_inactive() {
    xilinx("unset");
}

#[test]
fn xilinx_without_xrt_dir_gives_the_devices_only() {
    xilinx("no-xrt");
}

#[test]
fn xilinx_an_unknown_index_fails_naming_the_devices_the_host_has() {
    xilinx("unknown-index");
}

#[test]
fn xilinx_all_on_a_host_whose_driver_has_no_device_fails() {
    xilinx("all-without-devices");
}

#[test]
fn xilinx_a_host_without_the_xocl_driver_fails_clearly() {
    xilinx("no-driver");
}

// Intel OPAE / DFL.

#[test]
fn intel_a_region_and_afu_pair_selects_the_port_running_that_afu() {
    intel("region-afu");
}

#[test]
fn intel_the_afu_chooses_between_ports_of_one_interface_and_dashed_ids_match() {
    intel("afu-chooses-port");
}

#[test]
fn intel_each_pair_gets_its_own_port() {
    intel("three-pairs");
}

#[test]
fn intel_the_fme_setting_adds_the_ports_fme() {
    intel("fme");
}

#[test]
fn intel_the_older_intel_fpga_driver_gives_its_own_nodes() {
    intel("legacy");
}

#[test]
fn intel_unset_leaves_the_plugin_inactive() {
    intel("unset");
}

#[test]
fn intel_an_unknown_interface_id_fails_listing_the_hosts_fpgas() {
    intel("unknown-region");
}

#[test]
fn intel_an_afu_no_port_runs_fails_saying_to_program_it_on_the_host() {
    intel("afu-not-loaded");
}

#[test]
fn intel_a_region_without_its_afu_fails() {
    intel("missing-afu");
}

#[test]
fn intel_a_host_without_the_driver_fails_clearly() {
    intel("no-driver");
}

#[test]
fn intel_pair_numbers_may_have_gaps() {
    // FPGA_REGION_1 / FPGA_AFU_1 and FPGA_REGION_3 / FPGA_AFU_3, no 2.
    intel("gap");
}

#[test]
fn intel_pairs_numbered_past_nine_are_taken_in_numeric_order() {
    // Listed 10, 2, 1 in the spec; 1, 2, 10 in the plan (as text: 1, 10, 2).
    intel("past-nine");
}

#[test]
fn intel_a_malformed_pair_number_fails_naming_the_variable() {
    intel("malformed-number");
}

#[test]
fn intel_pairs_not_numbered_from_one_activate_the_plugin_without_the_annotation() {
    // The manifest's env-names match FPGA_REGION_2 as well as _1.
    intel("not-from-one");
}

#[test]
fn intel_the_region_mode_annotation_activates_pairs_not_numbered_from_one() {
    intel("region-mode");
}

#[test]
fn intel_ports_allocated_in_the_spec_are_the_only_candidates() {
    // dfl-port.0 fits as well and comes first; the spec allocates dfl-port.1.
    intel("allocated-port");
}

#[test]
fn intel_a_pair_no_allocated_port_fits_fails_listing_the_allocated_ports() {
    // The host's dfl-port.0 would fit; the spec allocates dfl-port.1 and .2.
    intel("allocated-ports-mismatch");
}

#[test]
fn intel_spec_devices_that_are_not_fpga_ports_leave_every_host_port_a_candidate() {
    intel("unrelated-spec-devices");
}
