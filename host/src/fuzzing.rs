//! The work of the fuzz targets (host/fuzz): one function per target, each
//! handing its bytes to the real entry point and checking what the code
//! promises of the answer, not only that there is one. A broken promise
//! panics, which libFuzzer reports as a crash. The test suite runs the same
//! functions over the committed corpus and mutations of it (tests/fuzz.rs).
//!
//! Not part of hookhost's interface: hidden from its documentation, and
//! called only by host/fuzz and the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::State;
use serde_json::Value;

use crate::allow::{clean_absolute, AllowList};
use crate::backend::shim::{argv, spec_edit};
use crate::config::{parse_manifest, PluginConfig, PluginKind};
use crate::context::{ContainerContext, IdMapping, OciState, Stage};
use crate::lowering::{lower, Lowered, Op};
use crate::plan::{self, DeviceType, FileRole, Plan, Transfer};
use crate::static_policy::StaticPolicy;

/// Every target, by the name of its binary in host/fuzz and of its
/// corpus directory.
/// A target's body: it panics on a property that does not hold.
pub type Target = fn(&[u8]);

pub const TARGETS: &[(&str, Target)] = &[
    ("oci_state", oci_state),
    ("spec", spec),
    ("manifest", manifest),
    ("seed", seed),
    ("plan_json", plan_json),
    ("plan_merge", plan_merge),
    ("allow", allow),
    ("runc_argv", runc_argv),
    ("front_argv", front_argv),
];

/// The OCI state a hook reads on stdin. What is accepted has an id and a
/// bundle, and is accepted again, the same, once oci-spec has written it
/// back.
pub fn oci_state(data: &[u8]) {
    let Ok(state) = OciState::parse("fuzz", data) else {
        return;
    };
    assert!(!state.id.is_empty() && !state.bundle.as_os_str().is_empty());
    let typed: State = serde_json::from_slice(data).expect("parsed once");
    let written = serde_json::to_vec(&typed).expect("a state serialises");
    let again = OciState::parse("fuzz", &written).expect("a written state reads back");
    assert_eq!(again, state);
}

/// The variable the spec target's plan sets.
const FUZZ_ENV: &str = "HOOKHOST_FUZZ";

/// A bundle's config.json, read into the container context. Then what the
/// context feeds: a device owned by the container's user is lowered
/// through the container's id mappings (a mapped id lies inside a
/// mapping's host range), and the runtime shim's edit of this very spec
/// is a spec the context still reads, with the edit in it.
pub fn spec(data: &[u8]) {
    let bundle = Path::new("/bundle");
    let state = || OciState {
        id: "fuzz".into(),
        pid: None,
        bundle: bundle.into(),
        annotations: BTreeMap::from([("fuzz.state".into(), "1".into())]),
    };
    let Ok(ctx) = ContainerContext::from_config(bundle, data, state(), Stage::Prestart) else {
        return;
    };
    assert!(ctx.rootfs.is_absolute(), "{}", ctx.rootfs.display());
    assert_eq!(
        ctx.annotations.get("fuzz.state").map(String::as_str),
        Some("1"),
        "the state's annotations win over the spec's"
    );

    let user = ctx.spec.process().as_ref().map(|p| p.user());
    let (uid, gid) = user.map_or((0, 0), |u| (u.uid(), u.gid()));
    let plan = device_plan(uid, gid);
    if let Ok(lowered) = lower(&plan, &ctx.uid_mappings, &ctx.gid_mappings) {
        check_lowered(&plan, &lowered, &ctx.uid_mappings, &ctx.gid_mappings);
    }

    // runc refuses a spec without `process`; the edit only adds to one.
    if ctx.spec.process().is_none() {
        return;
    }
    // The shim reads the spec as a JSON value, which, unlike the typed
    // spec, refuses invalid UTF-8 in fields hookhost ignores: an error then.
    let Ok(mut config) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let lowered = lower(&plan, &[], &[]).expect("identity maps every id");
    if spec_edit::apply(&mut config, &lowered, Path::new("/")).is_err() {
        return;
    }
    let edited = serde_json::to_vec(&config).expect("JSON serialises");
    let after = ContainerContext::from_config(bundle, &edited, state(), Stage::RuntimeShim)
        .expect("the shim's edit of a spec is a spec");
    assert_eq!(after.getenv(FUZZ_ENV), Some("1"));
}

/// A plan of one device node owned by `uid:gid`, one bind and a variable.
fn device_plan(uid: u32, gid: u32) -> Plan {
    let mut plan = Plan::default();
    let plugin = "fuzz".to_string();
    plan.add_device(plan::Device {
        plugin: plugin.clone(),
        container_path: "/dev/hookhost-fuzz0".into(),
        host_path: "/dev/hookhost-fuzz0".into(),
        kind: DeviceType::Char,
        major: 195,
        minor: 0,
        file_mode: 0o666,
        uid,
        gid,
        permissions: "rwm".into(),
    })
    .expect("an empty plan");
    plan.add_file(plan::File {
        plugin: plugin.clone(),
        host_path: "/usr/bin/hookhost-fuzz".into(),
        container_path: "/usr/bin/hookhost-fuzz".into(),
        role: FileRole::Binary,
        transfer: Transfer::Bind,
        directory: false,
    })
    .expect("a new path");
    plan.add_env(plan::EnvVar {
        plugin,
        name: FUZZ_ENV.into(),
        value: "1".into(),
    })
    .expect("a new variable");
    plan
}

/// A plugin manifest in hookhost's format, as the inventory loads it.
pub fn manifest(data: &[u8]) {
    if let Some(plugin) = load_manifest(data) {
        check_plugin(&plugin);
    }
}

/// An oci-injector-hook config, loaded as the inventory loads any
/// manifest: it is told apart from hookhost's format, its activation flag
/// alone activates it, and each plain, clean path it lists is in its
/// allow-list.
pub fn seed(data: &[u8]) {
    let Some(plugin) = load_manifest(data) else {
        return;
    };
    check_plugin(&plugin);
    let json: Value = serde_json::from_slice(data).expect("parsed once");
    let PluginKind::Static(policy) = &plugin.kind else {
        assert!(!StaticPolicy::is_one(&json));
        return;
    };
    assert!(StaticPolicy::is_one(&json));
    assert_eq!(
        plugin.activation.env,
        std::slice::from_ref(&policy.activation_flag)
    );
    let listed = [
        &policy.devices,
        &policy.binaries,
        &policy.libraries,
        &policy.miscellaneous,
    ];
    // Globs compile when the plugin runs, which an invalid one then fails.
    let valid = plugin.allow.check().is_ok();
    for path in listed.into_iter().flatten() {
        assert!(!path.contains("**"), "{path}");
        let plain = !path.contains(['*', '?', '[']);
        if valid && plain && clean_absolute(path).is_ok_and(|c| c == Path::new(path)) {
            assert!(plugin.allow.allows(Path::new(path)), "{path}");
        }
    }
}

/// Loads `data` as the manifest `x.json` of a plugin directory that holds
/// an `x.wasm`: `None` when it is refused or disabled.
fn load_manifest(data: &[u8]) -> Option<PluginConfig> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("hookhost-fuzz-plugins");
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        std::fs::write(dir.join("x.wasm"), b"").expect("a file in it");
        dir
    });
    parse_manifest("x", &dir.join("x.json"), data, std::slice::from_ref(dir))
        .ok()
        .flatten()
}

/// What every loaded plugin promises: absolute allow-list patterns, an
/// empty container activating only an `always` plugin, each of its
/// activation variables activating it alone, sane limits and settings.
fn check_plugin(plugin: &PluginConfig) {
    assert!(plugin.allow.patterns().all(|g| g.starts_with('/')));
    let activation = &plugin.activation;
    assert_eq!(
        activation.matches(&ContainerContext::empty()),
        activation.always
    );
    for flag in &activation.env {
        let mut ctx = ContainerContext::empty();
        let entry = if flag.contains('=') {
            flag.clone()
        } else {
            format!("{flag}=")
        };
        ctx.env = vec![entry];
        assert!(activation.matches(&ctx), "{flag:?}");
    }
    if let PluginKind::Wasm(wasm) = &plugin.kind {
        let settings: Value = serde_json::from_str(&wasm.settings).expect("settings are JSON");
        assert!(settings.is_object());
        assert!(wasm.limits.time_ms > 0 && wasm.limits.memory_mib > 0);
    }
}

/// A plan as JSON (`--expect` files): what is read is written back the
/// same, in the same bytes every time, and lowers with every entry in
/// its place.
pub fn plan_json(data: &[u8]) {
    let Ok(plan) = serde_json::from_slice::<Plan>(data) else {
        return;
    };
    let json = serde_json::to_vec(&plan).expect("a plan serialises");
    let again: Plan = serde_json::from_slice(&json).expect("a written plan reads back");
    assert_eq!(again, plan);
    assert_eq!(serde_json::to_vec(&again).expect("again"), json, "stable");
    let lowered = lower(&plan, &[], &[]).expect("identity maps every id");
    check_lowered(&plan, &lowered, &[], &[]);
}

/// Plugins' plans, built from the bytes through `Plan`'s own adds, merged
/// as `evaluate` merges them, in every order: whether they merge and what
/// the merged plan holds (apart from who asked first) does not depend on
/// the order; a failed merge changes nothing; no two entries claim one
/// path; a plan read back from its JSON merges the same; and the merged
/// plan lowers through the id mapping of the first twelve bytes.
pub fn plan_merge(data: &[u8]) {
    let (mapping, ops) = data.split_at(data.len().min(12));
    let plans = build_plans(ops);
    let orders: &[&[usize]] = &[
        &[0, 1, 2],
        &[0, 2, 1],
        &[1, 0, 2],
        &[1, 2, 0],
        &[2, 0, 1],
        &[2, 1, 0],
    ];
    let merged: Vec<Option<Plan>> = orders
        .iter()
        .map(|order| merge_in(order.iter().map(|&i| plans[i].clone())))
        .collect();
    let first = &merged[0];
    for other in &merged[1..] {
        assert_eq!(other.is_some(), first.is_some(), "merging depends on order");
        if let (Some(a), Some(b)) = (first, other) {
            assert_eq!(content(a), content(b), "the merged plan depends on order");
        }
    }
    let reread = merge_in(plans.iter().map(|p| {
        serde_json::from_slice(&serde_json::to_vec(p).expect("serialises")).expect("reads back")
    }));
    assert_eq!(&reread, first, "a plan read from JSON merges differently");

    let Some(plan) = first else {
        return;
    };
    check_unique_keys(plan);
    let word = |i: usize| u32::from_le_bytes(mapping[i..i + 4].try_into().expect("4 bytes"));
    let mappings: Vec<IdMapping> = if mapping.len() == 12 {
        vec![IdMapping {
            container_id: word(0),
            host_id: word(4),
            size: word(8),
        }]
    } else {
        Vec::new()
    };
    if let Ok(lowered) = lower(plan, &mappings, &mappings) {
        check_lowered(plan, &lowered, &mappings, &mappings);
    }
}

/// Merges `plans` into an empty plan, as `evaluate` does; `None` at the
/// first conflict, after checking the failed merge left the plan as it was.
fn merge_in(plans: impl IntoIterator<Item = Plan>) -> Option<Plan> {
    let mut merged = Plan::default();
    for plan in plans {
        let before = merged.clone();
        if merged.merge(plan).is_err() {
            assert_eq!(merged, before, "a failed merge changed the plan");
            return None;
        }
    }
    Some(merged)
}

const PATHS: [&str; 8] = [
    "/a",
    "/a/b",
    "/dev/x0",
    "/dev/x1",
    "/usr/lib/libx.so",
    "/usr/lib64/libx.so",
    "/opt/l/libx.so",
    "/etc/x",
];
const HOST_PATHS: [&str; 2] = ["/h/1", "/h/2"];
const ENV_NAMES: [&str; 3] = ["A", "B", "/a"];
const PLUGINS: [&str; 3] = ["a", "b", "c"];

/// Three plugins' plans from `ops`, three bytes per request (what, where,
/// how), from a few paths so that requests meet. A request the plugin's
/// own plan refuses is dropped, as the request gate drops it.
fn build_plans(ops: &[u8]) -> [Plan; 3] {
    let mut plans: [Plan; 3] = Default::default();
    let mut current = 0;
    for op in ops.chunks_exact(3) {
        let (what, path, how) = (op[0] % 7, PATHS[usize::from(op[1]) % 8], op[2]);
        let plugin = PLUGINS[current].to_string();
        let bit = |n: u8| how & (1 << n) != 0;
        let plan = &mut plans[current];
        let _refused = match what {
            0 => plan.add_device(plan::Device {
                plugin,
                container_path: path.into(),
                host_path: HOST_PATHS[usize::from(bit(0))].into(),
                kind: if bit(1) {
                    DeviceType::Block
                } else {
                    DeviceType::Char
                },
                major: 195,
                minor: u32::from((how >> 2) & 3),
                file_mode: if bit(4) { 0o660 } else { 0o666 },
                uid: 0,
                gid: if bit(5) { 44 } else { 0 },
                permissions: if bit(6) { "rw" } else { "rwm" }.into(),
            }),
            1 => plan.add_file(plan::File {
                plugin,
                host_path: HOST_PATHS[usize::from(bit(0))].into(),
                container_path: path.into(),
                role: [FileRole::Binary, FileRole::Library, FileRole::Misc]
                    [usize::from((how >> 1) % 3)],
                transfer: if bit(3) {
                    Transfer::Copy
                } else {
                    Transfer::Bind
                },
                directory: bit(4),
            }),
            2 => plan.add_directory(plan::Directory {
                plugin,
                container_path: path.into(),
                mode: if bit(0) { 0o700 } else { 0o755 },
            }),
            3 => plan.add_symlink(plan::Symlink {
                plugin,
                container_path: path.into(),
                target: if bit(0) { "../y" } else { "x" }.into(),
            }),
            4 => plan.add_env(plan::EnvVar {
                plugin,
                name: ENV_NAMES[usize::from(op[1]) % 3].into(),
                value: if bit(0) { "2" } else { "1" }.into(),
            }),
            5 => {
                plan.request_ldconfig(&plugin);
                Ok(())
            }
            _ => {
                current = (current + 1).min(2);
                Ok(())
            }
        };
    }
    for plan in &mut plans {
        // What `Requests::take_plan` hands over.
        plan.refresh_library_dirs();
    }
    plans
}

/// What a plan holds, apart from which plugin asked for each entry.
/// What a plan holds, in an order that does not depend on the plugins'.
type Content = (BTreeSet<String>, Option<(BTreeSet<String>, Vec<String>)>);

fn content(plan: &Plan) -> Content {
    let mut plan = plan.clone();
    plan.devices.iter_mut().for_each(|d| d.plugin.clear());
    plan.files.iter_mut().for_each(|f| f.plugin.clear());
    plan.directories.iter_mut().for_each(|d| d.plugin.clear());
    plan.symlinks.iter_mut().for_each(|s| s.plugin.clear());
    plan.env.iter_mut().for_each(|e| e.plugin.clear());
    let entries = plan.entries().map(|e| format!("{e:?}")).collect();
    let ldconfig = plan.ldconfig.map(|ld| {
        let plugins = ld.plugins.into_iter().collect();
        (plugins, ld.library_dirs)
    });
    (entries, ldconfig)
}

/// No two entries claim one container path (or variable), and ldconfig
/// lists exactly the directories of the planned libraries, sorted.
fn check_unique_keys(plan: &Plan) {
    let mut paths = BTreeSet::new();
    let mut env = BTreeSet::new();
    for entry in plan.entries() {
        let fresh = match entry {
            plan::Entry::Env(var) => env.insert(var.name.as_str()),
            _ => paths.insert(entry.key()),
        };
        assert!(fresh, "two entries claim {}", entry.key());
    }
    if let Some(ld) = &plan.ldconfig {
        let dirs: BTreeSet<String> = (plan.files.iter())
            .filter(|f| f.role == FileRole::Library)
            .filter_map(|f| Path::new(&f.container_path).parent())
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(ld.library_dirs, dirs.into_iter().collect::<Vec<_>>());
    }
}

/// A lowering holds every entry of its plan, in the order a container
/// needs them, one cgroup rule per device, and device owners inside the
/// host ranges of the mappings.
fn check_lowered(plan: &Plan, lowered: &Lowered, uids: &[IdMapping], gids: &[IdMapping]) {
    let rank = |op: &Op| match op {
        Op::Directory { .. } => 0,
        Op::DeviceNode { .. } => 1,
        Op::Bind { .. } | Op::Copy { .. } => 2,
        Op::Symlink { .. } => 3,
        Op::Write { .. } => 4,
        Op::Ldconfig { .. } => 5,
    };
    let ranks: Vec<u8> = lowered.ops.iter().map(|op| rank(&op.what)).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
    let ldconfig = if plan.ldconfig.is_some() { 2 } else { 0 };
    let entries =
        plan.directories.len() + plan.devices.len() + plan.files.len() + plan.symlinks.len();
    assert_eq!(lowered.ops.len(), entries + ldconfig);
    assert_eq!(lowered.rules.len(), plan.devices.len());
    assert_eq!(lowered.env.len(), plan.env.len());
    let inside = |id: u32, maps: &[IdMapping]| {
        maps.is_empty()
            || maps
                .iter()
                .any(|m| id >= m.host_id && id - m.host_id < m.size)
    };
    for op in &lowered.ops {
        if let Op::DeviceNode { uid, gid, .. } = op.what {
            assert!(inside(uid, uids), "uid {uid} outside {uids:?}");
            assert!(inside(gid, gids), "gid {gid} outside {gids:?}");
        }
    }
}

/// The allow-list and path cleaning, from lines of text: globs up to the
/// first empty line, then paths. A cleaned path is absolute, has no `.`,
/// `..` or empty component, and cleans to itself; the allow-list never
/// allows a path with a `..` component or one outside the literal start
/// of its globs, and every directory above an allowed clean path may hold it
/// (else `glob` would not list it).
pub fn allow(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let globs: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.is_empty())
        .take(16)
        .map(String::from)
        .collect();
    let paths: Vec<&str> = lines.take(16).collect();

    for path in &paths {
        let dotdot = Path::new(path)
            .components()
            .any(|c| c == Component::ParentDir);
        match clean_absolute(path) {
            Ok(clean) => {
                let text = clean.to_str().expect("from a str");
                assert!(text.starts_with('/') && !text.contains("//"), "{text}");
                assert!(clean
                    .components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
                assert_eq!(clean_absolute(text).as_ref(), Ok(&clean), "idempotent");
            }
            Err(_) => assert!(path.contains('\0') || !path.starts_with('/') || dotdot),
        }
    }

    let Ok(allow) = AllowList::new(&globs) else {
        assert!(globs.iter().any(|g| !g.starts_with('/')));
        return;
    };
    for path in &paths {
        let path = Path::new(path);
        if !allow.allows(path) {
            continue;
        }
        assert!(
            !path.components().any(|c| c == Component::ParentDir),
            "allowed with `..`: {}",
            path.display()
        );
        let literal = |g: &str| g[..g.find(['*', '?', '[']).unwrap_or(g.len())].to_string();
        let text = path.to_str().expect("from a str");
        assert!(
            allow.patterns().any(|g| text.starts_with(&literal(g))),
            "{text} is outside every glob's start"
        );
        // `glob` walks clean paths (a glob with `//` matches none of them),
        // one component at a time: a `[...]` holding a `/` is no glob
        // within one component, so no directory may hold what it matches.
        let clean = clean_absolute(text).expect("allowed paths are clean");
        let split = |g: &str| g.split('/').all(|part| glob::Pattern::new(part).is_ok());
        if clean.as_os_str() != path.as_os_str() || !allow.patterns().all(split) {
            continue;
        }
        for dir in clean.ancestors().skip(1) {
            assert!(
                allow.may_hold_below(dir),
                "{} is allowed but {} may hold nothing",
                clean.display(),
                dir.display()
            );
        }
    }
}

/// NUL-separated arguments (no argument holds a NUL).
fn args(data: &[u8]) -> Vec<OsString> {
    data.split(|&b| b == 0)
        .take(32)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

/// runc's command line as the runtime shim reads it. Only `create` and
/// `run` create; the bundle, log and id come from the arguments; and, as
/// with Go's flag parsing, nothing after the id changes what was read.
pub fn runc_argv(data: &[u8]) {
    let args = args(data);
    let parsed = argv::parse(&args);
    let is = |value: &std::ffi::OsStr| {
        args.iter().any(|a| {
            a == value
                || a.as_encoded_bytes()
                    .iter()
                    .position(|&b| b == b'=')
                    .is_some_and(|i| &a.as_encoded_bytes()[i + 1..] == value.as_encoded_bytes())
        })
    };
    if !parsed.creates {
        assert_eq!((&parsed.bundle, &parsed.id), (&None, &None));
    } else {
        assert!(args.iter().any(|a| a == "create" || a == "run"));
    }
    for path in [&parsed.bundle, &parsed.log].into_iter().flatten() {
        assert!(is(path.as_os_str()), "{path:?} is no argument");
    }
    if let Some(id) = &parsed.id {
        assert!(args.iter().any(|a| a.to_string_lossy() == *id), "{id}");
        let mut longer = args.clone();
        longer.push("--bundle=/elsewhere".into());
        assert_eq!(argv::parse(&longer), parsed, "read past the id");
    }
}

/// The front's command line: whatever the front answers itself, the
/// engine's parser (clap) accepts and reads the same.
pub fn front_argv(data: &[u8]) {
    let args: Vec<OsString> = std::iter::once(OsString::from("hookhost"))
        .chain(args(data))
        .collect();
    if let Some(call) = crate::front::parse(&args) {
        assert_eq!(
            crate::cli::front_call(&args),
            Some(call),
            "the front reads {args:?} otherwise than the engine"
        );
    }
}
