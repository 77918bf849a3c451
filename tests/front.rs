//! The `hookhost` front (host/src/front.rs): what it answers without the
//! engine, and that everything else reaches the engine intact. The front is
//! copied alone into a directory, where no `hookhost-engine` lies beside it:
//! whatever it hands over then fails, naming the engine it looked for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{bundle, config_with_env, plugin_dir, plugins, stderr, stdout};

/// The front, alone in a directory of its own.
fn lone_front() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let front = dir.path().join("hookhost");
    std::fs::copy(env!("CARGO_BIN_EXE_hookhost"), &front).unwrap();
    (dir, front)
}

/// Runs `front ARGS` with `stdin`, in an empty environment as under runc.
fn run(front: &Path, args: &[&std::ffi::OsStr], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(front)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn state(bundle: &Path) -> String {
    serde_json::json!({
        "ociVersion": "1.0.2", "id": "front-test", "status": "creating", "pid": 1,
        "bundle": bundle,
    })
    .to_string()
}

fn prestart(front: &Path, plugins_dir: &Path, bundle: &Path) -> Output {
    let args = [
        "--plugins-dir".as_ref(),
        plugins_dir.as_os_str(),
        "prestart".as_ref(),
    ];
    run(front, &args, &state(bundle))
}

#[test]
fn a_container_no_installed_plugin_is_active_for_is_done_without_the_engine() {
    let (_dir, front) = lone_front();
    let installed = plugins().join("plugins.d");
    let plain = bundle(&config_with_env(&["PATH=/bin"]));
    let out = prestart(&front, &installed, plain.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // NVIDIA_VISIBLE_DEVICES activates the NVIDIA policy: the engine's turn.
    let gpu = bundle(&config_with_env(&["NVIDIA_VISIBLE_DEVICES=all"]));
    let out = prestart(&front, &installed, gpu.path());
    assert!(!out.status.success());
    let engine = front.with_file_name("hookhost-engine");
    assert!(
        stderr(&out).contains(&format!("cannot run the engine {}", engine.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_engine_reads_the_state_the_front_already_read() {
    // A plugin active for every container: the front reads the state to
    // decide, then the engine must get the same bytes, or it fails on an
    // empty stdin.
    let always = plugin_dir(
        "noop",
        "hostile",
        r#"{"activation": {"always": true}, "settings": {"mode": "noop"}}"#,
    );
    let plain = bundle(&config_with_env(&["PATH=/bin"]));
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "--plugins-dir".as_ref(),
        always.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
        "prestart".as_ref(),
    ];
    let front = Path::new(env!("CARGO_BIN_EXE_hookhost"));
    let out = run(front, &args, &state(plain.path()));
    assert!(out.status.success(), "{}", stderr(&out));

    // A state that is not JSON is the engine's to report, in its words.
    let out = run(front, &args, "not json");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the OCI state on stdin"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn runtime_calls_that_create_nothing_or_that_no_plugin_is_active_for_go_straight_to_the_runtime() {
    let (_dir, front) = lone_front();
    let installed = plugins().join("plugins.d");
    let shim = |bundle: &Path, command: &str| {
        let args = [
            "--plugins-dir".as_ref(),
            installed.as_os_str(),
            "runtime".as_ref(),
            "--runtime-path".as_ref(),
            "/bin/echo".as_ref(),
            "--".as_ref(),
            "--root".as_ref(),
            "/run/x".as_ref(),
            command.as_ref(),
            "--bundle".as_ref(),
            bundle.as_os_str(),
            "ctr".as_ref(),
        ];
        run(&front, &args, "")
    };
    let plain = bundle(&config_with_env(&["PATH=/bin"]));
    let gpu = bundle(&config_with_env(&["NVIDIA_VISIBLE_DEVICES=all"]));
    let before = std::fs::read(gpu.path().join("config.json")).unwrap();

    // `state` and `delete` create nothing, whatever the bundle holds; a
    // `create` no plugin is active for leaves config.json as it is.
    for (bundle, command) in [(&gpu, "state"), (&gpu, "delete"), (&plain, "create")] {
        let out = shim(bundle.path(), command);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!(
                "--root /run/x {command} --bundle {} ctr\n",
                bundle.path().display()
            )
        );
    }
    assert_eq!(
        std::fs::read(gpu.path().join("config.json")).unwrap(),
        before
    );

    // A `create` the NVIDIA policy is active for is the engine's.
    let out = shim(gpu.path(), "create");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot run the engine"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(gpu.path().join("config.json")).unwrap(),
        before
    );
}

#[test]
fn every_other_command_reaches_the_engine_with_its_arguments_and_name() {
    let front = Path::new(env!("CARGO_BIN_EXE_hookhost"));
    let out = run(front, &["--version".as_ref()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("hookhost "), "{}", stdout(&out));

    let out = run(
        front,
        &["prestart".as_ref(), "--timeout".as_ref(), "0".as_ref()],
        "",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
}
