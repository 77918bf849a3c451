//! The runtime shim (`hookhost runtime`) in front of a real runc: the plan
//! arrives as spec edits (devices, rules, binds, env) and a hook entry of
//! hookhost's for the rest, on cgroup v1 and on cgroup v2; everything else
//! passes through to runc untouched.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common::*;
use crate::runc::{
    add_newer_cuda_compat, assert_compat_libcuda_first, cache_listing, nvidia_host, runc, Bundle,
};

/// `hookhost runtime` with the installed plugins on the fake host `host`,
/// in front of `runc`; the runtime's arguments follow.
fn shim(plugins_dir: &Path, host: &Path, cache: &Path, runc: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookhost"));
    cmd.arg("--plugins-dir")
        .arg(plugins_dir)
        .arg("--host-root")
        .arg(host)
        .arg("--cache-dir")
        .arg(cache)
        .args(["runtime", "--runtime-path"])
        .arg(runc)
        .arg("--");
    cmd
}

/// A bundle for the shim: the NVIDIA policy's container with Docker's kind
/// of prestart hook already in config.json (it appends to `hooks.log` in
/// the bundle), instead of hookhost's own hook.
fn gpu_bundle(host: &Path, env: &[&str], script: &str) -> Bundle {
    let bundle = Bundle::new(host, env, script);
    let path = bundle.dir.path().join("config.json");
    let mut config = read_json(&path);
    let log = bundle.dir.path().join("hooks.log");
    config["hooks"] = json!({"prestart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo engine-hook >> {}", log.display())],
    }]});
    std::fs::write(&path, config.to_string()).unwrap();
    bundle
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn container_id(bundle: &Bundle) -> String {
    let name = bundle.dir.path().file_name().unwrap().to_string_lossy();
    format!(
        "shim-{}-{}",
        std::process::id(),
        name.trim_start_matches('.')
    )
}

/// Runs the container through the shim with `run --bundle B ID` (or the
/// bundle form given), then deletes it.
fn run_through_shim(bundle: &Bundle, host: &Path, runc: &Path, form: &[&OsStr]) -> Output {
    let id = container_id(bundle);
    let out = shim(
        &plugins().join("plugins.d"),
        host,
        &bundle.dir.path().join("cache"),
        runc,
    )
    .arg("run")
    .args(form)
    .arg(&id)
    .current_dir(bundle.dir.path())
    .output()
    .unwrap();
    let _ = Command::new(runc).args(["delete", "--force", &id]).output();
    out
}

pub(crate) const GPU_SCRIPT: &str = "stat -c '%n %t:%T' /dev/nvidia0; \
     cat /dev/nvidia0 2>&1; \
     test -e /dev/nvidia1 && echo nvidia1-present; \
     echo x 2>&1 > /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14 || echo write-refused; \
     readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1; \
     grep ' /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14 ' /proc/self/mountinfo";

/// What the GPU container must have seen, and the linker cache it left.
fn assert_gpu_container(bundle: &Bundle, out: &Output) {
    assert_gpu_seen(out);
    // hookhost's hook entry ran the host's ldconfig over the rootfs.
    let listed = cache_listing(bundle);
    assert!(
        listed.contains("libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "{listed}"
    );
    // The engine's own hook still ran.
    let log = std::fs::read_to_string(bundle.dir.path().join("hooks.log")).unwrap();
    assert_eq!(log, "engine-hook\n");
}

/// What a container running [`GPU_SCRIPT`] with GPU 0 must have printed.
pub(crate) fn assert_gpu_seen(out: &Output) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert!(out.status.success(), "the container must start:\n{text}");
    assert!(text.contains("/dev/nvidia0 c3:0"), "{text}");
    // ENXIO: the node exists and the device cgroup let the open through.
    assert!(text.contains("No such device or address"), "{text}");
    assert!(!text.contains("Operation not permitted"), "{text}");
    assert!(
        !text.contains("nvidia1-present"),
        "GPU 1 was not selected:\n{text}"
    );
    assert!(
        text.contains("write-refused"),
        "libraries are read-only:\n{text}"
    );
    // The soname link, made by hookhost's hook entry.
    assert!(text.contains("libcuda.so.550.54.14\n"), "{text}");
    // The bind is runc's: read-only, nosuid, nodev.
    let mount = text
        .lines()
        .find(|l| l.contains(" /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14 "))
        .unwrap_or_else(|| panic!("no bind of libcuda:\n{text}"));
    for option in ["ro", "nosuid", "nodev"] {
        assert!(
            mount
                .split(' ')
                .nth(5)
                .unwrap()
                .split(',')
                .any(|o| o == option),
            "{option} missing: {mount}"
        );
    }
}

#[test]
fn the_shim_gives_a_runc_container_its_gpu_through_the_spec_on_cgroup_v1() {
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = gpu_bundle(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], GPU_SCRIPT);
    let before = read_json(&bundle.dir.path().join("config.json"));
    let form = [OsStr::new("--bundle"), bundle.dir.path().as_os_str()];
    let out = run_through_shim(&bundle, host.path(), &runc, &form);
    assert_gpu_container(&bundle, &out);
    assert_spec_edited(&before, &read_json(&bundle.dir.path().join("config.json")));
}

#[test]
fn behind_the_shim_an_images_newer_cuda_compat_libcuda_wins_in_the_linker_cache() {
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = gpu_bundle(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], GPU_SCRIPT);
    add_newer_cuda_compat(&bundle.rootfs());
    let form = [OsStr::new("--bundle"), bundle.dir.path().as_os_str()];
    let out = run_through_shim(&bundle, host.path(), &runc, &form);
    assert_gpu_seen(&out);
    // The shim's hook entry re-derived the plan, compat directory included.
    assert_compat_libcuda_first(&cache_listing(&bundle));
}

/// config.json after the shim, field by field: what was there is still
/// there, in its place; the plan's devices, rules, binds and env are added,
/// and hookhost's hook entry after the engine's hooks.
fn assert_spec_edited(before: &Value, after: &Value) {
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(before), keys(after), "top-level fields, in order");
    for (key, value) in before.as_object().unwrap() {
        if !["process", "mounts", "linux", "hooks"].contains(&key.as_str()) {
            assert_eq!(&after[key], value, "{key} changed");
        }
    }
    for (key, value) in before["process"].as_object().unwrap() {
        if key != "env" {
            assert_eq!(&after["process"][key], value, "process.{key} changed");
        }
    }
    // The NVIDIA policy sets no variable.
    assert_eq!(after["process"]["env"], before["process"]["env"]);

    let mounts = after["mounts"].as_array().unwrap();
    let old_mounts = before["mounts"].as_array().unwrap();
    assert_eq!(&mounts[..old_mounts.len()], &old_mounts[..]);
    for added in &mounts[old_mounts.len()..] {
        assert_eq!(added["type"], "bind");
        assert_eq!(added["options"], json!(["bind", "ro", "nosuid", "nodev"]));
    }
    assert!(mounts.len() > old_mounts.len(), "libraries are bound");

    for (key, value) in before["linux"].as_object().unwrap() {
        if key != "resources" {
            assert_eq!(&after["linux"][key], value, "linux.{key} changed");
        }
    }
    let rules = after["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
    assert!(rules
        .contains(&json!({"allow": true, "type": "c", "major": 195, "minor": 0, "access": "rwm"})));
    let devices = after["linux"]["devices"].as_array().unwrap();
    assert!(devices
        .iter()
        .any(|d| d["path"] == "/dev/nvidia0" && d["major"] == 195 && d["minor"] == 0));
    assert!(!devices.iter().any(|d| d["path"] == "/dev/nvidia1"));

    assert_eq!(after["hooks"]["prestart"], before["hooks"]["prestart"]);
    // The hook entry always has work: it names the engine, not the front.
    let entry = &after["hooks"]["createRuntime"][0];
    assert_eq!(entry["path"], env!("CARGO_BIN_EXE_hookhost-engine"));
    assert_eq!(entry["env"], json!([]));
    let args: Vec<&str> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["create-runtime", "--after-shim"]),
        "{args:?}"
    );
}

#[test]
fn the_shim_gives_a_runc_container_its_gpu_on_cgroup_v2() {
    // runc in pure cgroup v2 mode (a private mount namespace with only the
    // v2 hierarchy at /sys/fs/cgroup, see DESIGN.md): its BPF device
    // program comes from the rules the shim wrote.
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = gpu_bundle(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], GPU_SCRIPT);
    let id = container_id(&bundle);
    let root = bundle.dir.path().join("runc-root");
    let shim = shim(
        &plugins().join("plugins.d"),
        host.path(),
        &bundle.dir.path().join("cache"),
        &runc,
    );
    let mut argv: Vec<&OsStr> = vec![shim.get_program()];
    argv.extend(shim.get_args());
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(
            "mount --make-rprivate / && umount -l /sys/fs/cgroup && \
             mount -t cgroup2 none /sys/fs/cgroup && \
             test \"$(stat -f -c %T /sys/fs/cgroup)\" = cgroup2fs && exec \"$@\"",
        )
        .arg("sh")
        .args(argv)
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(bundle.dir.path())
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(
            "mount --make-rprivate / && umount -l /sys/fs/cgroup && \
             mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"",
        )
        .arg("sh")
        .arg(&runc)
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &id])
        .output();
    assert_gpu_container(&bundle, &out);
}

#[test]
fn the_shim_sets_the_environment_a_policy_asks_for() {
    // XRT's policy sets XILINX_XRT where the back end can (not at a hook).
    let Some(runc) = runc() else { return };
    let host = fake_host("xilinx");
    let bundle = gpu_bundle(
        host.path(),
        &["XILINX_VISIBLE_DEVICES=0"],
        "echo \"xrt=$XILINX_XRT\"; cat /dev/dri/renderD129 2>&1; true",
    );
    let before = read_json(&bundle.dir.path().join("config.json"));
    let form = [OsStr::new("--bundle"), bundle.dir.path().as_os_str()];
    let out = run_through_shim(&bundle, host.path(), &runc, &form);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("xrt=/opt/xilinx/xrt\n"), "{text}");
    assert!(text.contains("No such device or address"), "{text}");
    let after = read_json(&bundle.dir.path().join("config.json"));
    let env = after["process"]["env"].as_array().unwrap();
    let old_env = before["process"]["env"].as_array().unwrap();
    assert_eq!(
        &env[..old_env.len()],
        &old_env[..],
        "existing entries kept in place"
    );
    assert_eq!(&env[old_env.len()..], [json!("XILINX_XRT=/opt/xilinx/xrt")]);
    // Nothing for a hook to do: no hook entry of hookhost's.
    assert!(
        after["hooks"].get("createRuntime").is_none(),
        "{}",
        after["hooks"]
    );
}

#[test]
fn the_bundle_is_found_in_every_form_runc_accepts() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = gpu_bundle(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "cat /dev/nvidia0 2>&1; true",
    );
    let config = bundle.dir.path().join("config.json");
    let original = std::fs::read(&config).unwrap();
    let dir = bundle.dir.path().as_os_str().to_owned();
    let joined = |flag: &str| {
        let mut arg = std::ffi::OsString::from(flag);
        arg.push(&dir);
        arg
    };
    let forms: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["--bundle".into(), dir.clone()],
        vec![joined("--bundle=")],
        vec!["-b".into(), dir.clone()],
        vec![joined("-b=")],
        // No bundle: runc takes the current directory (the bundle here).
        vec![],
    ];
    for form in forms {
        std::fs::write(&config, &original).unwrap();
        let form: Vec<&OsStr> = form.iter().map(|a| a.as_os_str()).collect();
        let out = run_through_shim(&bundle, host.path(), &runc, &form);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "{form:?}: {text}");
        assert!(
            text.contains("No such device or address"),
            "{form:?}: {text}"
        );
    }
}

#[test]
fn a_command_that_creates_nothing_passes_through_to_runc_untouched() {
    let Some(runc) = runc() else { return };
    let empty = tempfile::tempdir().unwrap();
    let through = |args: &[&str]| {
        shim(
            empty.path(),
            Path::new("/"),
            &empty.path().join("cache"),
            &runc,
        )
        .args(args)
        .output()
        .unwrap()
    };
    let direct = |args: &[&str]| Command::new(&runc).args(args).output().unwrap();
    let version = through(&["--version"]);
    assert_eq!(version.stdout, direct(&["--version"]).stdout);
    assert!(version.status.success());
    let state = through(&["state", "hookhost-no-such-container"]);
    let expected = direct(&["state", "hookhost-no-such-container"]);
    assert_eq!(state.status.code(), expected.status.code());
    assert!(
        stderr(&state).contains("does not exist"),
        "{}",
        stderr(&state)
    );
    assert!(!stderr(&state).contains("hookhost"), "{}", stderr(&state));
}

#[test]
fn the_exit_status_and_a_signal_pass_through_the_shim() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = gpu_bundle(
        host.path(),
        &[],
        "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 1; done",
    );
    std::os::unix::fs::symlink("busybox", bundle.rootfs().join("bin/sleep")).unwrap();
    let id = container_id(&bundle);
    let mut child = shim(
        &plugins().join("plugins.d"),
        host.path(),
        &bundle.dir.path().join("cache"),
        &runc,
    )
    .args(["run", "--bundle"])
    .arg(bundle.dir.path())
    .arg(&id)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The shim's pid is runc's once it has exec'd: wait for the container.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let _ = Command::new(&runc)
        .args(["delete", "--force", &id])
        .output();
    assert_eq!(
        rest, "got-term\n",
        "runc forwarded the signal to the container"
    );
    assert_eq!(status.code(), Some(7), "the container's exit status");
}

#[test]
fn a_failing_plugin_fails_the_start_naming_it_and_leaves_config_json_as_it_was() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let manifest = json!({
        "activation": {"env": ["SCRIPTED"]},
        "allow": ["/opt/allowed/**"],
        "settings": {"requests": [{"copy": {"host": "/etc/shadow", "container": "/etc/x"}}]},
    });
    let plugins = plugin_dir("scripted", "scripted", &manifest.to_string());
    let bundle = gpu_bundle(host.path(), &["SCRIPTED=1"], "echo started");
    let config = bundle.dir.path().join("config.json");
    let original = std::fs::read(&config).unwrap();
    let inode = std::fs::metadata(&config).unwrap();
    let log = bundle.dir.path().join("log.json");
    let id = container_id(&bundle);
    let out = shim(
        plugins.path(),
        host.path(),
        &bundle.dir.path().join("cache"),
        &runc,
    )
    .arg("--log")
    .arg(&log)
    .args(["--log-format", "json", "run", "--bundle"])
    .arg(bundle.dir.path())
    .arg(&id)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("hookhost: plugin `scripted`"), "{err}");
    assert!(err.contains("/etc/shadow"), "{err}");
    assert!(!stdout(&out).contains("started"), "runc never ran");
    assert_eq!(std::fs::read(&config).unwrap(), original);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&config).unwrap().ino(), inode.ino());
    // runc's log, where containerd reads a runtime's error from.
    let logged: Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(logged["level"], "error");
    assert!(
        logged["msg"]
            .as_str()
            .unwrap()
            .contains("plugin `scripted`"),
        "{logged}"
    );
    let no_temp = std::fs::read_dir(bundle.dir.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains("hookhost-")
    });
    assert!(no_temp, "no temporary file is left in the bundle");
}

#[test]
fn without_an_active_plugin_config_json_is_not_rewritten() {
    // No plugin active; then the NVIDIA policy active but asked for nothing.
    for env in [&[][..], &["NVIDIA_VISIBLE_DEVICES=void"][..]] {
        not_rewritten(env);
    }
}

fn not_rewritten(env: &[&str]) {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = gpu_bundle(host.path(), env, "echo started");
    let config = bundle.dir.path().join("config.json");
    let original = std::fs::read(&config).unwrap();
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&config).unwrap().ino();
    let form = [OsStr::new("--bundle"), bundle.dir.path().as_os_str()];
    let out = run_through_shim(&bundle, host.path(), &runc, &form);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "started\n");
    assert_eq!(std::fs::read(&config).unwrap(), original);
    assert_eq!(std::fs::metadata(&config).unwrap().ino(), inode);
}

#[test]
fn hooks_of_a_hook_config_file_run_before_the_engines_own() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = gpu_bundle(host.path(), &[], "echo started");
    let log = bundle.dir.path().join("hooks.log");
    let hook_config = bundle.dir.path().join("hook-config.json");
    let hooks = json!({"hooks": {"prestart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo configured-hook >> {}", log.display())],
    }]}});
    std::fs::write(&hook_config, hooks.to_string()).unwrap();
    let id = container_id(&bundle);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookhost"));
    cmd.arg("--plugins-dir")
        .arg(plugins().join("plugins.d"))
        .arg("--host-root")
        .arg(host.path())
        .arg("--cache-dir")
        .arg(bundle.dir.path().join("cache"))
        .args(["runtime", "--runtime-path"])
        .arg(&runc)
        .arg("--hook-config-path")
        .arg(&hook_config)
        .args(["--", "run", "--bundle"])
        .arg(bundle.dir.path())
        .arg(&id);
    let out = cmd.output().unwrap();
    let _ = Command::new(&runc)
        .args(["delete", "--force", &id])
        .output();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "configured-hook\nengine-hook\n"
    );
}

#[test]
fn called_as_hookhost_runtime_the_shim_takes_its_options_from_a_file() {
    // As containerd's BinaryName, `ctr --runc-binary` and podman's
    // --runtime call it: a path, runc's arguments, nothing of hookhost's.
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = gpu_bundle(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "cat /dev/nvidia0 2>&1; true",
    );
    let bin = tempfile::tempdir().unwrap();
    let link = bin.path().join("hookhost-runtime");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hookhost"), &link).unwrap();
    let options = bin.path().join("runtime.json");
    let args = json!({"args": [
        "--plugins-dir", plugins().join("plugins.d"),
        "--host-root", host.path(),
        "--cache-dir", bundle.dir.path().join("cache"),
        "--runtime-path", runc,
    ]});
    std::fs::write(&options, args.to_string()).unwrap();
    let id = container_id(&bundle);
    let out = Command::new(&link)
        .env("HOOKHOST_RUNTIME_CONFIG", &options)
        .args(["run", "--bundle"])
        .arg(bundle.dir.path())
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new(&runc)
        .args(["delete", "--force", &id])
        .output();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("No such device or address"), "{text}");

    // A named file that is not there is an error naming it.
    let missing = bin.path().join("missing.json");
    let out = Command::new(&link)
        .env("HOOKHOST_RUNTIME_CONFIG", &missing)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "hookhost: cannot read {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}

#[test]
fn the_hook_entry_names_the_plugins_and_host_by_absolute_paths() {
    // runc runs hooks in the bundle: a relative --plugins-dir given to the
    // shim would name another directory there (or none).
    let host = nvidia_host();
    let bundle = gpu_bundle(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    let plugins_dir = plugins().join("plugins.d");
    let parent = plugins_dir.parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .current_dir(parent)
        .args(["--plugins-dir", "plugins.d", "--host-root"])
        .arg(host.path())
        .arg("--cache-dir")
        .arg(bundle.dir.path().join("cache"))
        .args([
            "runtime",
            "--runtime-path",
            "/bin/true",
            "--",
            "create",
            "--bundle",
        ])
        .arg(bundle.dir.path())
        .arg("id")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = read_json(&bundle.dir.path().join("config.json"));
    let args = &config["hooks"]["createRuntime"][0]["args"];
    let at = |flag: &str| {
        let args = args.as_array().unwrap();
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1].as_str().unwrap().to_string()
    };
    assert_eq!(Path::new(&at("--plugins-dir")), plugins_dir);
    assert!(Path::new(&at("--host-root")).is_absolute());
}
