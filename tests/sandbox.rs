//! The sandbox, proven with real misbehaving components built from
//! `plugins/testing/`: each is stopped or refused with an error that names
//! it, and its manifest's `on-error` decides whether the container fails.

use crate::common::*;

/// Runs `hookhost test` on a plain bundle with one hostile plugin in `mode`.
fn run_hostile(mode: &str, extra_manifest: &str) -> std::process::Output {
    let manifest = format!(
        r#"{{"activation": {{"always": true}}, "settings": {{"mode": "{mode}"}}{extra_manifest}}}"#
    );
    let plugins = plugin_dir("hostile", "hostile", &manifest);
    let bundle = bundle(&config_with_env(&[]));
    test_plan(bundle.path(), plugins.path(), None, &["--json"])
}

fn assert_fails_with(out: &std::process::Output, want: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let err = stderr(out);
    assert!(
        err.contains("plugin `hostile`"),
        "the error names the plugin:\n{err}"
    );
    assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    assert!(out.stdout.is_empty(), "no plan is printed on failure");
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_time_limit() {
    let out = run_hostile("loop", r#", "limits": {"time-ms": 200}"#);
    assert_fails_with(&out, "exceeded its time limit of 200 ms");
}

#[test]
fn a_plugin_asleep_in_a_host_call_is_stopped_at_its_time_limit_not_by_the_watchdog() {
    let out = run_hostile("sleep", r#", "limits": {"time-ms": 200}"#);
    assert_fails_with(&out, "exceeded its time limit of 200 ms");
    assert!(!stderr(&out).contains("stuck"), "{}", stderr(&out));
}

/// A plugin directory with the hostile plugin in `mode` (skipped on error,
/// with a 300 ms budget) and the scripted one making a directory: hostile
/// runs first (plugins run sorted by name).
fn sleeper_and_scripted(mode: &str) -> tempfile::TempDir {
    let dir = plugin_dir(
        "hostile",
        "hostile",
        &format!(
            r#"{{"activation": {{"always": true}}, "settings": {{"mode": "{mode}"}},
                "limits": {{"time-ms": 300}}, "on-error": "skip"}}"#
        ),
    );
    std::fs::copy(
        plugins().join("test-plugins/scripted.wasm"),
        dir.path().join("scripted.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("scripted.json"),
        r#"{"activation": {"always": true},
            "settings": {"requests": [{"make-dir": {"container": "/var/lib/scripted", "mode": 493}}]}}"#,
    )
    .unwrap();
    dir
}

#[test]
fn a_skip_plugin_asleep_in_a_host_call_is_skipped_and_the_others_go_on() {
    // One long sleep, and a loop of short ones: both blocked in WASI's clock.
    for mode in ["sleep", "sleep-loop"] {
        let plugins = sleeper_and_scripted(mode);
        let bundle = bundle(&config_with_env(&[]));
        let started = std::time::Instant::now();
        let out = test_plan(bundle.path(), plugins.path(), None, &["--json"]);
        let err = stderr(&out);
        assert!(out.status.success(), "{mode}: {err}");
        assert!(
            err.contains("warning: skipped plugin `hostile`")
                && err.contains("exceeded its time limit of 300 ms"),
            "{mode}: {err}"
        );
        assert!(!err.contains("stuck"), "{mode}: not the watchdog: {err}");
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            plan["directories"],
            serde_json::json!([{"plugin": "scripted", "container-path": "/var/lib/scripted", "mode": "0755"}]),
            "{mode}"
        );
        // Far from the hour asked for (and the watchdog would have failed
        // the run at 600 ms): the sleep ended at the budget.
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

#[test]
fn a_short_sleep_within_the_budget_still_sleeps_its_whole_time() {
    let out = run_hostile("nap", "");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn requests_with_multi_mib_paths_are_refused_and_the_hook_memory_stays_bounded() {
    // Time enough for every request even on a host that keeps them (a
    // host before the caps took 20 s and peaked near 500 MiB).
    let plugins = plugin_dir(
        "hostile",
        "hostile",
        r#"{"activation": {"always": true}, "settings": {"mode": "huge-paths"},
            "limits": {"time-ms": 30000}}"#,
    );
    let (out, peak_kib) = test_plan_measured(plugins.path(), &[]);
    assert_fails_with(&out, "make-dir: invalid: /a/a/a");
    let err = stderr(&out);
    for refusal in [
        "a container path may be at most 4095 bytes long (PATH_MAX)",
        "a symlink target may be at most 4095 bytes long (PATH_MAX)",
        "a host path may be at most 4095 bytes long (PATH_MAX)",
        "a glob pattern may be at most 4095 bytes long (PATH_MAX)",
    ] {
        assert!(err.contains(refusal), "stderr lacks {refusal:?}:\n{err}");
    }
    assert!(peak_kib > 0, "the hook's memory was never read");
    // The plugin's 64 MiB, the engine, and one request in flight; a host
    // keeping 400 requests of 4 MiB peaks far above.
    assert!(
        peak_kib < 150 << 10,
        "the hook peaked at {} MiB",
        peak_kib >> 10
    );
}

/// `hookhost test` of an empty bundle with the plugins of `plugins`, and
/// the peak resident size of the hook in KiB.
fn test_plan_measured(plugins: &std::path::Path, args: &[&str]) -> (std::process::Output, u64) {
    let bundle = bundle(&config_with_env(&[]));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(["test", "--no-cache", "--plugins-dir"])
        .arg(plugins)
        .arg(bundle.path())
        .args(args)
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // VmHWM is the peak resident size so far: polled until the hook exits,
    // it misses at most the last moments of the run.
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    (child.wait_with_output().unwrap(), peak_kib)
}

#[test]
fn a_plugin_that_panics_in_describe_is_reported_as_trapped_there() {
    let out = run_hostile("panic-describe", "");
    assert_fails_with(&out, "trapped in `describe`: wasm trap: wasm `unreachable`");
}

#[test]
fn a_plugin_recursing_without_end_is_stopped_by_its_stack() {
    // Rust's stack on wasm32 is in linear memory: running off its end is an
    // access out of bounds, caught like any other.
    let out = run_hostile("recurse", "");
    assert_fails_with(
        &out,
        "trapped in `apply`: wasm trap: out of bounds memory access",
    );
}

#[test]
fn a_hundred_thousand_requests_stop_at_the_cap_of_ten_thousand() {
    let out = run_hostile("many-requests", "");
    assert_fails_with(
        &out,
        "request 10000: invalid: more than 10000 requests from one policy",
    );
}

#[test]
fn a_million_log_lines_keep_a_thousand() {
    let out = run_hostile("log-million", r#", "limits": {"time-ms": 30000}"#);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hostile: warn: 999000 more log lines dropped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn each_misbehaving_skip_plugin_is_skipped_by_name_the_others_plan_kept_and_memory_bounded() {
    let cases = [
        ("loop", "exceeded its time limit of 300 ms"),
        ("alloc", "exceeded its memory limit of 64 MiB"),
        ("recurse", "trapped in `apply`"),
        ("panic-describe", "trapped in `describe`"),
        ("many-requests", "more than 10000 requests from one policy"),
        ("trap", "trapped in `apply`"),
    ];
    for (mode, why) in cases {
        let plugins = sleeper_and_scripted(mode);
        let (out, peak_kib) = test_plan_measured(plugins.path(), &["--json"]);
        let err = stderr(&out);
        assert!(out.status.success(), "{mode}: {err}");
        assert!(
            err.contains("warning: skipped plugin `hostile`") && err.contains(why),
            "{mode}: {err}"
        );
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            plan["directories"],
            serde_json::json!([{"plugin": "scripted", "container-path": "/var/lib/scripted", "mode": "0755"}]),
            "{mode}: the other plugin's plan, and nothing of hostile's"
        );
        // The plugin's 64 MiB, the engine and hookhost's own.
        assert!(
            peak_kib > 0 && peak_kib < 150 << 10,
            "{mode}: peak {peak_kib} KiB"
        );
    }
}

#[test]
fn a_plugin_flooding_its_log_keeps_a_thousand_lines_and_is_told_how_many_were_dropped() {
    let out = run_hostile("log-flood", "");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("hostile: info: line 999\n"), "{err}");
    assert!(!err.contains("line 1000\n"), "{err}");
    assert!(
        err.contains(
            "hostile: warn: 99000 more log lines dropped: a plugin's log keeps at most 1000"
        ),
        "{err}"
    );
}

#[test]
fn a_plugin_that_allocates_without_bound_is_stopped_at_its_memory_limit() {
    let out = run_hostile("alloc", r#", "limits": {"memory-mib": 16}"#);
    assert_fails_with(&out, "exceeded its memory limit of 16 MiB");
}

/// A policy component whose core module defines `memories` memories of
/// `initial` pages each and whose `apply` grows each by `grow` pages in turn
/// (trapping if one is refused); the other exports succeed with nothing.
/// Written as text: no toolchain emits a component of several memories.
fn multi_memory_component(memories: usize, initial: u32, grow: u32) -> Vec<u8> {
    let defs: String = (0..memories)
        .map(|i| format!("(memory $m{i} {initial})"))
        .collect();
    let grows: String = (0..memories)
        .map(|i| {
            format!("(if (i32.lt_s (memory.grow $m{i} (i32.const {grow})) (i32.const 0)) (then unreachable))")
        })
        .collect();
    policy_component(&defs, &format!("{grows} i32.const 0"))
}

/// A policy component written by hand: core module items `defs` (memories,
/// data), and `apply`'s core body, which returns the address of its result.
/// What no compiler for a safe language would emit can be said here.
fn policy_component(defs: &str, apply: &str) -> Vec<u8> {
    let string_result = "(result (error string))";
    let devices_result = "(result (list string) (error string))";
    let info = r#"(record (field "name" string) (field "vendor" string) (field "version" string) (field "summary" string))"#;
    let opts = r#"(memory (core memory $i "memory")) (realloc (core func $i "realloc"))"#;
    wat::parse_str(format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    {defs}
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable)
    ;; Results at address 0 of a zeroed memory: empty strings, `ok`, no devices.
    (func (export "describe") (result i32) i32.const 0)
    (func (export "validate-settings") (param i32 i32) (result i32) i32.const 0)
    (func (export "devices") (result i32) i32.const 0)
    (func (export "apply") (result i32) {apply}))
  (core instance $i (instantiate $m))
  (type $info {info})
  (func $describe (result $info) (canon lift (core func $i "describe") {opts}))
  (func $validate (param "settings" string) (result {string_result})
    (canon lift (core func $i "validate-settings") {opts}))
  (func $devices (result {devices_result}) (canon lift (core func $i "devices") {opts}))
  (func $apply (result {string_result}) (canon lift (core func $i "apply") {opts}))
  ;; An interface's record must be exported by name: re-exported through a
  ;; component, as wit-component does.
  (component $shim
    (type $info' {info})
    (import "info" (type $info (eq $info')))
    (import "describe" (func $d (result $info)))
    (import "validate" (func $v (param "settings" string) (result {string_result})))
    (import "devices" (func $ds (result {devices_result})))
    (import "apply" (func $a (result {string_result})))
    (export $info-out "plugin-info" (type $info))
    (export "describe" (func $d) (func (result $info-out)))
    (export "validate-settings" (func $v))
    (export "devices" (func $ds))
    (export "apply" (func $a)))
  (instance $policy (instantiate $shim
    (with "info" (type $info))
    (with "describe" (func $describe))
    (with "validate" (func $validate))
    (with "devices" (func $devices))
    (with "apply" (func $apply))))
  (export "hookhost:policy/policy@0.1.1" (instance $policy)))"#
    ))
    .unwrap()
}

/// Runs `hookhost test` with the component `wasm` as plugin `hostile`.
fn run_component(wasm: &[u8], memory_mib: u64) -> std::process::Output {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), wasm).unwrap();
    std::fs::write(
        plugins.path().join("hostile.json"),
        format!(
            r#"{{"activation": {{"always": true}}, "limits": {{"memory-mib": {memory_mib}}}}}"#
        ),
    )
    .unwrap();
    let bundle = bundle(&config_with_env(&[]));
    test_plan(bundle.path(), plugins.path(), None, &["--json"])
}

#[test]
fn strings_a_plugin_hands_over_that_are_not_utf8_or_run_past_its_memory_are_traps() {
    // `apply` returns `err(string)`: the discriminant 1 at 64, the string's
    // address and length at 68 and 72, its bytes at 96 (`describe` reads
    // its empty record below 64).
    let result = |len: &str| {
        format!(
            r#"(data (i32.const 64) "\01\00\00\00\60\00\00\00{len}") (data (i32.const 96) "\ff\fe\fd")"#
        )
    };
    let invalid = policy_component(&result(r"\03\00\00\00"), "i32.const 64");
    let out = run_component(&invalid, 16);
    assert_fails_with(&out, "trapped in `apply`");
    assert!(stderr(&out).contains("utf-8"), "{}", stderr(&out));
    // Two GiB claimed from a memory of one page.
    let overlong = policy_component(&result(r"\00\00\00\80"), "i32.const 64");
    let out = run_component(&overlong, 16);
    assert_fails_with(&out, "trapped in `apply`");
    assert!(stderr(&out).contains("out of bounds"), "{}", stderr(&out));
}

#[test]
fn memories_each_under_the_memory_limit_are_stopped_together_over_it() {
    // Three memories grown to 49 pages (3 MiB) each: 9 MiB in all.
    let wasm = multi_memory_component(3, 1, 48);
    let out = run_component(&wasm, 16);
    assert!(out.status.success(), "under the limit: {}", stderr(&out));
    let out = run_component(&wasm, 4);
    assert_fails_with(&out, "exceeded its memory limit of 4 MiB");
    // The same, declared at their full size: refused as it is instantiated.
    let out = run_component(&multi_memory_component(3, 49, 0), 4);
    assert_fails_with(&out, "exceeded its memory limit of 4 MiB");
}

#[test]
fn a_component_with_too_many_memories_is_refused() {
    // Empty memories use no cap, but each is an address-space reservation.
    let out = run_component(&multi_memory_component(7, 0, 0), 4);
    assert!(out.status.success(), "8 memories: {}", stderr(&out));
    let out = run_component(&multi_memory_component(8, 0, 0), 4);
    assert_fails_with(&out, "memory count too high");
}

#[test]
fn a_plugin_asking_outside_its_allow_list_is_refused_per_request() {
    let out = run_hostile("escape", "");
    assert_fails_with(&out, "/etc/shadow is not in this plugin's allow-list");
    assert!(stderr(&out).contains("/dev/mem is not in this plugin's allow-list"));
}

#[test]
fn a_plugin_that_traps_is_reported_as_trapped() {
    let out = run_hostile("trap", "");
    assert_fails_with(&out, "trapped");
}

#[test]
fn on_error_skip_drops_the_failing_plugin_and_keeps_the_container() {
    let out = run_hostile(
        "loop",
        r#", "limits": {"time-ms": 100}, "on-error": "skip""#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["devices"], serde_json::json!([]));
    let err = stderr(&out);
    assert!(err.contains("warning: skipped plugin `hostile`"), "{err}");
    assert!(err.contains("time limit"), "{err}");
}

#[test]
fn a_well_behaved_plugin_gives_an_empty_plan() {
    let out = run_hostile("noop", "");
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(plan["files"].as_array().unwrap().is_empty());
}

#[test]
fn a_component_for_another_wit_major_version_is_refused_by_name() {
    let plugins = plugin_dir("future", "future", r#"{"activation": {"always": true}}"#);
    let bundle = bundle(&config_with_env(&[]));
    let out = test_plan(bundle.path(), plugins.path(), None, NO_ARGS);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("plugin `future`"), "{err}");
    assert!(
        err.contains("targets hookhost:policy@1.0.0, which this host does not speak"),
        "{err}"
    );
}

#[test]
fn a_component_for_a_newer_patch_than_the_host_speaks_is_refused_by_name() {
    // A 0.1.9 plugin may import functions a 0.1.1 host does not have: it is
    // refused before anything runs, with a message saying what to do.
    let plugins = plugin_dir("newer", "newer", r#"{"activation": {"always": true}}"#);
    let bundle = bundle(&config_with_env(&[]));
    let out = test_plan(bundle.path(), plugins.path(), None, NO_ARGS);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("plugin `newer`"), "{err}");
    assert!(
        err.contains("targets hookhost:policy@0.1.9, which this host does not speak")
            && err.contains("update hookhost"),
        "{err}"
    );
}

#[test]
fn a_plugin_built_against_an_earlier_0_1_release_still_loads_and_works() {
    // `previous` imports hookhost:policy/*@0.1.0; this host provides 0.1.1.
    let plugins = plugin_dir(
        "previous",
        "previous",
        r#"{"activation": {"always": true}, "allow": ["/dev/null"]}"#,
    );
    let bundle = bundle(&config_with_env(&["PREVIOUS_DEVICE=/dev/null"]));
    let out = test_plan(bundle.path(), plugins.path(), None, &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let device = &plan["devices"][0];
    assert_eq!(device["host-path"], "/dev/null");
    assert_eq!(
        (device["major"].as_u64(), device["minor"].as_u64()),
        (Some(1), Some(3))
    );
}

fn with_wasm_bytes(bytes: &[u8]) -> String {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("odd.wasm"), bytes).unwrap();
    std::fs::write(
        plugins.path().join("odd.json"),
        r#"{"activation": {"always": true}}"#,
    )
    .unwrap();
    let bundle = bundle(&config_with_env(&[]));
    let out = test_plan(bundle.path(), plugins.path(), None, NO_ARGS);
    assert_eq!(out.status.code(), Some(1));
    stderr(&out)
}

#[test]
fn a_core_module_is_refused_as_not_a_component() {
    // The smallest valid core module: magic and version 1.
    let err = with_wasm_bytes(b"\0asm\x01\0\0\0");
    assert!(err.contains("plugin `odd`"), "{err}");
    assert!(
        err.contains("is a core WebAssembly module, not a component"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let err = with_wasm_bytes(b"#!/bin/sh\necho hi\n");
    assert!(
        err.contains("plugin `odd`") && err.contains("is not a WebAssembly component"),
        "{err}"
    );
}

#[test]
fn wasi_gives_a_plugin_no_environment_arguments_or_files() {
    let manifest = r#"{"activation": {"always": true}, "settings": {"mode": "wasi"}}"#;
    let plugins = plugin_dir("hostile", "hostile", manifest);
    let bundle = bundle(&config_with_env(&["SECRET=1"]));
    // Run with an environment of its own, which a careless WasiCtx would pass on.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(["test", "--no-cache", "--plugins-dir"])
        .arg(plugins.path())
        .arg(bundle.path())
        .env("HOOKHOST_TEST_SECRET", "leak")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_copy_through_a_directory_another_user_linked_to_etc_is_refused_naming_both() {
    let host = host_with_vendor_etc_linked_to_etc("bare");
    let manifest = serde_json::json!({
        "activation": {"always": true},
        "allow": ["/opt/vendor/etc/*"],
        "settings": {"requests": [
            {"copy": {"host": "/opt/vendor/etc/shadow", "container": "/shadow"}}
        ]},
    });
    let plugins = plugin_dir("scripted", "scripted", &manifest.to_string());
    let bundle = bundle(&config_with_env(&[]));
    let out = test_plan(
        bundle.path(),
        plugins.path(),
        Some(host.path()),
        &["--json"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("plugin `scripted`"), "{err}");
    assert!(
        err.contains(
            "/opt/vendor/etc/shadow resolves to /etc/shadow, \
             which this plugin's allow-list does not name"
        ),
        "{err}"
    );
    // No plan is printed: nothing of /etc reaches one.
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}
