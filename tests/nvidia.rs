//! The NVIDIA policy, built from `plugins/nvidia`, against the fixture cases
//! in `tests/fixtures/nvidia/` (see `common::fixture_case`).

use std::ffi::OsStr;

use crate::common::*;

fn run_case(name: &str) {
    fixture_case("nvidia", name);
}

#[test]
fn all_gpus_get_every_node_and_the_default_utility_compute_driver() {
    run_case("all");
}

#[test]
fn an_index_list_selects_those_gpus() {
    run_case("index-list");
}

#[test]
fn a_uuid_selects_that_gpu() {
    run_case("uuid");
}

#[test]
fn none_gives_the_driver_without_gpu_nodes() {
    run_case("none");
}

#[test]
fn void_injects_nothing() {
    run_case("void");
}

#[test]
fn unset_leaves_the_plugin_inactive() {
    run_case("unset");
}

#[test]
fn a_capability_subset_selects_only_its_libraries() {
    run_case("capabilities");
}

#[test]
fn all_capabilities_bring_graphics_video_display_and_compat32() {
    run_case("capabilities-all");
}

#[test]
fn an_unknown_index_fails_naming_the_gpus_the_host_has() {
    run_case("unknown-index");
}

#[test]
fn a_host_without_the_driver_fails_clearly() {
    run_case("no-driver");
}

#[test]
fn video_brings_the_compute_libraries_and_uvm_but_not_the_mps_executables() {
    run_case("capabilities-video");
}

#[test]
fn display_brings_the_graphics_libraries_and_the_modeset_node() {
    run_case("capabilities-display");
}

#[test]
fn ngx_brings_the_ngx_library() {
    run_case("capabilities-ngx");
}

#[test]
fn all_capabilities_include_ngx() {
    run_case("capabilities-all-ngx-host");
}

#[test]
fn all_with_another_capability_is_all() {
    run_case("capabilities-all-with-a-name");
}

#[test]
fn pci_bus_ids_select_gpus_in_any_case_with_or_without_the_domain() {
    run_case("pci-bus-id");
}

#[test]
fn an_unknown_pci_bus_id_fails_naming_the_bus_ids_the_host_has() {
    run_case("unknown-bus-id");
}

#[test]
fn a_uuid_matches_in_any_case_gpu_prefix_included() {
    run_case("uuid-any-case");
}

#[test]
fn all_anywhere_in_a_list_gives_every_gpu() {
    run_case("all-in-a-list");
}

#[test]
fn none_anywhere_in_a_list_wins_over_all_and_gives_the_driver_only() {
    run_case("none-in-a-list");
}

#[test]
fn void_anywhere_in_a_list_wins_over_all_and_injects_nothing() {
    run_case("void-in-a-list");
}

#[test]
fn the_special_values_match_in_any_case() {
    run_case("special-values-any-case");
}

#[test]
fn set_but_empty_is_void_and_injects_nothing() {
    run_case("empty");
}

#[test]
fn on_a_host_without_gpus_a_list_gives_the_driver_only() {
    run_case("no-gpus-list");
}

/// The plans of the cases above say what their names claim, beside the
/// cases they mirror.
#[test]
fn the_parity_cases_expect_what_their_names_say() {
    let plan = |case: &str| {
        std::fs::read_to_string(fixtures().join("nvidia").join(case).join("expected.json")).unwrap()
    };
    assert_eq!(
        plan("capabilities-all-with-a-name"),
        plan("capabilities-all")
    );
    assert_eq!(plan("all-in-a-list"), plan("all"));
    assert_eq!(plan("none-in-a-list"), plan("none"));
    assert_eq!(plan("special-values-any-case"), plan("none"));
    assert_eq!(plan("no-gpus-list"), plan("none"));
    assert_eq!(plan("void-in-a-list"), plan("void"));
    assert_eq!(plan("empty"), plan("void"));
    assert_eq!(gpu_nodes("pci-bus-id"), ["/dev/nvidia1", "/dev/nvidia0"]);
    assert_eq!(gpu_nodes("uuid-any-case"), ["/dev/nvidia1"]);
    let video = expected_devices("nvidia", "capabilities-video");
    assert!(video.contains(&"/dev/nvidia-uvm".to_string()), "{video:?}");
    let display = expected_devices("nvidia", "capabilities-display");
    assert!(
        display.contains(&"/dev/nvidia-modeset".to_string()),
        "{display:?}"
    );
    assert!(
        !display.contains(&"/dev/nvidia-uvm".to_string()),
        "{display:?}"
    );
    for case in ["capabilities-ngx", "capabilities-all-ngx-host"] {
        assert!(plan(case).contains("/libnvidia-ngx.so.550.54.14"), "{case}");
    }
    assert!(plan("capabilities-video").contains("/libcuda.so.550.54.14"));
    assert!(!plan("capabilities-video").contains("nvidia-cuda-mps"));
    assert!(plan("capabilities-display").contains("/libGLX_nvidia.so.550.54.14"));
}

// The spec's linux.devices holds the one GPU a device plugin allocated
// (GPU 1, with the control nodes), and the image says
// NVIDIA_VISIBLE_DEVICES=all.

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

#[test]
fn with_spec_candidates_a_spec_that_allocates_no_gpu_gets_nothing_whatever_the_environment() {
    run_case("spec-candidates-nothing-allocated");
}

#[test]
fn the_spec_listed_device_rule_refuses_a_gpu_the_spec_does_not_list_even_when_privileged() {
    run_case("device-rule-spec-listed");
}

#[test]
fn the_spec_listed_device_rule_with_spec_candidates_gives_the_allocated_gpu() {
    run_case("device-rule-spec-listed-spec-candidates");
}

#[test]
fn the_privileged_only_device_rule_refuses_an_unprivileged_container() {
    run_case("device-rule-privileged-only");
}

#[test]
fn the_privileged_only_device_rule_lets_a_privileged_container_have_every_gpu() {
    run_case("device-rule-privileged-only-privileged");
}

/// The GPU nodes of a case's expected plan (not the control nodes).
fn gpu_nodes(case: &str) -> Vec<String> {
    expected_devices("nvidia", case)
        .into_iter()
        .filter(|p| p.trim_start_matches("/dev/nvidia").parse::<u32>().is_ok())
        .collect()
}

/// The expected plans say what the cases above claim.
#[test]
fn the_allocation_cases_expect_what_their_names_say() {
    let both = ["/dev/nvidia0", "/dev/nvidia1"];
    assert_eq!(gpu_nodes("allocated-one-env-all"), both);
    assert_eq!(gpu_nodes("device-rule-privileged-only-privileged"), both);
    assert_eq!(gpu_nodes("spec-candidates-all"), ["/dev/nvidia1"]);
    assert_eq!(
        gpu_nodes("device-rule-spec-listed-spec-candidates"),
        ["/dev/nvidia1"]
    );
    assert!(expected_devices("nvidia", "spec-candidates-nothing-allocated").is_empty());
}

#[test]
fn expect_fails_with_a_readable_diff_when_the_plan_changes() {
    let case = fixtures().join("nvidia/uuid");
    let host = fake_host("nvidia");
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
            .unwrap();
    plan["devices"][0]["minor"] = 7.into();
    let tmp = tempfile::tempdir().unwrap();
    let changed = tmp.path().join("changed.json");
    std::fs::write(&changed, serde_json::to_string_pretty(&plan).unwrap()).unwrap();

    let out = test_plan(
        &case,
        &plugins().join("plugins.d"),
        Some(host.path()),
        &[OsStr::new("--expect"), changed.as_ref()],
    );
    assert_eq!(out.status.code(), Some(1));
    let diff = stdout(&out);
    assert!(diff.contains("-      \"minor\": 7,"), "{diff}");
    assert!(diff.contains("+      \"minor\": "), "{diff}");
    assert!(stderr(&out).contains("differs from"), "{}", stderr(&out));
}

#[test]
fn a_state_file_gives_the_container_its_id_and_the_bundle_argument_wins() {
    let case = fixtures().join("nvidia/all");
    let host = fake_host("nvidia");
    let out = test_plan(
        &case,
        &plugins().join("plugins.d"),
        Some(host.path()),
        &[
            OsStr::new("--state"),
            case.join("state.json").as_ref(),
            OsStr::new("--expect"),
            case.join("expected.json").as_ref(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_table_groups_requests_under_the_plugin() {
    let host = fake_host("nvidia");
    let out = test_plan(
        &fixtures().join("nvidia/uuid"),
        &plugins().join("plugins.d"),
        Some(host.path()),
        NO_ARGS,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    // Other installed plugins are listed as inactive; NVIDIA's requests
    // follow its own heading.
    let table = &table[table.find("nvidia: nvidia ").expect(&table)..];
    assert!(
        table.contains("  device    /dev/nvidia1  c 195:1"),
        "{table}"
    );
    assert!(
        !table.contains("/dev/nvidia0 "),
        "GPU 0 was not selected:\n{table}"
    );
    assert!(
        table.contains("  ldconfig  /usr/lib/x86_64-linux-gnu"),
        "{table}"
    );
}

#[test]
fn the_manifest_allow_list_is_what_the_policy_uses() {
    // Narrowing the allow-list (as an administrator's override would) hides
    // the libraries from the policy: the override is honoured, not bypassed.
    let plan =
        plan_with_narrowed_allow_list("nvidia", "nvidia/all", "nvidia", |p| !p.contains("/lib"));
    assert!(!plan["devices"].as_array().unwrap().is_empty());
    assert!(
        plan["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["host-path"].as_str().unwrap().contains("/lib")),
        "{plan}"
    );
}

#[test]
fn steps_lists_what_the_hook_would_do_in_its_order() {
    let host = fake_host("nvidia");
    let out = test_plan(
        &fixtures().join("nvidia/uuid"),
        &plugins().join("plugins.d"),
        Some(host.path()),
        &["--steps"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let actions: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    // Rules before any node; nodes, binds, links, the drop-in, ldconfig last.
    let first = |a: &str| actions.iter().position(|x| *x == a).unwrap();
    let last = |a: &str| actions.iter().rposition(|x| *x == a).unwrap();
    assert!(last("cgroup-allow") < first("mknod"), "{text}");
    assert!(last("mknod") < first("bind"), "{text}");
    assert!(last("bind") < first("symlink"), "{text}");
    assert!(last("symlink") < first("write"), "{text}");
    assert_eq!(actions.last(), Some(&"ldconfig"), "{text}");
    assert!(
        text.contains("cgroup-allow nvidia           c 195:1 rwm"),
        "the second GPU's rule:\n{text}"
    );
    assert!(
        text.contains("/etc/ld.so.conf.d/000-hookhost.conf"),
        "{text}"
    );
}

#[test]
fn a_legacy_cuda_image_without_nvidia_visible_devices_gets_every_gpu_and_capability() {
    run_case("legacy-cuda-image");
}

#[test]
fn a_cuda_image_with_nvidia_require_cuda_and_no_nvidia_visible_devices_gets_nothing() {
    run_case("legacy-cuda-image-require-cuda");
}

#[test]
fn nvidia_visible_devices_in_a_legacy_cuda_image_selects_as_usual() {
    run_case("legacy-cuda-image-index");
}

#[test]
fn a_legacy_cuda_image_with_spec_candidates_gets_the_allocated_gpus_only() {
    run_case("legacy-cuda-image-spec-candidates");
}

#[test]
fn compute_brings_libnvidia_tileiras_and_utility_the_imex_executables() {
    run_case("tileiras-imex");
}

#[test]
fn video_brings_libnvidia_tileiras_but_not_the_imex_executables() {
    run_case("tileiras-imex-video");
}

// NVIDIA_REQUIRE_* on the fake host `nvidia`: driver 550.54.14, which
// NVIDIA's table gives CUDA 12.4.

#[test]
fn a_met_cuda_requirement_gives_what_the_devices_ask_for() {
    run_case("require-cuda-met");
}

#[test]
fn an_unmet_cuda_requirement_fails_naming_it_and_the_cuda_the_driver_supports() {
    run_case("require-cuda-unmet");
}

#[test]
fn a_driver_range_that_holds_gives_what_the_devices_ask_for() {
    run_case("require-driver-range-met");
}

#[test]
fn a_driver_range_that_fails_names_the_failing_bound_and_the_driver() {
    run_case("require-driver-range-unmet");
}

#[test]
fn one_alternative_that_holds_is_enough() {
    run_case("require-alternatives-one-holds");
}

#[test]
fn a_legacy_cuda_image_newer_than_the_driver_fails_naming_its_cuda_version() {
    run_case("legacy-cuda-image-old-driver");
}

#[test]
fn nvidia_disable_require_turns_an_unmet_requirement_off() {
    run_case("require-disabled");
}

#[test]
fn nvidia_disable_require_turns_a_legacy_images_cuda_requirement_off() {
    run_case("legacy-cuda-image-old-driver-disabled");
}

#[test]
fn an_unmet_requirement_is_not_checked_when_nothing_is_injected() {
    run_case("require-unmet-void");
}

#[test]
fn a_brand_that_decides_fails_by_default_naming_it_and_the_setting() {
    run_case("require-brand-refuse");
}

#[test]
fn a_brand_that_decides_passes_with_unverifiable_requirements_ignore() {
    run_case("require-brand-ignore");
}

#[test]
fn a_brand_holds_when_the_container_gets_no_gpu() {
    run_case("require-brand-no-gpu");
}

#[test]
fn a_malformed_requirement_fails_naming_the_variable() {
    run_case("require-malformed");
}

/// A requirement that holds changes nothing in the plan: each passing case
/// plans what the case without the requirement plans.
#[test]
fn the_requirement_cases_plan_what_their_mirrors_plan() {
    let plan = |case: &str| {
        std::fs::read_to_string(fixtures().join("nvidia").join(case).join("expected.json")).unwrap()
    };
    for case in [
        "require-cuda-met",
        "require-driver-range-met",
        "require-alternatives-one-holds",
        "require-disabled",
        "require-brand-ignore",
    ] {
        assert_eq!(plan(case), plan("all"), "{case}");
    }
    assert_eq!(plan("require-unmet-void"), plan("void"));
    assert_eq!(plan("require-brand-no-gpu"), plan("none"));
    assert_eq!(
        plan("legacy-cuda-image-old-driver-disabled"),
        plan("legacy-cuda-image")
    );
}

#[test]
fn ignoring_a_requirement_only_nvml_could_check_says_so_in_the_log() {
    let host = fake_host("nvidia");
    let plugins_d = plugins_d_with_settings(
        "nvidia",
        &serde_json::json!({"unverifiable-requirements": "ignore"}),
    );
    let out = test_plan(
        &fixtures().join("nvidia/require-brand-ignore"),
        plugins_d.path(),
        Some(host.path()),
        NO_ARGS,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("nvidia: warn: NVIDIA_REQUIRE_CUDA: cannot tell whether cuda>=12.6 ")
            && log.contains("brand=tesla cannot be checked without NVML")
            && log.contains("not checked, as the setting `unverifiable-requirements` is `ignore`"),
        "{log}"
    );
}

// The driver's daemons, on the fake host `nvidia-ipc`: the sockets of
// nvidia-persistenced and nv-fabricmanager under /run (/var/run links
// there), an MPS pipe directory under a sticky /tmp and another under
// /run/nvidia/mps.

#[test]
fn utility_gets_the_daemons_sockets_and_a_pipe_directory_under_a_sticky_tmp_is_left_out() {
    run_case("ipc");
}

#[test]
fn compute_gets_the_mps_pipe_directory_the_settings_name() {
    run_case("ipc-mps-pipe-directory");
}

#[test]
fn utility_alone_gets_the_sockets_and_no_mps_pipe_directory() {
    run_case("ipc-utility-only");
}

#[test]
fn video_gets_the_mps_pipe_directory_and_no_sockets() {
    run_case("ipc-video");
}

/// The fields `a` and `b` of each entry of `list` in a case's expected plan.
fn expected_pairs(case: &str, list: &str, a: &str, b: &str) -> Vec<(String, String)> {
    let plan = expected_plan("nvidia", case);
    plan[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let field = |name: &str| entry[name].as_str().unwrap().to_string();
            (field(a), field(b))
        })
        .collect()
}

/// A case's expected binds, as (host path, container path).
fn binds(case: &str) -> Vec<(String, String)> {
    expected_pairs(case, "files", "host-path", "container-path")
}

#[test]
fn the_ipc_cases_expect_what_their_names_say() {
    let persistenced = (
        "/run/nvidia-persistenced/socket".to_string(),
        "/var/run/nvidia-persistenced/socket".to_string(),
    );
    let fabricmanager = (
        "/run/nvidia-fabricmanager/socket".to_string(),
        "/var/run/nvidia-fabricmanager/socket".to_string(),
    );
    let mps = ("/run/nvidia/mps".to_string(), "/run/nvidia/mps".to_string());
    let has = |case: &str, bind: &(String, String)| binds(case).contains(bind);
    for case in ["ipc", "ipc-mps-pipe-directory", "ipc-utility-only"] {
        assert!(has(case, &persistenced), "{case}");
        assert!(has(case, &fabricmanager), "{case}");
    }
    assert!(!has("ipc-video", &persistenced));
    assert!(has("ipc-mps-pipe-directory", &mps));
    assert!(has("ipc-video", &mps));
    assert!(!has("ipc-utility-only", &mps));
    assert!(binds("ipc")
        .iter()
        .all(|(host, _)| !host.starts_with("/tmp")));
}

// Kubernetes: the CDI annotations a device plugin writes, and the setting
// that stops NVIDIA_VISIBLE_DEVICES from choosing.

#[test]
fn an_nvidia_gpu_named_by_a_cdi_annotation_is_chosen_over_the_environment() {
    run_case("annotation-selects");
}

#[test]
fn a_cdi_annotation_alone_activates_the_policy_and_selects_its_gpu() {
    run_case("annotation-only");
}

#[test]
fn a_cdi_annotation_naming_another_vendors_device_leaves_the_environment_to_choose() {
    run_case("annotation-other-vendor");
}

#[test]
fn a_cdi_annotation_naming_a_gpu_the_host_lacks_fails_naming_the_annotation() {
    run_case("annotation-unknown-device");
}

#[test]
fn a_cdi_annotation_that_is_no_qualified_device_name_fails_naming_it() {
    run_case("annotation-not-qualified");
}

#[test]
fn with_the_envvar_refused_nvidia_visible_devices_gives_nothing() {
    run_case("envvar-refused");
}

#[test]
fn with_the_envvar_refused_a_legacy_cuda_image_gets_nothing() {
    run_case("envvar-refused-legacy-cuda-image");
}

#[test]
fn with_the_envvar_refused_the_cdi_annotation_still_selects() {
    run_case("envvar-refused-annotation");
}

#[test]
fn with_the_envvar_refused_a_privileged_container_still_selects_by_it() {
    run_case("envvar-refused-privileged");
}

// The device plugin's volume-mounts strategy: /dev/null mounted on
// /var/run/nvidia-container-devices/<id>, read with the setting
// accept-visible-devices-as-volume-mounts.

#[test]
fn a_device_mount_alone_activates_the_policy_and_selects_a_gpu_by_index() {
    run_case("volume-mount-index");
}

#[test]
fn a_device_mount_selects_a_gpu_by_uuid() {
    run_case("volume-mount-uuid");
}

#[test]
fn a_device_mount_is_chosen_over_nvidia_visible_devices() {
    run_case("volume-mount-over-env");
}

#[test]
fn with_the_setting_off_device_mounts_are_ignored_and_the_variable_chooses() {
    run_case("volume-mount-setting-off");
}

#[test]
fn with_the_envvar_refused_a_device_mount_still_selects() {
    run_case("volume-mount-envvar-refused");
}

#[test]
fn a_device_mount_naming_a_gpu_the_host_lacks_fails_naming_the_mount() {
    run_case("volume-mount-unknown-device");
}

#[test]
fn the_kubernetes_cases_expect_what_their_names_say() {
    assert_eq!(gpu_nodes("annotation-selects"), ["/dev/nvidia1"]);
    assert_eq!(gpu_nodes("annotation-only"), ["/dev/nvidia0"]);
    assert_eq!(gpu_nodes("annotation-other-vendor"), ["/dev/nvidia1"]);
    assert_eq!(gpu_nodes("envvar-refused-annotation"), ["/dev/nvidia0"]);
    assert_eq!(gpu_nodes("volume-mount-index"), ["/dev/nvidia1"]);
    assert_eq!(gpu_nodes("volume-mount-uuid"), ["/dev/nvidia0"]);
    assert_eq!(gpu_nodes("volume-mount-over-env"), ["/dev/nvidia0"]);
    assert_eq!(gpu_nodes("volume-mount-setting-off"), ["/dev/nvidia0"]);
    assert_eq!(gpu_nodes("volume-mount-envvar-refused"), ["/dev/nvidia1"]);
    assert_eq!(
        gpu_nodes("envvar-refused-privileged"),
        ["/dev/nvidia0", "/dev/nvidia1"]
    );
    for case in ["envvar-refused", "envvar-refused-legacy-cuda-image"] {
        assert!(expected_devices("nvidia", case).is_empty(), "{case}");
        assert!(binds(case).is_empty(), "{case}");
    }
}

// MIG, on the host `nvidia-mig`: GPU 1 (minor 1) has GPU instances 1 and 2
// with one compute instance each (capabilities 147/148 and 156/157, major
// 237 of nvidia-caps), and the inventory /run/hookhost/nvidia-mig.json says
// which MIG device is which (its third entry names an instance since gone).

#[test]
fn a_mig_uuid_gives_its_parent_gpu_and_its_gi_and_ci_capabilities() {
    run_case("mig-uuid");
}

#[test]
fn a_mig_index_gives_its_parent_gpu_and_its_gi_and_ci_capabilities() {
    run_case("mig-index");
}

#[test]
fn a_mig_device_beside_its_parent_and_another_gives_each_node_once() {
    run_case("mig-and-its-parent");
}

#[test]
fn all_gives_every_gpu_and_every_mig_device_without_the_inventory() {
    run_case("mig-all");
}

#[test]
fn a_mig_device_without_the_inventory_fails_naming_the_setting() {
    run_case("mig-no-inventory");
}

#[test]
fn a_mig_device_the_inventory_lacks_fails_listing_the_inventory() {
    run_case("mig-unknown");
}

#[test]
fn a_mig_device_whose_instance_is_gone_fails_calling_the_inventory_stale() {
    run_case("mig-stale-inventory");
}

#[test]
fn mig_config_devices_are_refused_to_an_unprivileged_container() {
    run_case("mig-config-unprivileged");
}

#[test]
fn mig_monitor_devices_are_refused_to_an_unprivileged_container() {
    run_case("mig-monitor-unprivileged");
}

#[test]
fn mig_config_devices_give_a_privileged_container_the_config_and_every_gpu_capability() {
    run_case("mig-config-privileged");
}

#[test]
fn mig_monitor_devices_give_a_privileged_container_the_monitor_capability() {
    run_case("mig-monitor-privileged");
}

#[test]
fn mig_config_devices_cannot_go_with_a_mig_device() {
    run_case("mig-config-with-a-mig-device");
}

/// The expected plans give the nodes the MIG cases claim.
#[test]
fn the_mig_cases_expect_what_their_names_say() {
    let caps = |case: &str| -> Vec<String> {
        nodes_under(case, "/dev/nvidia-caps/")
            .into_iter()
            .map(|p| {
                p.trim_start_matches("/dev/nvidia-caps/nvidia-cap")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(gpu_nodes("mig-uuid"), ["/dev/nvidia1"]);
    assert_eq!(caps("mig-uuid"), ["156", "157"]);
    assert_eq!(gpu_nodes("mig-index"), ["/dev/nvidia1"]);
    assert_eq!(caps("mig-index"), ["147", "148"]);
    assert_eq!(gpu_nodes("mig-and-its-parent"), ["/dev/nvidia1"]);
    assert_eq!(caps("mig-and-its-parent"), ["147", "148"]);
    assert_eq!(gpu_nodes("mig-all"), ["/dev/nvidia0", "/dev/nvidia1"]);
    assert_eq!(caps("mig-all"), ["147", "148", "156", "157"]);
    assert_eq!(gpu_nodes("mig-config-privileged"), ["/dev/nvidia1"]);
    assert_eq!(
        caps("mig-config-privileged"),
        ["1", "147", "148", "156", "157"]
    );
    // GPU 0 is not in MIG mode: the monitor capability alone.
    assert_eq!(gpu_nodes("mig-monitor-privileged"), ["/dev/nvidia0"]);
    assert_eq!(caps("mig-monitor-privileged"), ["2"]);
}

// Where the driver lives, on the host `nvidia-driver-root`: the driver is
// under /run/nvidia/driver, as NVIDIA's GPU Operator mounts its driver
// container, with soname links only (no libcuda.so,
// libnvidia-opticalflow.so or libGLX_indirect.so.0), with graphics' EGL
// platform libraries, libgbm's backend and vendor files; the host's own
// /usr/bin/nvidia-smi and /usr/share/nvidia/nvoptix.bin are others. GPU 0
// has the DRM nodes card1 and renderD128, the host's own.

#[test]
fn a_driver_root_gives_its_libraries_executables_and_firmware_at_the_standard_paths() {
    run_case("driver-root");
}

#[test]
fn a_driver_roots_vdpau_library_goes_to_the_vdpau_directory() {
    run_case("driver-root-video");
}

#[test]
fn the_links_nvidia_always_makes_are_made_where_the_host_lacks_them() {
    run_case("driver-root-always-links");
}

#[test]
fn a_driver_roots_graphics_files_go_to_their_standard_paths_and_drm_nodes_stay_the_hosts() {
    run_case("driver-root-graphics");
}

#[test]
fn a_driver_root_without_the_driver_fails_naming_the_setting() {
    run_case("driver-root-missing");
}

// CUDA forward compatibility: the image's /usr/local/cuda/compat against
// the fake host's driver 550.54.14.

#[test]
fn newer_compat_libraries_in_the_image_are_put_first_for_ldconfig() {
    run_case("cuda-compat-newer");
}

#[test]
fn compat_libraries_older_than_the_host_driver_are_left_alone() {
    run_case("cuda-compat-older");
}

#[test]
fn without_compute_the_compat_libraries_are_not_looked_at() {
    run_case("cuda-compat-utility-only");
}

#[test]
fn with_cuda_compat_off_newer_compat_libraries_are_left_alone() {
    run_case("cuda-compat-disabled");
}

#[test]
fn an_image_link_to_the_compat_directory_is_followed_inside_the_image() {
    run_case("cuda-compat-image-link");
}

/// The image directories each case puts first for ldconfig.
fn preferred_dirs(case: &str) -> Vec<String> {
    let plan = expected_plan("nvidia", case);
    plan["ldconfig"]["preferred-dirs"]
        .as_array()
        .map(|dirs| {
            dirs.iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_cuda_compat_cases_expect_what_their_names_say() {
    for case in ["cuda-compat-newer", "cuda-compat-image-link"] {
        assert_eq!(preferred_dirs(case), ["/usr/local/cuda/compat"], "{case}");
    }
    for case in [
        "cuda-compat-older",
        "cuda-compat-utility-only",
        "cuda-compat-disabled",
    ] {
        assert!(preferred_dirs(case).is_empty(), "{case}");
    }
}

// Graphics, on the host `nvidia-graphics`: GPU 0 (0000:3b:00.0) has the DRM
// nodes card1 and renderD128, GPU 1 (0000:86:00.0) card2 and renderD129,
// and a BMC's VGA (0000:02:00.0) card0; udev's by-path links lead to them.

#[test]
fn graphics_gives_only_the_selected_gpus_dri_nodes_and_their_by_path_links() {
    run_case("graphics-one-of-two");
}

#[test]
fn display_gives_the_x_servers_modules_and_configuration_with_the_dri_nodes() {
    run_case("graphics-display");
}

#[test]
fn graphics_without_a_gpu_gives_the_egl_vulkan_and_optix_files_at_their_container_paths() {
    run_case("graphics-none");
}

#[test]
fn graphics_on_a_host_without_dri_nodes_gives_the_rest() {
    run_case("graphics-no-dri");
}

/// The device nodes under `dir` in a case's expected plan.
fn nodes_under(case: &str, dir: &str) -> Vec<String> {
    expected_devices("nvidia", case)
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// The DRM nodes of a case's expected plan.
fn dri_nodes(case: &str) -> Vec<String> {
    nodes_under(case, "/dev/dri/")
}

/// The symlinks of a case's expected plan, as (container path, target).
fn symlinks(case: &str) -> Vec<(String, String)> {
    expected_pairs(case, "symlinks", "container-path", "target")
}

#[test]
fn the_driver_root_cases_expect_what_their_names_say() {
    let lib = "/usr/lib/x86_64-linux-gnu";
    let root = "/run/nvidia/driver";
    let bind = |path: &str| (format!("{root}{path}"), path.to_string());
    let link = |path: &str, target: &str| (path.to_string(), target.to_string());

    let given = binds("driver-root");
    for path in [
        format!("{lib}/libcuda.so.550.54.14"),
        format!("{lib}/libnvidia-ml.so.550.54.14"),
        "/usr/bin/nvidia-smi".to_string(),
        "/usr/bin/nvidia-cuda-mps-control".to_string(),
        "/lib/firmware/nvidia/550.54.14/gsp_ga10x.bin".to_string(),
    ] {
        assert!(given.contains(&bind(&path)), "{path}: {given:?}");
    }
    // Every driver file comes from the root: not the host's nvidia-smi.
    assert!(
        given.iter().all(|(host, _)| host.starts_with(root)),
        "{given:?}"
    );
    let links = symlinks("driver-root");
    assert!(links.contains(&link(&format!("{lib}/libcuda.so"), "libcuda.so.1")));
    // An absolute link in the root is the same path in the container.
    assert!(links.contains(&link(
        &format!("{lib}/libnvidia-ml.so.1"),
        &format!("{lib}/libnvidia-ml.so.550.54.14")
    )));

    assert!(binds("driver-root-video")
        .contains(&bind(&format!("{lib}/vdpau/libvdpau_nvidia.so.550.54.14"))));
    assert!(symlinks("driver-root-video").contains(&link(
        &format!("{lib}/vdpau/libvdpau_nvidia.so.1"),
        "libvdpau_nvidia.so.550.54.14"
    )));

    let links = symlinks("driver-root-always-links");
    for (path, target) in [
        ("libcuda.so", "libcuda.so.1"),
        ("libnvidia-opticalflow.so", "libnvidia-opticalflow.so.1"),
        ("libGLX_indirect.so.0", "libGLX_nvidia.so.550.54.14"),
    ] {
        assert!(
            links.contains(&link(&format!("{lib}/{path}"), target)),
            "{path}: {links:?}"
        );
    }
    // Only beside a library given: utility and compute bring no GLX.
    assert!(!symlinks("driver-root")
        .iter()
        .any(|(path, _)| path.ends_with("libGLX_indirect.so.0")));

    // Graphics: the EGL platform libraries, libgbm's backend and the
    // loaders' vendor files come from the root, at their standard paths
    // (the Vulkan files under /etc); the DRM nodes and their by-path links
    // are the host's.
    let given = binds("driver-root-graphics");
    let egl = "/usr/share/egl/egl_external_platform.d";
    let mut from_root: Vec<String> = [
        "libnvidia-egl-gbm.so.1.1.1",
        "libnvidia-egl-wayland.so.1.1.13",
        "libnvidia-egl-xcb.so.1.0.1",
        "libnvidia-egl-xlib.so.1.0.1",
        "libnvidia-allocator.so.550.54.14",
        "libGLX_nvidia.so.550.54.14",
    ]
    .iter()
    .map(|file| format!("{lib}/{file}"))
    .collect();
    from_root.extend(
        [
            "10_nvidia_wayland",
            "15_nvidia_gbm",
            "20_nvidia_xcb",
            "20_nvidia_xlib",
        ]
        .map(|json| format!("{egl}/{json}.json")),
    );
    from_root.push("/etc/glvnd/egl_vendor.d/10_nvidia.json".to_string());
    // Not the host's own /usr/share/nvidia/nvoptix.bin.
    from_root.push("/usr/share/nvidia/nvoptix.bin".to_string());
    for path in &from_root {
        assert!(given.contains(&bind(path)), "{path}: {given:?}");
    }
    for (on_host, at) in [
        (
            "/usr/share/vulkan/icd.d/nvidia_icd.json",
            "/etc/vulkan/icd.d/nvidia_icd.json",
        ),
        (
            "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
            "/etc/vulkan/implicit_layer.d/nvidia_layers.json",
        ),
    ] {
        let pair = (format!("{root}{on_host}"), at.to_string());
        assert!(given.contains(&pair), "{on_host}: {given:?}");
    }
    assert!(
        given.iter().all(|(host, _)| host.starts_with(root)),
        "{given:?}"
    );
    let links = symlinks("driver-root-graphics");
    for (path, target) in [
        (
            format!("{lib}/gbm/nvidia-drm_gbm.so"),
            "../libnvidia-allocator.so.1",
        ),
        (
            format!("{lib}/libnvidia-egl-gbm.so.1"),
            "libnvidia-egl-gbm.so.1.1.1",
        ),
        (
            "/dev/dri/by-path/pci-0000:3b:00.0-card".to_string(),
            "../card1",
        ),
    ] {
        assert!(links.contains(&link(&path, target)), "{path}: {links:?}");
    }
    assert!(links.iter().all(|(path, _)| !path.starts_with(root)));
    assert_eq!(
        dri_nodes("driver-root-graphics"),
        ["/dev/dri/card1", "/dev/dri/renderD128"]
    );
}

#[test]
fn the_graphics_cases_expect_what_their_names_say() {
    assert_eq!(gpu_nodes("graphics-one-of-two"), ["/dev/nvidia1"]);
    assert_eq!(
        dri_nodes("graphics-one-of-two"),
        ["/dev/dri/card2", "/dev/dri/renderD129"]
    );
    let by_path: Vec<(String, String)> = symlinks("graphics-one-of-two")
        .into_iter()
        .filter(|(link, _)| link.starts_with("/dev/dri/by-path/"))
        .collect();
    let link = |bus: &str, kind: &str, node: &str| {
        (
            format!("/dev/dri/by-path/pci-0000:{bus}-{kind}"),
            format!("../{node}"),
        )
    };
    assert_eq!(
        by_path,
        [
            link("86:00.0", "card", "card2"),
            link("86:00.0", "render", "renderD129")
        ]
    );
    assert_eq!(
        dri_nodes("graphics-display"),
        ["/dev/dri/card1", "/dev/dri/renderD128"]
    );
    assert!(dri_nodes("graphics-none").is_empty());
    assert!(dri_nodes("graphics-no-dri").is_empty());
    assert_eq!(
        gpu_nodes("graphics-no-dri"),
        ["/dev/nvidia0", "/dev/nvidia1"]
    );

    let has = |case: &str, host: &str, container: &str| {
        binds(case).contains(&(host.to_string(), container.to_string()))
    };
    let same = |case: &str, path: &str| has(case, path, path);
    let egl = "/usr/share/egl/egl_external_platform.d";
    for case in ["graphics-one-of-two", "graphics-display", "graphics-none"] {
        for json in [
            "10_nvidia_wayland",
            "15_nvidia_gbm",
            "20_nvidia_xcb",
            "20_nvidia_xlib",
        ] {
            assert!(same(case, &format!("{egl}/{json}.json")), "{case} {json}");
        }
        let lib = "/usr/lib/x86_64-linux-gnu";
        for file in [
            "libnvidia-egl-gbm.so.1.1.1",
            "libnvidia-egl-wayland.so.1.1.13",
            "libnvidia-egl-xcb.so.1.0.1",
            "libnvidia-egl-xlib.so.1.0.1",
            "libnvidia-allocator.so.550.54.14",
        ] {
            assert!(same(case, &format!("{lib}/{file}")), "{case} {file}");
        }
        assert!(!same(
            case,
            &format!("{lib}/libnvidia-egl-wayland.so.1.1.9")
        ));
        assert!(symlinks(case).contains(&(
            format!("{lib}/gbm/nvidia-drm_gbm.so"),
            "../libnvidia-allocator.so.1".to_string()
        )));
        assert!(same(case, "/usr/share/nvidia/nvoptix.bin"), "{case}");
        assert!(same(case, "/usr/share/glvnd/egl_vendor.d/10_nvidia.json"));
        // The Vulkan files where NVIDIA's toolkit puts them, under /etc.
        assert!(has(
            case,
            "/usr/share/vulkan/icd.d/nvidia_icd.json",
            "/etc/vulkan/icd.d/nvidia_icd.json"
        ));
        assert!(has(
            case,
            "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
            "/etc/vulkan/implicit_layer.d/nvidia_layers.json"
        ));
    }
    let xorg = [
        "/usr/lib/xorg/modules/drivers/nvidia_drv.so",
        "/usr/lib/xorg/modules/extensions/libglxserver_nvidia.so.550.54.14",
        "/usr/share/X11/xorg.conf.d/10-nvidia.conf",
    ];
    for path in xorg {
        assert!(same("graphics-display", path), "{path}");
        assert!(!same("graphics-one-of-two", path), "{path}");
    }
    assert!(symlinks("graphics-display").contains(&(
        "/usr/lib/xorg/modules/extensions/libglxserver_nvidia.so".to_string(),
        "libglxserver_nvidia.so.550.54.14".to_string()
    )));
}

// IMEX channels (NVIDIA_IMEX_CHANNELS) on the fake host `nvidia-imex`,
// which has channels 0, 1 and 3.

#[test]
fn imex_channels_by_number_get_their_nodes() {
    run_case("imex-two-channels");
}

#[test]
fn imex_channels_all_gets_every_channel_the_host_has() {
    run_case("imex-all");
}

#[test]
fn an_imex_channel_the_host_lacks_fails_naming_it() {
    run_case("imex-channel-missing");
}

#[test]
fn a_malformed_imex_channel_fails_naming_the_variable_and_the_value() {
    run_case("imex-malformed");
}

#[test]
fn an_unprivileged_container_with_the_envvar_refused_gets_no_imex_channel() {
    run_case("imex-envvar-refused");
}

/// The IMEX channel nodes of a case's expected plan.
fn imex_nodes(case: &str) -> Vec<String> {
    nodes_under(case, "/dev/nvidia-caps-imex-channels/")
}

/// The expected plans say what the IMEX cases above claim.
#[test]
fn the_imex_cases_expect_what_their_names_say() {
    let channel = |n: u32| format!("/dev/nvidia-caps-imex-channels/channel{n}");
    assert_eq!(imex_nodes("imex-two-channels"), [channel(3), channel(0)]);
    assert_eq!(imex_nodes("imex-all"), [channel(0), channel(1), channel(3)]);
    assert!(imex_nodes("imex-envvar-refused").is_empty());
    assert!(expected_devices("nvidia", "imex-envvar-refused").contains(&"/dev/nvidia0".into()));
    assert!(imex_nodes("tileiras-imex").is_empty());
}
