//! The command line as a user meets it: bad input gives one clear error that
//! names the file at fault and a non-zero exit, and changes nothing; the
//! `plugins` commands report what is installed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use std::ffi::OsStr;

use crate::common::*;

fn test_bundle(bundle: &Path, plugins: &Path) -> std::process::Output {
    test_plan(bundle, plugins, None, NO_ARGS)
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
        let out = test_plan(
            b.path(),
            empty.path(),
            None,
            &[OsStr::new("--state"), state.as_ref()],
        );
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
    let out = test_plan(
        b.path(),
        plugins.path(),
        None,
        &[OsStr::new("--cache-dir"), cache.path().as_ref()],
    );
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

/// Issue 8, item 5: a user who owns a directory above root's cache swaps
/// the cache for a symlink to a directory of theirs, holding a precompiled
/// component at the exact name root's hookhost will look for.
#[test]
fn a_cache_under_a_directory_another_user_owns_is_refused_and_their_entry_never_loaded() {
    const NOBODY: u32 = 65534;
    let plugins = noop_plugin();
    let top = tempfile::tempdir().unwrap();
    for dir in [plugins.path(), top.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let home = top.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let cache = home.join("cache");
    let first = compile_into(plugins.path(), &cache);
    assert!(first.status.success(), "{}", stderr(&first));
    // The directory is now the user's, and so is what they do in it.
    std::os::unix::fs::chown(&home, Some(NOBODY), None).unwrap();
    let as_user = |program: &str, args: &[&std::ffi::OsStr]| {
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(program)
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .env_clear()
            .current_dir(&home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}: {}", stderr(&out));
    };
    let evil = home.join("evil");
    as_user(
        env!("CARGO_BIN_EXE_hookhost"),
        &[
            "plugins".as_ref(),
            "compile".as_ref(),
            "--plugins-dir".as_ref(),
            plugins.path().as_os_str(),
            "--cache-dir".as_ref(),
            evil.as_os_str(),
        ],
    );
    as_user(
        "/bin/sh",
        &["-c".as_ref(), "mv cache old && ln -s evil cache".as_ref()],
    );
    let names = |dir: &Path| -> Vec<_> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert_eq!(
        names(&evil),
        names(&home.join("old")),
        "planted at the exact name"
    );

    let out = compile_into(plugins.path(), &cache);
    assert_error(
        &out,
        &[&format!(
            "cache directory {}: its parent {} (owner uid 65534, mode 0755) is owned by neither root nor the running user",
            cache.display(),
            home.display()
        )],
    );
    assert!(!stdout(&out).contains("cached"), "{}", stdout(&out));
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

/// Runs hookhost with `args` and `stdin`, as `hookhost()` does, and kills it
/// if it is not done within `limit`: a test of a hang must not hang.
fn hookhost_within(
    args: &[&std::ffi::OsStr],
    stdin: std::process::Stdio,
    limit: std::time::Duration,
) -> (std::process::Child, Option<std::process::Output>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(args)
        .env_clear()
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            let mut output = std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_end(&mut output.stdout)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_end(&mut output.stderr)
                .unwrap();
            return (child, Some(output));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    (child, None)
}

/// A bundle whose config.json has been replaced by `make(path)`.
fn bundle_with_config(make: impl FnOnce(&Path)) -> tempfile::TempDir {
    let b = bundle(&config_with_env(&[]));
    let config = b.path().join("config.json");
    std::fs::remove_file(&config).unwrap();
    make(&config);
    b
}

#[test]
fn a_config_json_that_is_not_a_small_regular_file_is_refused_at_once_by_name() {
    let empty = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let real = elsewhere.path().join("config.json");
    std::fs::write(&real, config_with_env(&[])).unwrap();
    type Make = Box<dyn FnOnce(&Path)>;
    let cases: [(&str, Make); 4] = [
        (
            "is a FIFO (named pipe), not a regular file",
            Box::new(|p| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
            }),
        ),
        (
            "is a character device, not a regular file",
            Box::new(|p| {
                // /dev/zero: read whole, it never ends.
                nix::sys::stat::mknod(
                    p,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                    nix::sys::stat::makedev(1, 5),
                )
                .unwrap()
            }),
        ),
        (
            "is a symbolic link, which is not followed here",
            Box::new(move |p| std::os::unix::fs::symlink(&real, p).unwrap()),
        ),
        (
            "is larger than the limit of 16 MiB",
            Box::new(|p| std::fs::File::create(p).unwrap().set_len(1 << 30).unwrap()),
        ),
    ];
    for (want, make) in cases {
        let b = bundle_with_config(make);
        let config = b.path().join("config.json");
        let (_, out) = hookhost_within(
            &[
                "test".as_ref(),
                b.path().as_os_str(),
                "--plugins-dir".as_ref(),
                empty.path().as_os_str(),
                "--no-cache".as_ref(),
            ],
            std::process::Stdio::null(),
            std::time::Duration::from_secs(10),
        );
        let out = out.unwrap_or_else(|| panic!("hung on a config.json that {want}"));
        assert_error(
            &out,
            &[&format!("cannot read {}: {want}", config.display())],
        );
    }
}

#[test]
fn a_manifest_that_is_a_fifo_or_too_large_is_refused_by_name() {
    let plugins = tempfile::tempdir().unwrap();
    let manifest = plugins.path().join("h.json");
    let b = bundle(&config_with_env(&[]));
    let run = || {
        hookhost_within(
            &[
                "test".as_ref(),
                b.path().as_os_str(),
                "--plugins-dir".as_ref(),
                plugins.path().as_os_str(),
            ],
            std::process::Stdio::null(),
            std::time::Duration::from_secs(10),
        )
        .1
        .expect("hookhost hung on a manifest")
    };
    nix::unistd::mkfifo(&manifest, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_error(
        &run(),
        &[&format!(
            "cannot read manifest {}: is a FIFO (named pipe), not a regular file",
            manifest.display()
        )],
    );
    std::fs::remove_file(&manifest).unwrap();
    std::fs::File::create(&manifest)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    assert_error(
        &run(),
        &[&format!(
            "cannot read manifest {}: is larger than the limit of 1 MiB",
            manifest.display()
        )],
    );
}

#[test]
fn a_huge_wasm_is_refused_by_its_header_or_its_size_without_being_read() {
    for (header, want) in [
        (&b"\0\0\0\0\0\0\0\0"[..], "is not a WebAssembly component"),
        (
            &b"\0asm\x0d\0\x01\0"[..],
            "is larger than the limit of 256 MiB for a component",
        ),
    ] {
        let plugins = tempfile::tempdir().unwrap();
        let wasm = plugins.path().join("h.wasm");
        std::fs::write(&wasm, header).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&wasm)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        std::fs::write(
            plugins.path().join("h.json"),
            r#"{"activation": {"always": true}}"#,
        )
        .unwrap();
        let b = bundle(&config_with_env(&[]));
        // 512 MiB of address space: reading the 1 GiB file whole cannot fit.
        let start = std::time::Instant::now();
        let out = std::process::Command::new("prlimit")
            .arg(format!("--as={}", 512u64 << 20))
            .arg(env!("CARGO_BIN_EXE_hookhost"))
            .args(["test".as_ref(), b.path().as_os_str()])
            .args(["--plugins-dir".as_ref(), plugins.path().as_os_str()])
            .arg("--no-cache")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("running prlimit (util-linux)");
        assert_error(&out, &[&format!("({}): {want}", wasm.display())]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn an_oci_state_over_its_limit_is_refused_on_stdin_and_from_a_file() {
    let b = bundle(&config_with_env(&[]));
    let empty = tempfile::tempdir().unwrap();
    // 8 MiB of a JSON string that never ends, as a hostile runtime might send.
    let mut state = br#"{"ociVersion": "1.0.2", "id": ""#.to_vec();
    state.resize(8 << 20, b'x');
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args([
            "prestart".as_ref(),
            "--plugins-dir".as_ref(),
            empty.path().as_os_str(),
        ])
        .args(["--no-cache"])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn({
        let state = state.clone();
        // The hook stops reading at its limit: the rest gets EPIPE.
        move || drop(std::io::Write::write_all(&mut stdin, &state))
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_error(
        &out,
        &["cannot read the OCI state on stdin: is larger than the limit of 4 MiB"],
    );

    let file = b.path().join("state.json");
    std::fs::write(&file, &state).unwrap();
    let out = test_plan(
        b.path(),
        empty.path(),
        None,
        &[OsStr::new("--state"), file.as_ref()],
    );
    assert_error(
        &out,
        &[&format!(
            "cannot read {}: is larger than the limit of 4 MiB",
            file.display()
        )],
    );
}

#[test]
fn a_hook_whose_state_never_ends_gives_up_at_its_deadline() {
    let empty = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    // stdin is a pipe whose write end the test keeps open: no EOF, ever.
    let (child, out) = hookhost_within(
        &[
            "prestart".as_ref(),
            "--timeout".as_ref(),
            "1".as_ref(),
            "--plugins-dir".as_ref(),
            empty.path().as_os_str(),
            "--no-cache".as_ref(),
        ],
        std::process::Stdio::piped(),
        std::time::Duration::from_secs(10),
    );
    drop(child);
    let out = out.expect("the hook outlived its deadline");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_error(
        &out,
        &["the prestart hook for a container whose state was not read yet did not finish within 1 s (--timeout)"],
    );
}

#[test]
fn a_hook_stuck_in_a_plugin_gives_up_at_its_deadline_naming_the_container() {
    // The plugin's own limit (30 s) is far beyond the hook's deadline (1 s).
    let plugins = plugin_dir(
        "h",
        "hostile",
        r#"{"activation": {"always": true}, "settings": {"mode": "loop"}, "limits": {"time-ms": 30000}}"#,
    );
    let b = bundle(&config_with_env(&[]));
    let state = serde_json::json!({
        "ociVersion": "1.0.2", "id": "stuck-1", "status": "creating", "pid": 1,
        "bundle": b.path(),
    });
    let file = std::fs::File::open({
        let path = b.path().join("state.json");
        std::fs::write(&path, state.to_string()).unwrap();
        path
    })
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (_, out) = hookhost_within(
        &[
            "create-runtime".as_ref(),
            "--timeout".as_ref(),
            "1".as_ref(),
            "--plugins-dir".as_ref(),
            plugins.path().as_os_str(),
            "--cache-dir".as_ref(),
            cache.path().as_os_str(),
        ],
        file.into(),
        std::time::Duration::from_secs(15),
    );
    let out = out.expect("the hook outlived its deadline");
    assert_error(
        &out,
        &["the create-runtime hook for container stuck-1 did not finish within 1 s"],
    );
}

#[test]
fn an_unreadable_state_file_gives_the_system_error_once() {
    let b = bundle(&config_with_env(&[]));
    let empty = tempfile::tempdir().unwrap();
    let out = test_plan(
        b.path(),
        empty.path(),
        None,
        &["--state", "/nonexistent/state.json"],
    );
    assert_error(
        &out,
        &["cannot read /nonexistent/state.json: No such file or directory (os error 2)"],
    );
    assert_eq!(
        stderr(&out).matches("os error 2").count(),
        1,
        "{}",
        stderr(&out)
    );
}
