//! Start-up benchmark: the whole-process time of a hook, since a hook is a
//! process that runc starts once per container. Each scenario spawns a
//! process and waits for it; the table gives the median and p90 wall time in
//! ms and the ratio of each median to the native floor's.
//!
//! Scenarios:
//! - spawn floor: `/bin/true`, what starting any process costs here;
//! - native floor: `examples/native_floor.rs`, a plain Rust program that
//!   reads and parses the same state.json and config.json, then exits;
//! - `hookhost --version`: starting the hookhost binary at all;
//! - `hookhost prestart` (the state on stdin, as runc gives it) with no
//!   plugin: the fixed cost of the hook (context, inventory, cache, engine,
//!   linker, epoch thread);
//! - `hookhost prestart` with 3 plugins that each produce an empty plan, so
//!   that nothing is injected, cache warm: the hook's own cost;
//! - `hookhost test --json` with the same 3 plugins: the dry run;
//! - `hookhost test` with the NVIDIA plugin on a fake host (full plan);
//! - first use of a new plugin: `hookhost prestart` with 1 plugin and an
//!   empty cache on every run, so each run compiles the component and
//!   writes the cache entry.
//! - the runtime shim (`hookhost runtime`) in front of a runtime that does
//!   nothing (`/bin/true`), so that only the shim's own cost is measured,
//!   beside the floor of exec'ing that runtime directly: with the NVIDIA
//!   plugin installed but not active for the container, and with it
//!   editing config.json for 8 GPUs (NVIDIA_DRIVER_CAPABILITIES=all), the
//!   file restored before each run, untimed.
//!
//! It measures what the build left in the target directory and builds
//! nothing itself. Run, from the repository root:
//!
//!     cargo build --release --bins --examples && bash plugins/build.sh \
//!         && cargo bench --bench startup
//!
//! `HOOKHOST_BENCH_RUNS` sets the number of measured runs per scenario
//! (default 200; a tenth as many warm-up runs come first). Scenarios run in
//! turn within each round, so a change of machine load touches all alike;
//! the CPU time that other processes took meanwhile is printed, since a busy
//! machine makes the figures meaningless.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tempfile::TempDir;

mod measure;
use measure::{check, cpu_ticks, median, percentile};

/// The manifest of each empty-plan plugin: the hostile test component in
/// its `noop` mode, active for every container.
const NOOP_MANIFEST: &str = r#"{"activation": {"always": true}, "settings": {"mode": "noop"}}"#;

// The scenarios that the summary compares.
const SPAWN: &str = "spawn floor (/bin/true)";
const FLOOR: &str = "native floor (parse state + config.json)";
const ZERO: &str = "hookhost prestart, 0 plugins";
const INSTALLED: &str = "hookhost prestart, shipped plugins, none active";
const THREE: &str = "hookhost prestart, 3 plugins, empty plans";
const RUNTIME_FLOOR: &str = "runtime floor: /bin/true create ...";
const SHIM_INACTIVE: &str = "shim, nvidia installed, not active";
const SHIM_EDIT: &str = "shim, nvidia, 8 GPUs: spec edit";

/// One way of starting a process, and its measured times.
struct Scenario {
    label: &'static str,
    /// Makes the command of one run. The directory it may return (a fresh
    /// cache) is kept until the run has ended, and removed untimed.
    command: Box<dyn Fn() -> (Command, Option<TempDir>)>,
    times_ms: Vec<f64>,
}

fn scenario(
    label: &'static str,
    command: impl Fn() -> (Command, Option<TempDir>) + 'static,
) -> Scenario {
    Scenario {
        label,
        command: Box::new(command),
        times_ms: Vec::new(),
    }
}

fn main() {
    let runs = measure::runs(200);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // Cargo builds the binary for benchmarks, with the release settings.
    let hookhost = PathBuf::from(env!("CARGO_BIN_EXE_hookhost"));
    let floor = hookhost.with_file_name("examples").join("native_floor");
    let plugins = repo.join("target/hookhost");
    let hostile = plugins.join("test-plugins/hostile.wasm");
    let nvidia = plugins.join("plugins.d");
    require(&floor, "cargo build --release --examples");
    require(&hostile, "bash plugins/build.sh");
    require(&nvidia.join("nvidia.wasm"), "bash plugins/build.sh");

    // The fixture's bundle, and a state naming it as runc would.
    let fixture = repo.join("tests/fixtures/nvidia/all");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.json");
    let state_json = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": "hookhost-bench",
        "status": "creating",
        "pid": 0,
        "bundle": fixture,
    });
    std::fs::write(&state, state_json.to_string()).unwrap();
    // A container that none of the shipped plugins is active for.
    let plain_state = state_dir.path().join("plain.json");
    let mut plain_json = state_json.clone();
    plain_json["bundle"] = repo
        .join("tests/fixtures/nvidia/unset")
        .display()
        .to_string()
        .into();
    std::fs::write(&plain_state, plain_json.to_string()).unwrap();
    let engine = hookhost.with_file_name("hookhost-engine");

    // Three empty-plan plugins, a/b/c, and one, x, for the first-use runs.
    let three = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        install_noop(&hostile, three.path(), name);
    }
    let one = tempfile::tempdir().unwrap();
    install_noop(&hostile, one.path(), "x");
    let empty = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // The NVIDIA plugin needs a fake host with device nodes: root only.
    let fake_host = tempfile::tempdir().unwrap();
    let have_fake_host = Command::new("bash")
        .arg(repo.join("tests/fixtures/make-host.sh"))
        .arg("nvidia")
        .arg(fake_host.path())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();

    // `BINARY prestart`, with a state on stdin.
    let prestart_with = |binary: &Path, state: &Path| {
        let (binary, state) = (binary.to_owned(), state.to_owned());
        move |plugins_dir: &Path, cache_dir: &Path| {
            let mut cmd = Command::new(&binary);
            cmd.arg("prestart")
                .arg("--plugins-dir")
                .arg(plugins_dir)
                .arg("--cache-dir")
                .arg(cache_dir)
                .stdin(std::fs::File::open(&state).unwrap());
            cmd
        }
    };
    let prestart = prestart_with(&hookhost, &state);
    // `hookhost test` of the fixture bundle, with the plan on stdout.
    let test = {
        let (hookhost, fixture, state) = (hookhost.clone(), fixture.clone(), state.clone());
        move |plugins_dir: &Path, cache_dir: &Path| {
            let mut cmd = Command::new(&hookhost);
            cmd.arg("test")
                .arg(&fixture)
                .arg("--state")
                .arg(&state)
                .arg("--json")
                .arg("--plugins-dir")
                .arg(plugins_dir)
                .arg("--cache-dir")
                .arg(cache_dir);
            cmd
        }
    };
    let cache_dir = cache.path().to_owned();

    let mut scenarios = vec![
        scenario(SPAWN, || (Command::new("/bin/true"), None)),
        scenario(FLOOR, {
            let (floor, state, fixture) = (floor.clone(), state.clone(), fixture.clone());
            move || {
                let mut cmd = Command::new(&floor);
                cmd.arg(&state).arg(&fixture);
                (cmd, None)
            }
        }),
        scenario("hookhost --version", {
            let hookhost = hookhost.clone();
            move || {
                let mut cmd = Command::new(&hookhost);
                cmd.arg("--version");
                (cmd, None)
            }
        }),
        scenario(ZERO, {
            let (prestart, empty, cache) =
                (prestart.clone(), empty.path().to_owned(), cache_dir.clone());
            move || (prestart(&empty, &cache), None)
        }),
        scenario(INSTALLED, {
            let (prestart, plugins, cache) = (
                prestart_with(&hookhost, &plain_state),
                nvidia.clone(),
                cache_dir.clone(),
            );
            move || (prestart(&plugins, &cache), None)
        }),
        scenario("engine alone: prestart, shipped plugins, none active", {
            let (prestart, plugins, cache) = (
                prestart_with(&engine, &plain_state),
                nvidia.clone(),
                cache_dir.clone(),
            );
            move || (prestart(&plugins, &cache), None)
        }),
        scenario(THREE, {
            let (prestart, three, cache) =
                (prestart.clone(), three.path().to_owned(), cache_dir.clone());
            move || (prestart(&three, &cache), None)
        }),
        scenario("hookhost test --json, the same 3 plugins", {
            let (test, three, cache) = (test.clone(), three.path().to_owned(), cache_dir.clone());
            move || (test(&three, &cache), None)
        }),
    ];
    if have_fake_host {
        let (test, nvidia, cache) = (test.clone(), nvidia.clone(), cache_dir.clone());
        let host_root = fake_host.path().to_owned();
        scenarios.push(scenario(
            "hookhost test, nvidia plugin, full plan",
            move || {
                let mut cmd = test(&nvidia, &cache);
                cmd.arg("--host-root").arg(&host_root);
                (cmd, None)
            },
        ));
    } else {
        println!("skipped: the NVIDIA scenario (its fake host needs root for mknod)");
    }
    // Kept to the end: its bundles are the scenarios' files.
    let shim =
        have_fake_host.then(|| ShimBench::new(fake_host.path(), &hookhost, &nvidia, &cache_dir));
    if let Some(shim) = &shim {
        scenarios.extend(shim.scenarios());
    }
    scenarios.push(scenario("first use: prestart, 1 plugin, empty cache", {
        let one = one.path().to_owned();
        move || {
            let fresh = tempfile::tempdir().unwrap();
            (prestart(&one, fresh.path()), Some(fresh))
        }
    }));

    // Another build of hookhost side by side (the dynamically linked one,
    // to measure what static linking costs): HOOKHOST_BENCH_COMPARE=PATH.
    let compare_cache = tempfile::tempdir().unwrap();
    if let Some(other) = std::env::var_os("HOOKHOST_BENCH_COMPARE").map(PathBuf::from) {
        require(&other, "a second hookhost binary");
        let out = Command::new(&other)
            .args(["plugins", "compile", "--plugins-dir"])
            .arg(three.path())
            .arg("--cache-dir")
            .arg(compare_cache.path())
            .output()
            .unwrap();
        check(&out, "the compared hookhost: plugins compile");
        let version = {
            let other = other.clone();
            move || {
                let mut cmd = Command::new(&other);
                cmd.arg("--version");
                (cmd, None)
            }
        };
        scenarios.push(scenario("compared: hookhost --version", version));
        for (label, dir) in [
            ("compared: prestart, 0 plugins", empty.path().to_owned()),
            ("compared: prestart, 3 plugins", three.path().to_owned()),
        ] {
            let (other, state, cache) = (
                other.clone(),
                state.clone(),
                compare_cache.path().to_owned(),
            );
            scenarios.push(scenario(label, move || {
                let mut cmd = Command::new(&other);
                cmd.arg("prestart")
                    .arg("--plugins-dir")
                    .arg(&dir)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .stdin(std::fs::File::open(&state).unwrap());
                (cmd, None)
            }));
        }
    }

    // Fill the shared cache, as `hookhost plugins compile` does at install.
    for dir in [three.path(), nvidia.as_path()] {
        let out = Command::new(&hookhost)
            .arg("plugins")
            .arg("compile")
            .arg("--plugins-dir")
            .arg(dir)
            .arg("--cache-dir")
            .arg(&cache_dir)
            .output()
            .unwrap();
        check(&out, "hookhost plugins compile");
    }

    // Each scenario once, checked: it succeeds, and the three plugins make
    // the plan that no plugin makes.
    for scenario in &scenarios {
        let (mut cmd, _fresh) = (scenario.command)();
        check(&cmd.env_clear().output().unwrap(), scenario.label);
    }
    let plan = |dir| test(dir, &cache_dir).output().unwrap().stdout;
    assert_eq!(
        plan(empty.path()),
        plan(three.path()),
        "the 3 noop plugins made a non-empty plan"
    );

    let (busy_before, own_before) = cpu_ticks();
    let measuring = Instant::now();
    let warm_up = (runs / 10).max(1);
    for round in 0..warm_up + runs {
        for scenario in &mut scenarios {
            let (mut cmd, fresh) = (scenario.command)();
            // As under runc: no environment; output is not part of the cost.
            cmd.env_clear().stdout(Stdio::null()).stderr(Stdio::null());
            let start = Instant::now();
            let status = cmd.status().unwrap();
            let elapsed = start.elapsed();
            drop(fresh);
            assert!(status.success(), "{}: {status}", scenario.label);
            if round >= warm_up {
                scenario.times_ms.push(elapsed.as_secs_f64() * 1e3);
            }
        }
    }
    let (busy_after, own_after) = cpu_ticks();
    // Linux counts CPU time in ticks of 10 ms.
    let others = (busy_after - busy_before).saturating_sub(own_after - own_before) as f64
        / 100.0
        / measuring.elapsed().as_secs_f64();

    println!(
        "hookhost start-up: {runs} runs per scenario after {warm_up} warm-up; wall time in ms"
    );
    println!("binary: {}", hookhost.display());
    println!(
        "CPU taken by other processes meanwhile: {:.0}% of one core (of {})",
        others * 100.0,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:<54} {:>8} {:>8} {:>9}",
        "scenario", "median", "p90", "x floor"
    );
    let medians: HashMap<&str, f64> = scenarios
        .iter_mut()
        .map(|s| (s.label, median(&mut s.times_ms)))
        .collect();
    for scenario in &scenarios {
        let med = medians[scenario.label];
        println!(
            "{:<54} {med:>8.3} {:>8.3} {:>8.2}x",
            scenario.label,
            percentile(&scenario.times_ms, 0.9),
            med / medians[FLOOR]
        );
    }
    println!();
    println!(
        "fixed cost over the native floor (0 plugins - floor): {:.3} ms",
        medians[ZERO] - medians[FLOOR]
    );
    println!(
        "per plugin (3 plugins - 0 plugins, / 3): {:.3} ms",
        (medians[THREE] - medians[ZERO]) / 3.0
    );
    let installed = std::fs::read_dir(&nvidia)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("json".as_ref()))
        .count();
    println!(
        "shipped plugins installed, none active: {:.2}x the spawn floor; per installed \
         plugin ({installed} - 0 plugins, / {installed}): {:.3} ms",
        medians[INSTALLED] / medians[SPAWN],
        (medians[INSTALLED] - medians[ZERO]) / installed as f64
    );
    if let (Some(floor), Some(inactive), Some(edit)) = (
        medians.get(RUNTIME_FLOOR),
        medians.get(SHIM_INACTIVE),
        medians.get(SHIM_EDIT),
    ) {
        println!(
            "runtime shim over exec'ing the runtime: {:.3} ms with no plugin active, \
             {:.3} ms editing for 8 GPUs",
            inactive - floor,
            edit - floor
        );
    }
}

/// The runtime shim's scenarios: a fake host of 8 GPUs (the fixture's 2
/// and 6 more), two bundles (one asking for every GPU, one for none), and
/// `/bin/true` as the runtime.
struct ShimBench {
    gpus: TempDir,
    none: TempDir,
    original: Vec<u8>,
    command: std::rc::Rc<dyn Fn(&Path) -> Command>,
}

impl ShimBench {
    fn new(host: &Path, hookhost: &Path, plugins: &Path, cache: &Path) -> Self {
        let gpus_dir = host.join("proc/driver/nvidia/gpus");
        let first = std::fs::read_to_string(gpus_dir.join("0000:3b:00.0/information")).unwrap();
        for minor in 2..8 {
            let bus = format!("0000:{:02x}:00.0", 0x10 + minor);
            let info = first
                .replace("Device Minor: \t 0", &format!("Device Minor: \t {minor}"))
                .replace("0000:3b:00.0", &bus)
                .replace("2d0b7e4f1a93", &format!("2d0b7e4f1a{minor:02}"));
            std::fs::create_dir_all(gpus_dir.join(&bus)).unwrap();
            std::fs::write(gpus_dir.join(&bus).join("information"), info).unwrap();
            let node = host.join(format!("dev/nvidia{minor}"));
            let made = Command::new("mknod")
                .args(["-m", "0666"])
                .arg(&node)
                .args(["c", "195", &minor.to_string()])
                .status()
                .unwrap();
            assert!(made.success(), "mknod {}", node.display());
        }
        let bundle = |env: &[&str]| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("rootfs")).unwrap();
            let config = serde_json::json!({
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh"], "cwd": "/", "env": env},
                "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}},
            });
            std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
            dir
        };
        let gpus = bundle(&[
            "PATH=/bin",
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=all",
        ]);
        let none = bundle(&["PATH=/bin"]);
        let original = std::fs::read(gpus.path().join("config.json")).unwrap();
        let (hookhost, plugins, cache, host) = (
            hookhost.to_owned(),
            plugins.to_owned(),
            cache.to_owned(),
            host.to_owned(),
        );
        let command = std::rc::Rc::new(move |bundle: &Path| {
            let mut cmd = Command::new(&hookhost);
            cmd.arg("--plugins-dir")
                .arg(&plugins)
                .arg("--cache-dir")
                .arg(&cache)
                .arg("--host-root")
                .arg(&host)
                .args(["runtime", "--runtime-path", "/bin/true", "--"])
                .args(runtime_args(bundle));
            cmd
        });
        let bench = ShimBench {
            gpus,
            none,
            original,
            command,
        };
        bench.report_edit();
        bench
    }

    /// Runs the shim once and says how big the edit it measures is.
    fn report_edit(&self) {
        check(
            &(self.command)(self.gpus.path()).output().unwrap(),
            "the shim with 8 GPUs",
        );
        let path = self.gpus.path().join("config.json");
        let edited: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let count = |v: &serde_json::Value| v.as_array().map_or(0, Vec::len);
        println!(
            "shim edit: {} device nodes, {} allow rules, {} mounts added, a hook entry: {}",
            count(&edited["linux"]["devices"]),
            count(&edited["linux"]["resources"]["devices"]) - 1,
            count(&edited["mounts"]) - 1,
            edited["hooks"]["createRuntime"].is_array()
        );
        std::fs::write(&path, &self.original).unwrap();
    }

    fn scenarios(&self) -> Vec<Scenario> {
        let none = self.none.path().to_owned();
        let floor = {
            let none = none.clone();
            move || {
                let mut cmd = Command::new("/bin/true");
                cmd.args(runtime_args(&none));
                (cmd, None)
            }
        };
        let inactive = {
            let command = self.command.clone();
            move || (command(&none), None)
        };
        let editing = {
            let (command, gpus, original) = (
                self.command.clone(),
                self.gpus.path().to_owned(),
                self.original.clone(),
            );
            move || {
                std::fs::write(gpus.join("config.json"), &original).unwrap();
                (command(&gpus), None)
            }
        };
        let passing = {
            let (command, none) = (self.command.clone(), self.none.path().to_owned());
            move || {
                let cmd = command(&none);
                // `state ID`: nothing to create, nothing to read.
                let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
                let end = args.iter().position(|a| a == "--").unwrap() + 1;
                let mut state = Command::new(cmd.get_program());
                state.args(&args[..end]).args(["state", "bench"]);
                (state, None)
            }
        };
        let engine_inactive = {
            let (command, none) = (self.command.clone(), self.none.path().to_owned());
            move || {
                let cmd = command(&none);
                let engine = Path::new(cmd.get_program()).with_file_name("hookhost-engine");
                let mut alone = Command::new(engine);
                alone.args(cmd.get_args());
                (alone, None)
            }
        };
        vec![
            scenario(RUNTIME_FLOOR, floor),
            scenario(SHIM_INACTIVE, inactive),
            scenario("engine alone: shim, not active", engine_inactive),
            scenario("shim, `state` (creates nothing)", passing),
            scenario(SHIM_EDIT, editing),
        ]
    }
}

/// `create` as Docker passes it to a runtime.
fn runtime_args(bundle: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["--root", "/run/hookhost-bench", "create", "--bundle"]
        .map(Into::into)
        .to_vec();
    args.push(bundle.as_os_str().to_owned());
    args.extend(["--pid-file".into(), "/dev/null".into(), "bench".into()]);
    args
}

/// Copies the hostile component into `dir` as NAME.wasm, with a noop manifest.
fn install_noop(hostile: &Path, dir: &Path, name: &str) {
    std::fs::copy(hostile, dir.join(format!("{name}.wasm"))).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), NOOP_MANIFEST).unwrap();
}

fn require(path: &Path, how: &str) {
    if !path.exists() {
        eprintln!(
            "startup bench: {} is missing; run `{how}` first (see the top of benches/startup.rs)",
            path.display()
        );
        std::process::exit(1);
    }
}
