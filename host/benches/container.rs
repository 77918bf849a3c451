//! Container-start and growth benchmark (issue 13, P3 and P5). Like
//! `startup.rs` it prints figures and asserts no time.
//!
//! P3, GPU injection at container start: `runc create` + `runc delete` of a
//! trivial busybox container, timed together,
//! - (a) with no hook;
//! - (b) with `hookhost prestart` as its prestart hook, the shipped plugins
//!   installed and the NVIDIA policy active for `NVIDIA_VISIBLE_DEVICES=all`,
//!   `NVIDIA_DRIVER_CAPABILITIES=all` on the fake NVIDIA host (device nodes
//!   made with mknod, a real ELF libcuda built with `cc -shared`, so that
//!   the hook's ldconfig runs as on a real host);
//! - (c) with the same hook installed and no plugin active;
//! - after the measured rounds, (b) again with `--audit-log`, untabled: the
//!   medians of the hook's audit records (its whole time, and each kind of
//!   action summed per run) say where its time goes.
//!
//! P5, growth:
//! - (i) `hookhost prestart` (front, then engine when a plugin is active)
//!   with 1, 2, 4, 8, 16 and 32 installed plugins, all inactive (their
//!   activation never matches) or all active (the `hostile` test plugin in
//!   its `noop` mode: an empty plan);
//! - (ii) one plugin (the `scripted` test plugin) copying 1, 10, 100, 300
//!   and 1,000 files from a fake host: the plan alone (`hookhost test
//!   --json`), and the executor in a `runc create` + `runc delete` like P3's.
//!
//! Every scenario runs in turn within each round, so a change of machine
//! load touches all alike. Each run's rootfs is made afresh, untimed (the
//! hook writes into it, as into an image's fresh overlay). SVG plots of both
//! P5 series and of P3 go to `docs/plots/`.
//!
//! Needs root, runc, busybox-static and cc; skips with a message otherwise.
//! Run from the repository root:
//!
//!     cargo build --release --bins --examples && bash plugins/build.sh \
//!         && cargo bench --bench container
//!
//! `HOOKHOST_BENCH_RUNS` sets the number of measured runs (default 30; a
//! tenth as many warm-up runs come first).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tempfile::TempDir;

mod measure;
use measure::{check, cpu_ticks, median, percentile};

const PLUGIN_COUNTS: [usize; 6] = [1, 2, 4, 8, 16, 32];
const FILE_COUNTS: [usize; 5] = [1, 10, 100, 300, 1000];
/// runc's state directory for the bench's containers.
const RUNC_ROOT: &str = "/run/hookhost-bench-container";

const P3_PLAIN: &str = "P3 (a) runc create+delete, no hook";
const P3_GPU: &str = "P3 (b) + hookhost, nvidia all/all";
const P3_IDLE: &str = "P3 (c) + hookhost, nothing active";

/// One measured thing: a run is the commands `prepare` returns (after it has
/// done its untimed set-up), run in sequence, each of which must succeed.
struct Scenario {
    label: String,
    prepare: Box<dyn Fn() -> Vec<Command>>,
    times_ms: Vec<f64>,
}

fn scenario(label: impl Into<String>, prepare: impl Fn() -> Vec<Command> + 'static) -> Scenario {
    Scenario {
        label: label.into(),
        prepare: Box::new(prepare),
        times_ms: Vec::new(),
    }
}

fn main() {
    let runs = measure::runs(30);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let hookhost = PathBuf::from(env!("CARGO_BIN_EXE_hookhost"));
    let plugins = repo.join("target/hookhost");
    let shipped = plugins.join("plugins.d");
    let hostile = plugins.join("test-plugins/hostile.wasm");
    let scripted = plugins.join("test-plugins/scripted.wasm");
    for file in [&hostile, &scripted, &shipped.join("nvidia.wasm")] {
        if !file.exists() {
            eprintln!(
                "container bench: {} is missing; run `bash plugins/build.sh` first",
                file.display()
            );
            std::process::exit(1);
        }
    }
    let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let root = nix::unistd::geteuid().is_root();
    let (Some(runc), true, true) = (runc, root, Path::new("/bin/busybox").exists()) else {
        println!(
            "SKIPPED: the container bench needs root, runc and busybox-static \
             (apt-get install runc busybox-static)"
        );
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_owned();
    let pristine = pristine_rootfs();

    // P3: the fake NVIDIA host, with a real libcuda for ldconfig.
    let gpu_host = tempfile::tempdir().unwrap();
    let made = Command::new("bash")
        .arg(repo.join("tests/fixtures/make-host.sh"))
        .arg("nvidia")
        .arg(gpu_host.path())
        .status()
        .unwrap();
    assert!(made.success(), "make-host.sh nvidia");
    real_library(
        &gpu_host
            .path()
            .join("usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14"),
        "libcuda.so.1",
    );
    let hook = |plugins_dir: &Path, host: &Path| {
        serde_json::json!({"prestart": [{
            "path": hookhost,
            "args": ["hookhost", "--plugins-dir", plugins_dir, "--host-root", host,
                     "--cache-dir", cache_dir, "prestart"],
            "env": [],
        }]})
    };
    let bundles = vec![
        (P3_PLAIN, bundle(&[], None)),
        (
            P3_GPU,
            bundle(
                &[
                    "NVIDIA_VISIBLE_DEVICES=all",
                    "NVIDIA_DRIVER_CAPABILITIES=all",
                ],
                Some(hook(&shipped, gpu_host.path())),
            ),
        ),
        (P3_IDLE, bundle(&[], Some(hook(&shipped, gpu_host.path())))),
    ];

    // P3 (b) again with an audit log, run after the measured rounds: where
    // the hook's own time goes.
    let audited = {
        let b = bundle(
            &[
                "NVIDIA_VISIBLE_DEVICES=all",
                "NVIDIA_DRIVER_CAPABILITIES=all",
            ],
            None,
        );
        let mut hooks = hook(&shipped, gpu_host.path());
        let args = hooks["prestart"][0]["args"].as_array_mut().unwrap();
        args.push("--audit-log".into());
        args.push(b.dir.path().join("audit.log").display().to_string().into());
        let path = b.dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["hooks"] = hooks;
        std::fs::write(&path, config.to_string()).unwrap();
        b
    };

    // P5 (i): N noop plugins, all active or all inactive.
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.json");
    let state_json = serde_json::json!({
        "ociVersion": "1.0.2", "id": "hookhost-bench", "status": "creating", "pid": 0,
        "bundle": repo.join("tests/fixtures/nvidia/unset"),
    });
    std::fs::write(&state, state_json.to_string()).unwrap();
    let mut plugin_dirs: Vec<(String, usize, bool, TempDir)> = Vec::new();
    for active in [false, true] {
        for n in PLUGIN_COUNTS {
            let dir = tempfile::tempdir().unwrap();
            let manifest = if active {
                r#"{"activation": {"always": true}, "settings": {"mode": "noop"}}"#
            } else {
                r#"{"activation": {"env": ["HOOKHOST_BENCH_NEVER_SET"]}, "settings": {"mode": "noop"}}"#
            };
            for i in 0..n {
                std::fs::copy(&hostile, dir.path().join(format!("p{i:02}.wasm"))).unwrap();
                std::fs::write(dir.path().join(format!("p{i:02}.json")), manifest).unwrap();
            }
            let label = format!(
                "P5i prestart, {n:>2} plugins, {}",
                if active { "active" } else { "inactive" }
            );
            plugin_dirs.push((label, n, active, dir));
        }
    }

    // P5 (ii): one scripted plugin copying N files of a fake host.
    let file_host = tempfile::tempdir().unwrap();
    let max_files = *FILE_COUNTS.iter().max().unwrap();
    std::fs::create_dir_all(file_host.path().join("opt/bench")).unwrap();
    for i in 0..max_files {
        std::fs::write(
            file_host.path().join(format!("opt/bench/f{i:04}")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    let mut file_cases: Vec<(usize, TempDir, Bundle)> = Vec::new();
    for n in FILE_COUNTS {
        let requests: Vec<_> = (0..n)
            .map(|i| {
                serde_json::json!({"copy": {
                    "host": format!("/opt/bench/f{i:04}"),
                    "container": format!("/opt/bench/f{i:04}"),
                }})
            })
            .collect();
        let manifest = serde_json::json!({
            "activation": {"env": ["BENCH_FILES"]},
            "allow": ["/opt/bench/*"],
            "settings": {"requests": requests},
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&scripted, dir.path().join("scripted.wasm")).unwrap();
        std::fs::write(dir.path().join("scripted.json"), manifest.to_string()).unwrap();
        let b = bundle(&["BENCH_FILES=1"], Some(hook(dir.path(), file_host.path())));
        file_cases.push((n, dir, b));
    }

    // Every plugin compiled into the shared cache, as at install.
    let mut dirs: Vec<PathBuf> = vec![shipped.clone()];
    dirs.extend(plugin_dirs.iter().map(|(_, _, _, d)| d.path().to_owned()));
    dirs.extend(file_cases.iter().map(|(_, d, _)| d.path().to_owned()));
    for dir in &dirs {
        let out = Command::new(&hookhost)
            .args(["plugins", "compile", "--plugins-dir"])
            .arg(dir)
            .arg("--cache-dir")
            .arg(&cache_dir)
            .output()
            .unwrap();
        check(&out, "hookhost plugins compile");
    }

    // The scenarios.
    let _ = std::fs::create_dir_all(RUNC_ROOT);
    let container = |b: &Bundle, id: String| {
        let (runc, dir, pristine) = (runc.clone(), b.dir.path().to_owned(), pristine.clone());
        move || {
            fresh_rootfs(&pristine, &dir.join("rootfs"));
            let mut create = Command::new(&runc);
            create
                .args(["--root", RUNC_ROOT, "create", "--bundle"])
                .arg(&dir)
                .arg(&id)
                // The container's init inherits these: a pipe would stay open.
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("create.err")).unwrap());
            let mut delete = Command::new(&runc);
            delete.args(["--root", RUNC_ROOT, "delete", "--force", &id]);
            vec![create, delete]
        }
    };
    let mut scenarios = Vec::new();
    for (i, (label, b)) in bundles.iter().enumerate() {
        scenarios.push(scenario(
            *label,
            container(b, format!("hookhost-bench-{}-p3-{i}", std::process::id())),
        ));
    }
    for (label, _, _, dir) in &plugin_dirs {
        let (hookhost, dir, cache, state) = (
            hookhost.clone(),
            dir.path().to_owned(),
            cache_dir.clone(),
            state.clone(),
        );
        scenarios.push(scenario(label.clone(), move || {
            let mut cmd = Command::new(&hookhost);
            cmd.arg("prestart")
                .arg("--plugins-dir")
                .arg(&dir)
                .arg("--cache-dir")
                .arg(&cache)
                .stdin(std::fs::File::open(&state).unwrap());
            vec![cmd]
        }));
    }
    for (n, dir, b) in &file_cases {
        let (hookhost, dir, cache, host, bdir) = (
            hookhost.clone(),
            dir.path().to_owned(),
            cache_dir.clone(),
            file_host.path().to_owned(),
            b.dir.path().to_owned(),
        );
        scenarios.push(scenario(
            format!("P5ii plan (test --json), {n:>4} files"),
            move || {
                let mut cmd = Command::new(&hookhost);
                cmd.arg("test")
                    .arg(&bdir)
                    .arg("--json")
                    .arg("--plugins-dir")
                    .arg(&dir)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .arg("--host-root")
                    .arg(&host);
                vec![cmd]
            },
        ));
    }
    for (n, _, b) in &file_cases {
        scenarios.push(scenario(
            format!("P5ii runc create+delete, {n:>4} files"),
            container(
                b,
                format!("hookhost-bench-{}-files-{n}", std::process::id()),
            ),
        ));
    }

    // Each scenario once, checked, and what it does shown.
    for s in &scenarios {
        for mut cmd in (s.prepare)() {
            if cmd.get_program() != hookhost.as_os_str() {
                cmd.stdin(Stdio::null());
            }
            let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
            let out = cmd.output().unwrap();
            if !out.status.success() {
                if let Some(at) = args.iter().position(|a| a == "--bundle") {
                    let err = Path::new(&args[at + 1]).join("create.err");
                    eprintln!("{}", std::fs::read_to_string(err).unwrap_or_default());
                }
            }
            check(&out, &s.label);
        }
    }
    sanity(&bundles, &file_cases, &hookhost, &cache_dir, &file_host);

    let (busy_before, own_before) = cpu_ticks();
    let measuring = Instant::now();
    let warm_up = (runs / 10).max(1);
    for round in 0..warm_up + runs {
        for s in &mut scenarios {
            let cmds = (s.prepare)();
            let start = Instant::now();
            for mut cmd in cmds {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
                if cmd.get_program() != hookhost.as_os_str() {
                    cmd.stdin(Stdio::null());
                }
                let status = cmd.status().unwrap();
                assert!(status.success(), "{}: {status}", s.label);
            }
            let elapsed = start.elapsed();
            if round >= warm_up {
                s.times_ms.push(elapsed.as_secs_f64() * 1e3);
            }
        }
    }
    let (busy_after, own_after) = cpu_ticks();
    let audited_runs = (runs / 2).max(1);
    let run_audited = container(
        &audited,
        format!("hookhost-bench-{}-audit", std::process::id()),
    );
    for _ in 0..audited_runs {
        for mut cmd in run_audited() {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            assert!(cmd.status().unwrap().success(), "the audited GPU container");
        }
    }
    let others = (busy_after - busy_before).saturating_sub(own_after - own_before) as f64
        / 100.0
        / measuring.elapsed().as_secs_f64();

    println!("hookhost container start and growth: {runs} runs per scenario after {warm_up} warm-up; wall time in ms");
    println!("binary: {}", hookhost.display());
    println!(
        "CPU taken by other processes meanwhile: {:.0}% of one core (of {}); {:.0} s in all",
        others * 100.0,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        measuring.elapsed().as_secs_f64()
    );
    println!();
    println!("{:<44} {:>9} {:>9}", "scenario", "median", "p90");
    let stats: HashMap<String, (f64, f64)> = scenarios
        .iter_mut()
        .map(|s| {
            let med = median(&mut s.times_ms);
            (s.label.clone(), (med, percentile(&s.times_ms, 0.9)))
        })
        .collect();
    for s in &scenarios {
        let (med, p90) = stats[&s.label];
        println!("{:<44} {med:>9.3} {p90:>9.3}", s.label);
    }

    println!();
    println!("P3: over plain runc create+delete (a)");
    let plain = stats[P3_PLAIN].0;
    let mut p3 = Vec::new();
    for label in [P3_PLAIN, P3_GPU, P3_IDLE] {
        let (med, p90) = stats[label];
        println!(
            "  {label:<40} +{:>7.2} ms  {:>5.2}x  (p90 {p90:.2})",
            med - plain,
            med / plain
        );
        p3.push((label, med, p90));
    }

    audit_breakdown(&audited.dir.path().join("audit.log"));

    println!();
    println!("P5 (i): hookhost prestart by installed plugins; slope = ms per added plugin");
    println!(
        "  {:>3} {:>10} {:>8} {:>10} {:>8}",
        "N", "inactive", "slope", "active", "slope"
    );
    let mut inactive = Vec::new();
    let mut active = Vec::new();
    for (label, n, is_active, _) in &plugin_dirs {
        let series = if *is_active {
            &mut active
        } else {
            &mut inactive
        };
        series.push((*n as f64, stats[label].0));
    }
    let slopes = |series: &[(f64, f64)]| -> Vec<Option<f64>> {
        std::iter::once(None)
            .chain(
                series
                    .windows(2)
                    .map(|w| Some((w[1].1 - w[0].1) / (w[1].0 - w[0].0))),
            )
            .collect()
    };
    let (si, sa) = (slopes(&inactive), slopes(&active));
    for i in 0..inactive.len() {
        println!(
            "  {:>3} {:>10.3} {:>8} {:>10.3} {:>8}",
            inactive[i].0,
            inactive[i].1,
            fmt_slope(si[i]),
            active[i].1,
            fmt_slope(sa[i])
        );
    }

    println!();
    println!("P5 (ii): one plugin copying N files; slope = ms per added file");
    println!(
        "  {:>5} {:>10} {:>8} {:>12} {:>8}",
        "N", "plan", "slope", "runc+exec", "slope"
    );
    let plan: Vec<(f64, f64)> = FILE_COUNTS
        .iter()
        .map(|n| {
            let label = format!("P5ii plan (test --json), {n:>4} files");
            (*n as f64, stats[&label].0)
        })
        .collect();
    let exec: Vec<(f64, f64)> = FILE_COUNTS
        .iter()
        .map(|n| {
            let label = format!("P5ii runc create+delete, {n:>4} files");
            (*n as f64, stats[&label].0)
        })
        .collect();
    let (sp, se) = (slopes(&plan), slopes(&exec));
    for i in 0..plan.len() {
        println!(
            "  {:>5} {:>10.3} {:>8} {:>12.3} {:>8}",
            plan[i].0,
            plan[i].1,
            fmt_slope(sp[i]),
            exec[i].1,
            fmt_slope(se[i])
        );
    }
    let exec_over_plain: Vec<(f64, f64)> = exec.iter().map(|(n, t)| (*n, t - plain)).collect();

    let out = repo.join("docs/plots");
    std::fs::create_dir_all(&out).unwrap();
    plots::lines(
        &out.join("p5-plugins.svg"),
        "P5 (i): hookhost prestart by installed plugins",
        "installed plugins",
        &[
            ("inactive (activation never matches)", &inactive),
            ("active (noop plugin, empty plan)", &active),
        ],
    );
    plots::lines(
        &out.join("p5-files.svg"),
        "P5 (ii): one plugin injecting N files",
        "files",
        &[
            ("plan: hookhost test --json", &plan),
            ("runc create+delete, over (a)", &exec_over_plain),
        ],
    );
    plots::bars(
        &out.join("p3-container.svg"),
        "P3: runc create + delete (median, p90 as a tick)",
        &p3,
    );
    println!();
    println!("plots written to {}", out.display());
    let _ = std::fs::remove_dir_all(&pristine);
    // runc's state directory, empty once every container is deleted.
    let _ = std::fs::remove_dir(RUNC_ROOT);
}

/// From the audited GPU runs: the hook's own time (from its start of work
/// to the audit record) and the time of its actions by kind, medians over
/// the runs in ms.
fn audit_breakdown(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut totals = Vec::new();
    let mut by_kind: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for record in &records {
        totals.push(record["micros"].as_f64().unwrap() / 1e3);
        let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
        let actions = record["actions"].as_array().unwrap();
        for a in actions {
            *sums
                .entry(a["action"].as_str().unwrap().to_owned())
                .or_default() += a["micros"].as_f64().unwrap() / 1e3;
        }
        for (kind, ms) in sums {
            by_kind.entry(kind.clone()).or_default().push(ms);
            counts.insert(
                kind.clone(),
                actions
                    .iter()
                    .filter(|a| a["action"] == kind.as_str())
                    .count(),
            );
        }
    }
    println!();
    println!(
        "P3 (b), the hook's audit records over {} more runs (medians, ms):",
        records.len()
    );
    println!("  whole hook (audit record): {:.3}", median(&mut totals));
    for (kind, mut ms) in by_kind {
        println!(
            "  {kind:<28} {:>3} actions {:>8.3}",
            counts[&kind],
            median(&mut ms)
        );
    }
}

fn fmt_slope(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.4}"))
}

/// Checks that the scenarios do what they say: the GPU container gets its
/// devices, the file cases their files.
fn sanity(
    bundles: &[(&str, Bundle)],
    files: &[(usize, TempDir, Bundle)],
    hookhost: &Path,
    cache: &Path,
    file_host: &TempDir,
) {
    let gpu = &bundles[1].1;
    let devs = gpu.dir.path().join("rootfs/dev");
    let libs = gpu.dir.path().join("rootfs/usr/lib/x86_64-linux-gnu");
    let count = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
    println!(
        "P3 (b) after one run: {} entries under rootfs/usr/lib/x86_64-linux-gnu, \
         ld.so.cache written: {}, dev (a tmpfs in the container) holds {} host-side",
        count(&libs),
        gpu.dir.path().join("rootfs/etc/ld.so.cache").exists(),
        count(&devs)
    );
    for (n, dir, b) in files {
        let copied = count(&b.dir.path().join("rootfs/opt/bench"));
        assert_eq!(copied, *n, "the executor copied {copied} of {n} files");
        let out = Command::new(hookhost)
            .arg("test")
            .arg(b.dir.path())
            .arg("--json")
            .arg("--plugins-dir")
            .arg(dir.path())
            .arg("--cache-dir")
            .arg(cache)
            .arg("--host-root")
            .arg(file_host.path())
            .output()
            .unwrap();
        let plan = String::from_utf8_lossy(&out.stdout);
        let planned = plan.matches("/opt/bench/f").count();
        assert!(planned >= *n, "{n} files: the plan names {planned}");
    }
    println!("P5 (ii): every file case copied and planned its N files");
}

/// A bundle whose container runs `true`, with `env` and `hooks`.
struct Bundle {
    dir: TempDir,
}

fn bundle(env: &[&str], hooks: Option<serde_json::Value>) -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    let mut env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
    env.push("PATH=/bin".into());
    let mut config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "true"],
            "env": env,
            "cwd": "/",
            "noNewPrivileges": true,
        },
        "hostname": "hookhost-bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        },
    });
    if let Some(hooks) = hooks {
        config["hooks"] = hooks;
    }
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    Bundle { dir }
}

/// A busybox rootfs to copy each run's from.
fn pristine_rootfs() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookhost-bench-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    dir
}

/// Replaces `rootfs` with a fresh one: busybox hard-linked from `pristine`.
fn fresh_rootfs(pristine: &Path, rootfs: &Path) {
    let _ = std::fs::remove_dir_all(rootfs);
    for d in ["bin", "dev", "proc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::hard_link(pristine.join("bin/busybox"), rootfs.join("bin/busybox")).unwrap();
    for tool in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }
}

/// A real shared object of `soname` at `lib` (ldconfig lists only ELF files).
fn real_library(lib: &Path, soname: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lib.c"),
        "int hookhost_bench(unsigned f) { return (int)f; }\n",
    )
    .unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", &format!("-Wl,-soname,{soname}"), "-o"])
        .arg(lib)
        .arg(dir.path().join("lib.c"))
        .status()
        .expect("a C compiler (cc) builds the fake libcuda");
    assert!(status.success());
}

/// SVG plots with plotters.
mod plots {
    use std::path::Path;

    use plotters::prelude::*;

    const COLOURS: [RGBColor; 3] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
    ];

    /// Median ms against N, one line per series.
    pub fn lines(path: &Path, title: &str, x_label: &str, series: &[(&str, &[(f64, f64)])]) {
        let x_max = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.0))
            .fold(0.0, f64::max);
        let y_max = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            * 1.1;
        let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max * 1.02, 0.0..y_max)
            .unwrap();
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("median ms")
            .draw()
            .unwrap();
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .unwrap()
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                .unwrap();
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .unwrap();
        root.present().unwrap();
    }

    /// One bar per scenario (its median), with its p90 as a tick.
    pub fn bars(path: &Path, title: &str, bars: &[(&str, f64, f64)]) {
        let y_max = bars.iter().map(|b| b.2).fold(0.0, f64::max) * 1.15;
        let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..bars.len() as f64, 0.0..y_max)
            .unwrap();
        let names: Vec<String> = bars
            .iter()
            .map(|b| b.0.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_desc("ms")
            .draw()
            .unwrap();
        for (i, (_, med, p90)) in bars.iter().enumerate() {
            let x = i as f64;
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.2, 0.0), (x + 0.8, *med)],
                    colour.filled(),
                )))
                .unwrap();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x + 0.35, *p90), (x + 0.65, *p90)],
                    BLACK.stroke_width(2),
                )))
                .unwrap();
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{med:.1}"),
                    (x + 0.4, med * 0.5),
                    ("sans-serif", 14).into_font().color(&WHITE),
                )))
                .unwrap();
        }
        root.present().unwrap();
    }
}
