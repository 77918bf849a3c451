//! The Onload policy, built from `plugins/onload`, against the fixture cases
//! in `tests/fixtures/onload/` (see `common::fixture_case`) on the fake hosts
//! `onload` (driver nodes with dynamic majors 241-243, Onload 9 user space in
//! /usr/lib64), `onload-no-sfc-char` (the same without /dev/sfc_char) and
//! `bare`.

use crate::common::*;

fn run_case(name: &str) {
    fixture_case("onload", name);
}

#[test]
fn the_oci_solarflare_flag_gives_nodes_libraries_in_opt_onload_tools_and_profiles() {
    run_case("env");
}

#[test]
fn the_annotation_selects_the_container_as_the_flag_does() {
    run_case("annotation");
}

#[test]
fn a_false_annotation_and_a_lookalike_flag_leave_the_plugin_inactive() {
    run_case("not-selected");
}

#[test]
fn the_host_layout_keeps_libraries_at_their_host_paths() {
    run_case("host-layout");
}

#[test]
fn preload_at_prestart_fails_saying_how_to_preload_instead() {
    run_case("preload-prestart");
}

#[test]
fn preload_at_the_runtime_shim_sets_ld_preload_to_the_injected_library() {
    run_case("preload-runtime-shim");
}

#[test]
fn preload_puts_onload_before_the_containers_own_preloads() {
    run_case("preload-keeps-container-preloads");
}

#[test]
fn preload_at_prestart_is_no_error_under_the_onload_launcher() {
    run_case("preload-under-launcher");
}

#[test]
fn preload_at_prestart_is_no_error_when_the_container_preloads_onload() {
    run_case("preload-set-by-container");
}

#[test]
fn tcpdirect_adds_libonload_zf_libefcp_and_zf_stackdump() {
    run_case("tcpdirect");
}

#[test]
fn without_sfc_char_onload_goes_on_without_that_node() {
    run_case("no-sfc-char");
}

#[test]
fn tcpdirect_without_sfc_char_fails_clearly() {
    run_case("tcpdirect-no-sfc-char");
}

#[test]
fn a_host_without_the_driver_fails_clearly() {
    run_case("no-driver");
}

#[test]
fn a_narrowed_allow_list_hides_the_tools_and_profiles_but_not_onload() {
    // An administrator's override without the executables and profiles: the
    // policy does not see them, and gives the rest.
    let plan = plan_with_narrowed_allow_list("onload", "onload/env", "onload", |p| {
        !p.contains("bin/") && !p.contains("/profiles/")
    });
    assert_eq!(plan["devices"].as_array().unwrap().len(), 3, "{plan}");
    let files: Vec<&str> = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["container-path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "/opt/onload/usr/lib64/libonload.so",
            "/opt/onload/usr/lib64/libonload_ext.so.1.1.0"
        ],
        "{plan}"
    );
}
