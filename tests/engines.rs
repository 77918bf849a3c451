//! The runtime shim under real engines: Docker (daemon.json `runtimes`),
//! containerd (`ctr run --runc-binary`) and podman (containers.conf
//! `runtimes`), each a daemon of the test's own with its state in a
//! temporary directory, running a busybox image on the fake NVIDIA host.
//!
//! Needs root, runc and the engines (tests/setup.sh installs them). When
//! `CI` is set a missing engine fails the test; elsewhere it skips loudly.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::*;
use crate::runc::nvidia_host;
use crate::runc::runc;
use crate::shim::{assert_gpu_seen, GPU_SCRIPT};

/// `name` from PATH or the system directories; a failure in CI, a skip
/// elsewhere.
pub(crate) fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed; CI must run the engine tests (apt-get install {package})"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install {package})");
    }
    found
}

/// The GPU script, plus the container's own view of its linker cache (the
/// image holds the host's static ldconfig for that).
pub(crate) fn gpu_script() -> String {
    format!("{GPU_SCRIPT}; ldconfig -p | grep libcuda.so.1")
}

/// What [`gpu_script`] must print with GPU 0, besides [`assert_gpu_seen`]:
/// hookhost's hook entry ran ldconfig over the container's rootfs.
pub(crate) fn assert_gpu_container(out: &Output) {
    assert_gpu_seen(out);
    let text = stdout(out);
    assert!(
        text.contains("libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "the container's linker cache lists libcuda:\n{text}"
    );
}

/// `program` under coreutils' `timeout`: an engine that hangs fails the
/// test instead of holding it.
pub(crate) fn timed(program: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "90"]).arg(program);
    cmd
}

pub(crate) fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

pub(crate) fn succeeded(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// A daemon of the test's, stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `cmd`, its output in `log`, and waits up to 30 s for it to
    /// make `socket`.
    fn start(mut cmd: Command, log: &Path, socket: &Path) -> Daemon {
        let file = File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
        let mut daemon = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            let exited = daemon.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "{:?} did not make {} ({}):\n{}",
                    cmd.get_program(),
                    socket.display(),
                    exited.map_or("30 s".into(), |s| s.to_string()),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containers and its containerd.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A busybox image's root filesystem as a tar (for `docker import` and
/// `podman import`): busybox, its tools, and the host's static ldconfig.
pub(crate) fn rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    for sub in ["bin", "sbin", "dev", "proc", "etc"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is needed: apt-get install busybox-static");
    for tool in [
        "sh", "ls", "cat", "readlink", "echo", "test", "stat", "grep", "sleep",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }
    std::fs::copy("/sbin/ldconfig", rootfs.join("sbin/ldconfig")).unwrap();
    let tar = dir.join("rootfs.tar");
    let out = output(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    succeeded("tar", out);
    tar
}

/// The same image as an OCI image layout in a tar, named `reference`, for
/// `ctr images import`: one uncompressed layer.
fn oci_archive(dir: &Path, layer: &Path, reference: &str) -> PathBuf {
    let layout = dir.join("oci-layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| {
        let digest = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&digest), bytes).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let (layer, layer_size) = blob(&std::fs::read(layer).unwrap());
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    });
    let (config, config_size) = blob(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = blob(manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": reference}}],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = dir.join("image.tar");
    let out = output(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    succeeded("tar", out);
    tar
}

/// hookhost's global options for the test: the installed plugins (or
/// `plugins_dir`), the fake host, a private cache.
fn test_options(plugins_dir: &Path, host: &Path, cache: &Path) -> Vec<Value> {
    vec![
        "--plugins-dir".into(),
        plugins_dir.to_str().unwrap().into(),
        "--host-root".into(),
        host.to_str().unwrap().into(),
        "--cache-dir".into(),
        cache.to_str().unwrap().into(),
    ]
}

/// The `hookhost-runtime` link, in `dir`, and its options file (the test's
/// stand-in for /etc/hookhost/runtime.json): the installed plugins and the
/// failing one of [`failing_plugins`].
fn runtime_link(dir: &Path, host: &Path) -> (PathBuf, PathBuf) {
    let link = dir.join("hookhost-runtime");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hookhost"), &link).unwrap();
    let plugins_dir = dir.join("plugins.d");
    std::fs::create_dir(&plugins_dir).unwrap();
    let failing = failing_plugins();
    for from in [plugins().join("plugins.d"), failing.path().to_path_buf()] {
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, plugins_dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let options = dir.join("runtime.json");
    let args = test_options(&plugins_dir, host, &dir.join("cache"));
    std::fs::write(&options, json!({ "args": args }).to_string()).unwrap();
    (link, options)
}

/// What an engine says when [`failing_plugins`]' plugin fails the start of
/// a container that would have printed `started`: hookhost's own line.
fn assert_failed_with_hookhosts_message(out: &Output) {
    let err = stderr(out);
    assert!(!out.status.success(), "{err}");
    assert!(!stdout(out).contains("started"), "the container never ran");
    assert!(err.contains("hookhost: plugin `scripted`"), "{err}");
    assert!(err.contains("/etc/shadow"), "{err}");
}

/// The `scripted` test plugin asking to copy a file outside its allow-list
/// (active when the container has `SCRIPTED`).
fn failing_plugins() -> tempfile::TempDir {
    let manifest = json!({
        "activation": {"env": ["SCRIPTED"]},
        "allow": ["/opt/allowed/**"],
        "settings": {"requests": [{"copy": {"host": "/etc/shadow", "container": "/etc/x"}}]},
    });
    plugin_dir("scripted", "scripted", &manifest.to_string())
}

/// A dockerd of the test's: its own socket, data root, exec root (and so
/// its own containerd), pidfile and daemon.json (`daemon`).
struct Docker {
    docker: PathBuf,
    socket: PathBuf,
    exec_root: PathBuf,
    client_config: PathBuf,
    _daemon: Daemon,
}

impl Docker {
    fn start(dir: &Path, daemon: Value) -> Option<Docker> {
        let dockerd = tool("dockerd", "docker.io")?;
        let docker = tool("docker", "docker.io")?;
        runc()?;
        let config = dir.join("daemon.json");
        std::fs::write(&config, daemon.to_string()).unwrap();
        let socket = dir.join("docker.sock");
        let exec_root = dir.join("exec");
        let mut cmd = Command::new(dockerd);
        cmd.args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=vfs", "--config-file"])
            .arg(&config)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()));
        let daemon = Daemon::start(cmd, &dir.join("dockerd.log"), &socket);
        let client_config = dir.join("client");
        std::fs::create_dir_all(&client_config).unwrap();
        Some(Docker {
            docker,
            socket,
            exec_root,
            client_config,
            _daemon: daemon,
        })
    }

    fn cmd(&self) -> Command {
        let mut cmd = timed(&self.docker);
        cmd.env("DOCKER_CONFIG", &self.client_config)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()));
        cmd
    }

    fn import(&self, tar: &Path, name: &str) {
        succeeded(
            "docker import",
            output(self.cmd().arg("import").arg(tar).arg(name)),
        );
    }
}

/// daemon.json's entry as the README gives it (`runtime --` closing
/// `runtimeArgs`), with the test's global options before it.
fn docker_runtime(options: Vec<Value>) -> Value {
    let mut args = options;
    args.extend(["runtime".into(), "--".into()]);
    json!({"path": env!("CARGO_BIN_EXE_hookhost"), "runtimeArgs": args})
}

#[test]
fn docker_runs_a_gpu_container_through_the_hookhost_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let host = nvidia_host();
    let runtime = docker_runtime(test_options(
        &plugins().join("plugins.d"),
        host.path(),
        &dir.path().join("cache"),
    ));
    let daemon = json!({"runtimes": {"hookhost": runtime}});
    let Some(docker) = Docker::start(dir.path(), daemon) else {
        return;
    };
    docker.import(&rootfs_tar(dir.path()), "hookhost-busybox");
    let run = |args: &[&str]| {
        output(
            docker
                .cmd()
                .args(["run", "--network=none", "--runtime=hookhost"])
                .args(["-e", "NVIDIA_VISIBLE_DEVICES=0"])
                .args(args),
        )
    };

    let out = run(&["--rm", "hookhost-busybox", "sh", "-c", &gpu_script()]);
    assert_gpu_container(&out);

    // The bundle Docker handed the runtime, while its container runs:
    // Docker's own prestart hook kept, hookhost's entry added.
    let out = succeeded(
        "docker run -d",
        run(&["-d", "hookhost-busybox", "sleep", "30"]),
    );
    let id = stdout(&out).trim().to_string();
    let config = docker
        .exec_root
        .join("containerd/daemon/io.containerd.runtime.v2.task/moby")
        .join(&id)
        .join("config.json");
    let spec: Result<Value, String> = std::fs::read_to_string(&config)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()));
    let _ = output(docker.cmd().args(["rm", "-f", &id]));
    let spec = spec.unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    let prestart = spec["hooks"]["prestart"].as_array().unwrap();
    assert_eq!(prestart.len(), 1, "{prestart:?}");
    assert_eq!(prestart[0]["args"][0], "libnetwork-setkey", "{prestart:?}");
    let entry = &spec["hooks"]["createRuntime"][0];
    assert_eq!(entry["path"], env!("CARGO_BIN_EXE_hookhost-engine"));
    assert_eq!(entry["env"], json!([]));
}

#[test]
fn a_failing_plugin_fails_docker_run_with_hookhosts_message_through_the_default_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let host = fake_host("nvidia");
    let plugins = failing_plugins();
    let runtime = docker_runtime(test_options(
        plugins.path(),
        host.path(),
        &dir.path().join("cache"),
    ));
    // As the default runtime: no --runtime on the command line.
    let daemon = json!({"runtimes": {"hookhost": runtime}, "default-runtime": "hookhost"});
    let Some(docker) = Docker::start(dir.path(), daemon) else {
        return;
    };
    docker.import(&rootfs_tar(dir.path()), "hookhost-busybox");
    let out = output(docker.cmd().args(["run", "--rm", "--network=none"]).args([
        "-e",
        "SCRIPTED=1",
        "hookhost-busybox",
        "echo",
        "started",
    ]));
    assert_failed_with_hookhosts_message(&out);
}

#[test]
fn ctr_with_hookhost_runtime_as_runc_binary_gives_the_gpu_and_reports_a_failing_plugin() {
    let (Some(containerd), Some(ctr)) =
        (tool("containerd", "containerd"), tool("ctr", "containerd"))
    else {
        return;
    };
    let Some(_) = runc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = nvidia_host();
    let (link, options) = runtime_link(dir.path(), host.path());
    let socket = dir.path().join("containerd.sock");
    let config = dir.path().join("config.toml");
    let toml = format!(
        "version = 2\nroot = {:?}\nstate = {:?}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = {:?}\n",
        dir.path().join("root"),
        dir.path().join("state"),
        socket,
    );
    std::fs::write(&config, toml).unwrap();
    // containerd's environment reaches its shim and so the runtime.
    let mut cmd = Command::new(containerd);
    cmd.arg("--config")
        .arg(&config)
        .env("HOOKHOST_RUNTIME_CONFIG", &options);
    let _daemon = Daemon::start(cmd, &dir.path().join("containerd.log"), &socket);

    let reference = "docker.io/library/hookhost-busybox:latest";
    let image = oci_archive(dir.path(), &rootfs_tar(dir.path()), reference);
    let ctr = || {
        let mut cmd = timed(&ctr);
        cmd.arg("-a").arg(&socket).args(["-n", "hookhost-test"]);
        cmd
    };
    let out = output(
        ctr()
            .args(["images", "import", "--snapshotter", "native"])
            .arg(&image),
    );
    succeeded("ctr images import", out);
    let id = format!("hookhost-ctr-{}", std::process::id());
    let out = output(
        ctr()
            .args(["run", "--rm", "--snapshotter", "native", "--runc-binary"])
            .arg(&link)
            .args(["--env", "NVIDIA_VISIBLE_DEVICES=0", reference, &id])
            .args(["sh", "-c", &gpu_script()]),
    );
    assert_gpu_container(&out);

    // A failure before runc runs reaches ctr's user as hookhost's message.
    let out = output(
        ctr()
            .args(["run", "--rm", "--snapshotter", "native", "--runc-binary"])
            .arg(&link)
            .args(["--env", "SCRIPTED=1", reference, &format!("{id}-failing")])
            .args(["echo", "started"]),
    );
    assert_failed_with_hookhosts_message(&out);
}

/// podman's global options for storage, state and temporary files of its
/// own in `dir` (no systemd here: cgroupfs, no journald).
pub(crate) fn podman_storage(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for (flag, sub) in [
        ("--root", "root"),
        ("--runroot", "run"),
        ("--tmpdir", "tmp"),
    ] {
        args.extend([flag.into(), dir.join(sub).into()]);
    }
    for arg in [
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ] {
        args.push(arg.into());
    }
    args
}

/// `podman run` for this machine: podman raises nofile and nproc to its
/// defaults, above the hard limits runc may set here ("error setting
/// rlimits").
pub(crate) const PODMAN_RUN: &[&str] = &[
    "run",
    "--rm",
    "--network=none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

#[test]
fn podman_with_hookhost_runtime_as_default_runtime_gives_the_gpu_and_reports_a_failing_plugin() {
    let Some(podman) = tool("podman", "podman") else {
        return;
    };
    let Some(_) = runc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = nvidia_host();
    let (link, options) = runtime_link(dir.path(), host.path());
    // hookhost-runtime as podman's default runtime. conmon hands the
    // runtime only the variables of `conmon_env_vars`, not podman's
    // environment: the options file is named there.
    let conf = dir.path().join("containers.conf");
    let text = format!(
        "[engine]\n\
         conmon_env_vars = [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", \
         \"HOOKHOST_RUNTIME_CONFIG={}\"]\n\
         runtime = \"hookhost\"\n\
         [engine.runtimes]\nhookhost = [{:?}]\n",
        options.display(),
        link,
    );
    std::fs::write(&conf, text).unwrap();
    let podman = || {
        let mut cmd = timed(&podman);
        cmd.env("CONTAINERS_CONF", &conf)
            .args(podman_storage(dir.path()));
        cmd
    };
    let tar = rootfs_tar(dir.path());
    let out = output(podman().arg("import").arg(&tar).arg("hookhost-busybox"));
    succeeded("podman import", out);
    let out = output(
        podman()
            .args(PODMAN_RUN)
            .args(["-e", "NVIDIA_VISIBLE_DEVICES=0", "hookhost-busybox"])
            .args(["sh", "-c", &gpu_script()]),
    );
    assert_gpu_container(&out);

    let out = output(podman().args(PODMAN_RUN).args([
        "-e",
        "SCRIPTED=1",
        "hookhost-busybox",
        "echo",
        "started",
    ]));
    assert_failed_with_hookhosts_message(&out);
}

#[test]
fn podman_with_hookhost_runtime_by_path_takes_its_options_from_etc_hookhost() {
    let Some(podman) = tool("podman", "podman") else {
        return;
    };
    let Some(_) = runc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = nvidia_host();
    let (link, options) = runtime_link(dir.path(), host.path());
    let tar = rootfs_tar(dir.path());
    let out = output(
        timed(&podman)
            .args(podman_storage(dir.path()))
            .arg("import")
            .arg(&tar)
            .arg("hookhost-busybox"),
    );
    succeeded("podman import", out);
    // The default options file, /etc/hookhost/runtime.json, in a private
    // mount namespace: an overlay over /etc takes it, the host's /etc
    // gets nothing.
    let (upper, work) = (dir.path().join("etc-upper"), dir.path().join("etc-work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let out = output(
        timed(Path::new("unshare"))
            .args(["-m", "sh", "-c"])
            .arg(
                "mount --make-rprivate / && \
                 mount -t overlay overlay -o \"lowerdir=/etc,upperdir=$1,workdir=$2\" /etc && \
                 mkdir -p /etc/hookhost && cp \"$3\" /etc/hookhost/runtime.json && \
                 shift 3 && exec \"$@\"",
            )
            .arg("sh")
            .args([&upper, &work, &options])
            .arg(&podman)
            .args(podman_storage(dir.path()))
            .args(PODMAN_RUN)
            .arg("--runtime")
            .arg(&link)
            .args(["-e", "NVIDIA_VISIBLE_DEVICES=0", "hookhost-busybox"])
            .args(["sh", "-c", &gpu_script()]),
    );
    assert_gpu_container(&out);
}

#[test]
fn podman_runs_the_hooks_d_file_install_wrote_only_for_its_annotation() {
    let Some(podman) = tool("podman", "podman") else {
        return;
    };
    let Some(runc) = runc() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A plugin active on one annotation, making a directory the container
    // can see.
    let manifest = json!({
        "activation": {"annotations": {"com\\.example\\.marker": "yes"}},
        "settings": {"requests": [{"make-dir": {"container": "/hookhost-made", "mode": 493}}]},
    });
    let plugins = plugin_dir("scripted", "scripted", &manifest.to_string());
    let hooks = dir.path().join("hooks.d");
    let installed = hookhost([
        "--plugins-dir".as_ref(),
        plugins.path().as_os_str(),
        "--cache-dir".as_ref(),
        dir.path().join("cache").as_os_str(),
        "install".as_ref(),
        "hooks-d".as_ref(),
        "--dir".as_ref(),
        hooks.as_os_str(),
    ]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(hooks.join("hookhost.json")).unwrap())
            .unwrap();
    assert_eq!(
        file["when"],
        json!({"annotations": {"^(?:com\\.example\\.marker)$": "^(?:yes)$"}})
    );
    assert_eq!(file["hook"]["env"], json!([]));

    let tar = rootfs_tar(dir.path());
    let out = output(
        timed(&podman)
            .args(podman_storage(dir.path()))
            .arg("import")
            .arg(&tar)
            .arg("hookhost-busybox"),
    );
    succeeded("podman import", out);
    let run = |annotation: &[&str]| {
        output(
            timed(&podman)
                .args(podman_storage(dir.path()))
                .arg("--hooks-dir")
                .arg(&hooks)
                .args(PODMAN_RUN)
                .arg("--runtime")
                .arg(&runc)
                .args(annotation)
                .args(["hookhost-busybox", "sh", "-c"])
                .arg("test -d /hookhost-made && echo made || echo not-made"),
        )
    };
    let with = succeeded(
        "podman run --annotation",
        run(&["--annotation", "com.example.marker=yes"]),
    );
    assert_eq!(stdout(&with), "made\n", "{}", stderr(&with));
    let without = succeeded("podman run", run(&[]));
    assert_eq!(stdout(&without), "not-made\n", "{}", stderr(&without));

    let removed = hookhost([
        "uninstall".as_ref(),
        "hooks-d".as_ref(),
        "--dir".as_ref(),
        hooks.as_os_str(),
    ]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(!hooks.join("hookhost.json").exists());
}
