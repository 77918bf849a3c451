//! The command line: argument parsing and one function per command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::cdi::{self, generate::Generated};
use crate::backend::dry_run;
use crate::backend::hook::{flow, ldconfig};
use crate::backend::shim::{self, argv, hooks::HookConfig};
use crate::config::{Inventory, PluginKind, DEFAULT_PLUGIN_DIRS};
use crate::context::{ContainerContext, OciState, Stage};
use crate::deadline::Deadline;
use crate::evaluate::{evaluate, Outcome, Status};
use crate::hostfs::HostFs;
use crate::install;
use crate::lowering::lower;
use crate::runtime::{default_cache_dir, Cache, LogLevel, Runtime};

/// An OCI hook host whose device and file injection policies are
/// WebAssembly components.
///
/// Vendor policies (`NAME.wasm` + `NAME.json`) decide what a container gets;
/// hookhost checks every request against the plugin's allow-list and carries
/// out the merged plan itself.
#[derive(Debug, Parser)]
#[command(name = "hookhost", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// A plugin directory; repeat for several, lowest precedence first. A
    /// manifest in a later directory masks one of the same name in an
    /// earlier one. Replaces the defaults (/usr/share/hookhost/plugins.d,
    /// then /etc/hookhost/plugins.d).
    #[arg(long = "plugins-dir", value_name = "DIR", global = true)]
    plugins_dirs: Vec<PathBuf>,

    /// The host as plugins see it: every host path they read or request is
    /// resolved under this directory (for tests with a fake GPU host).
    #[arg(long, value_name = "DIR", default_value = "/", global = true)]
    host_root: PathBuf,

    /// Where precompiled plugins are cached [default: /var/cache/hookhost
    /// for root, ~/.cache/hookhost otherwise]. Must be owned by the running
    /// user and writable by nobody else.
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,

    /// Compile plugins on every run instead of using the cache.
    #[arg(long, global = true, conflicts_with = "cache_dir")]
    no_cache: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the active plugins against a bundle and show the plan, changing nothing.
    Test(TestArgs),
    /// Inspect, check and precompile the installed plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Run as an OCI prestart hook: read the container's state on stdin, run
    /// the active plugins and inject their plan into the starting container.
    Prestart(HookArgs),
    /// The same as `prestart`, as a createRuntime hook.
    CreateRuntime(HookArgs),
    /// The same work as a createContainer hook: runc runs it inside the
    /// container's mount namespace (and cgroup), before pivot_root.
    CreateContainer(HookArgs),
    /// Run as an OCI runtime in front of the real one (for Docker,
    /// containerd, podman): on `create` and `run`, write the plan into the
    /// bundle's config.json, then exec the real runtime with the same
    /// arguments.
    ///
    /// Example (Docker's daemon.json `runtimeArgs` end with the `--`):
    /// hookhost runtime --runtime-path /usr/sbin/runc -- --root /run/runc create --bundle B ID
    Runtime(RuntimeArgs),
    /// Write and list CDI specs, for the engines that inject devices
    /// themselves (Kubernetes with containerd >= 1.7 or CRI-O, podman,
    /// Docker >= 25).
    #[command(subcommand)]
    Cdi(CdiCommand),
    /// The createContainer hook that `cdi generate` names in a spec, for
    /// what a CDI spec cannot express: directories, symlinks and the linker
    /// cache. Its work is its arguments; it reads the container's state on
    /// stdin and runs no plugin.
    CdiHook(CdiHookArgs),
    /// Write what an engine needs to run hookhost: a hooks.d file for podman
    /// and CRI-O, or print Docker's and containerd's runtime entries.
    #[command(subcommand)]
    Install(InstallCommand),
    /// Remove what `install` wrote.
    #[command(subcommand)]
    Uninstall(UninstallCommand),
    /// Internal: the process of `test --run`'s container, which reports
    /// what it sees at each planned path (see trial.rs).
    #[command(name = crate::trial::INSPECT_COMMAND, hide = true)]
    InspectContainer {
        /// The expectations, as JSON.
        expected: String,
    },
    /// Internal: the executor runs the host's ldconfig through this, in new
    /// namespaces and under resource limits (see backend::hook::ldconfig).
    #[command(name = ldconfig::COMMAND, hide = true)]
    LdconfigSandbox(LdconfigSandboxArgs),
}

#[derive(Debug, Args)]
struct RuntimeArgs {
    /// The real OCI runtime, by absolute path [default: the first of
    /// /usr/local/sbin/runc, /usr/local/bin/runc, /usr/sbin/runc,
    /// /usr/bin/runc, /sbin/runc, /bin/runc; never searched in PATH].
    #[arg(long, value_name = "PATH")]
    runtime_path: Option<PathBuf>,

    /// Hooks to prepend to each stage's in config.json, in oci-add-hooks'
    /// format: {"hooks": {"prestart": [{"path": ..., "args": [...]}], ...}}.
    #[arg(long, value_name = "FILE")]
    hook_config_path: Option<PathBuf>,

    /// The host's ldconfig, by absolute path, for hookhost's hook entry.
    #[arg(long, value_name = "PATH", default_value = "/sbin/ldconfig")]
    ldconfig: PathBuf,

    /// The runtime's own arguments, after `--`: passed on unchanged.
    #[arg(last = true, value_name = "RUNTIME ARGS")]
    args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Subcommand)]
enum InstallCommand {
    /// A containers/common hooks.d file (podman, CRI-O) that runs `hookhost
    /// prestart`, with this command's global options and an empty `env`;
    /// its `when` comes from the installed plugins' activation rules
    /// (`always` where hooks.d cannot say them: environment variables,
    /// alternatives).
    HooksD {
        /// The hooks directory.
        #[arg(long, value_name = "DIR", default_value = install::HOOKS_D)]
        dir: PathBuf,
        /// Print the file instead of writing it.
        #[arg(long)]
        print: bool,
        /// The host's ldconfig, by absolute path, for the hook.
        #[arg(long, value_name = "PATH", default_value = "/sbin/ldconfig")]
        ldconfig: PathBuf,
    },
    /// Print the `runtimes` entry of Docker's daemon.json for the runtime
    /// shim (merge it into /etc/docker/daemon.json, then reload dockerd).
    Docker {
        /// The real runtime [default: the shim's search].
        #[arg(long, value_name = "PATH")]
        runtime_path: Option<PathBuf>,
    },
    /// Print containerd's CRI runtime entry for the runtime shim (for
    /// /etc/containerd/config.toml) and a Kubernetes RuntimeClass.
    Containerd {
        /// The `hookhost-runtime` link to hookhost (see `runtime`).
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/usr/local/bin/hookhost-runtime"
        )]
        link: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CdiCommand {
    /// Write one CDI spec per plugin (each installed one by default) for
    /// the devices it offers on this host, each planned by the plugin
    /// without a container, and `all`. Each spec is validated before it is
    /// written, atomically; a plugin that fails is reported by name and the
    /// others' specs are still written (the exit status says one failed).
    Generate {
        /// A directory (one `hookhost-PLUGIN.json` per plugin), or a file
        /// for a single plugin (its extension picks the format).
        #[arg(long, value_name = "FILE|DIR", default_value = "/etc/cdi")]
        output: PathBuf,
        /// The file format [default: json, or the --output file's extension].
        #[arg(long, value_enum)]
        format: Option<CdiFormat>,
        /// The spec's kind (`vendor.com/class`), for a single plugin
        /// [default: the manifest's `cdi-kind`, else hookhost/PLUGIN].
        #[arg(long, value_name = "NAME")]
        vendor_class: Option<String>,
        /// The host's ldconfig, by absolute path, for the spec's hook.
        #[arg(long, value_name = "PATH", default_value = "/sbin/ldconfig")]
        ldconfig: PathBuf,
        /// Plugins to write specs for (default: every enabled one that can
        /// plan devices).
        plugins: Vec<String>,
    },
    /// List the devices the CDI specs offer, by fully qualified name
    /// (`vendor.com/class=name`), with the file each comes from.
    List {
        /// A spec directory; repeat for several [default: /etc/cdi, /var/run/cdi].
        #[arg(long = "dir", value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CdiFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
struct CdiHookArgs {
    /// The plugin(s) the work is for, for messages.
    #[arg(long, value_name = "NAME", default_value = "cdi")]
    plugin: String,
    /// The host's ldconfig, by absolute path (never the image's).
    #[arg(long, value_name = "PATH", default_value = "/sbin/ldconfig")]
    ldconfig: PathBuf,
    /// A directory to make in the container, with its octal mode.
    #[arg(long = "dir", num_args = 2, value_names = ["PATH", "MODE"])]
    dirs: Vec<String>,
    /// A symlink to make in the container, with its target.
    #[arg(long = "symlink", num_args = 2, value_names = ["PATH", "TARGET"])]
    symlinks: Vec<String>,
    /// A library directory of the container: listed in an ld.so.conf.d
    /// drop-in, then the linker cache is refreshed.
    #[arg(long = "ldconfig-dir", value_name = "DIR")]
    ldconfig_dirs: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum UninstallCommand {
    /// Remove hookhost's hooks.d file (only if it is hookhost's).
    HooksD {
        #[arg(long, value_name = "DIR", default_value = install::HOOKS_D)]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct LdconfigSandboxArgs {
    /// The host's ldconfig, by absolute path.
    #[arg(long, value_name = "PATH")]
    ldconfig: PathBuf,
    /// The container's rootfs (ldconfig's `-r`).
    rootfs: PathBuf,
    /// The library directories, as paths inside the rootfs.
    dirs: Vec<String>,
}

#[derive(Debug, Args)]
struct HookArgs {
    /// Append one JSON line per container to FILE: its id, the stage, and
    /// each action with its plugin, outcome and duration.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,

    /// Write the audit line even when nothing was injected.
    #[arg(long, requires = "audit_log")]
    audit_always: bool,

    /// The host's ldconfig, by absolute path (never the image's).
    #[arg(long, value_name = "PATH", default_value = "/sbin/ldconfig")]
    ldconfig: PathBuf,

    /// Give up after this many seconds, whatever the hook is waiting for
    /// (a state that never ends, a stuck plugin or file system), with one
    /// line naming the stage and the container, and a non-zero exit.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,

    /// Set by `hookhost runtime` in the hook entry it adds: the devices,
    /// their cgroup rules, the binds and the env are in config.json already;
    /// evaluate the plugins as the shim did and do only the rest
    /// (directories, copies, symlinks, ldconfig).
    #[arg(long)]
    after_shim: bool,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// The OCI bundle: a directory with config.json and the rootfs.
    bundle: PathBuf,

    /// The OCI state to use; without it one is made from the bundle (id =
    /// the bundle's directory name, no pid).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,

    /// The stage the plan is made for (it decides e.g. whether set-env works).
    #[arg(long, value_enum, default_value = "prestart")]
    stage: Stage,

    /// Print the plan as JSON instead of a table.
    #[arg(long, conflicts_with = "steps")]
    json: bool,

    /// Print the operations the hook would run, in order, instead of the
    /// plan (device owners mapped through the container's user namespace).
    #[arg(long)]
    steps: bool,

    /// Compare with this plan (JSON); exit 1 and print a diff if they differ.
    #[arg(long, value_name = "PLAN.json")]
    expect: Option<PathBuf>,

    /// Also show the plugins' debug messages.
    #[arg(short, long)]
    verbose: bool,

    /// Then run the bundle for real: a copy of its rootfs under the runtime
    /// (runc by default), hookhost as the stage's hook; the container's
    /// process (hookhost, bound in) reports what it sees at every planned
    /// path. Exit 1 when the hook fails or a path is not as planned.
    #[arg(long)]
    run: bool,

    /// The runtime for --run, by absolute path [default: runc, found as
    /// `hookhost runtime` finds it].
    #[arg(long, value_name = "PATH", requires = "run")]
    runtime: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// List installed plugins: enabled, disabled and masked; with --bundle,
    /// whether each one is active for that container.
    List {
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        #[arg(long, value_name = "FILE", requires = "bundle")]
        state: Option<PathBuf>,
    },
    /// Load each plugin, check its WIT version and have it validate its settings.
    Check {
        /// Plugins to check (default: all enabled ones).
        names: Vec<String>,
    },
    /// Precompile plugins into the cache, so the hook never compiles.
    Compile {
        /// Plugins to compile (default: all enabled ones).
        names: Vec<String>,
    },
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let global = self.global;
        match self.command {
            Command::Test(args) => test(&global, args),
            Command::Plugins(PluginsCommand::List { bundle, state }) => {
                plugins_list(&global, bundle.as_deref(), state.as_deref())
            }
            Command::Plugins(PluginsCommand::Check { names }) => plugins_check(&global, &names),
            Command::Plugins(PluginsCommand::Compile { names }) => plugins_compile(&global, &names),
            Command::Prestart(args) => hook(&global, args, Stage::Prestart),
            Command::CreateRuntime(args) => hook(&global, args, Stage::CreateRuntime),
            Command::CreateContainer(args) => hook(&global, args, Stage::CreateContainer),
            Command::Runtime(args) => runtime(&global, args),
            Command::Cdi(CdiCommand::Generate {
                output,
                format,
                vendor_class,
                ldconfig,
                plugins,
            }) => cdi_generate(
                &global,
                &output,
                format,
                vendor_class.as_deref(),
                &ldconfig,
                &plugins,
            ),
            Command::Cdi(CdiCommand::List { dirs }) => cdi_list(&dirs),
            Command::CdiHook(args) => cdi_hook(&global, args),
            Command::Install(command) => install(&global, command),
            Command::InspectContainer { expected } => {
                let expected: Vec<crate::trial::Expect> = serde_json::from_str(&expected)?;
                let (report, ok) = crate::trial::inspect(&expected);
                print!("{report}");
                Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Command::Uninstall(UninstallCommand::HooksD { dir }) => {
                match install::remove_hooks_d(&dir)? {
                    Some(path) => println!("removed {}", path.display()),
                    None => println!("no {} in {}", install::HOOKS_D_FILE, dir.display()),
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::LdconfigSandbox(args) => {
                Ok(ldconfig::sandbox(&args.ldconfig, &args.rootfs, &args.dirs))
            }
        }
    }
}

impl Global {
    fn plugin_dirs(&self) -> Vec<PathBuf> {
        if self.plugins_dirs.is_empty() {
            DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect()
        } else {
            self.plugins_dirs.clone()
        }
    }

    fn inventory(&self) -> anyhow::Result<Inventory> {
        Ok(Inventory::load(&self.plugin_dirs())?)
    }

    fn cache(&self) -> anyhow::Result<Option<Cache>> {
        if self.no_cache {
            return Ok(None);
        }
        match self.cache_dir.clone().or_else(default_cache_dir) {
            Some(dir) => Ok(Some(Cache::open(&dir)?)),
            None => Ok(None),
        }
    }

    fn runtime(&self) -> anyhow::Result<Runtime> {
        let host = HostFs::open(&self.host_root)?;
        Ok(Runtime::new(host, self.cache()?))
    }

    /// These options as arguments, for a hook entry that must see the
    /// plugins and the host as this command does: paths made absolute,
    /// since the runtime runs hooks in the bundle.
    fn to_args(&self) -> Vec<std::ffi::OsString> {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .into_os_string()
        };
        let mut args = Vec::new();
        for dir in &self.plugins_dirs {
            args.extend(["--plugins-dir".into(), absolute(dir)]);
        }
        if self.host_root != Path::new("/") {
            args.extend(["--host-root".into(), absolute(&self.host_root)]);
        }
        if let Some(dir) = &self.cache_dir {
            args.extend(["--cache-dir".into(), absolute(dir)]);
        }
        if self.no_cache {
            args.push("--no-cache".into());
        }
        args
    }
}

fn load_context(
    bundle: &Path,
    state: Option<&Path>,
    stage: Stage,
) -> anyhow::Result<ContainerContext> {
    // The bundle on the command line wins over the one a fixture's state names.
    let state = match state {
        Some(file) => OciState::read(Some(file))?,
        None => OciState::for_bundle(bundle),
    };
    Ok(ContainerContext::load(bundle, state, stage)?)
}

fn test(global: &Global, args: TestArgs) -> anyhow::Result<ExitCode> {
    let ctx = Arc::new(load_context(
        &args.bundle,
        args.state.as_deref(),
        args.stage,
    )?);
    let inventory = global.inventory()?;
    let runtime = global.runtime()?;
    let evaluation = match evaluate(&runtime, &inventory, &ctx) {
        Ok(evaluation) => evaluation,
        Err(failed) => {
            print_logs(&failed.outcomes, args.verbose);
            return Err(failed.error.into());
        }
    };
    print_logs(&evaluation.outcomes, args.verbose);
    for outcome in &evaluation.outcomes {
        if let Status::Skipped(why) = &outcome.status {
            eprintln!("hookhost: warning: skipped {why}");
        }
    }
    if let Some(expect) = &args.expect {
        let expected = dry_run::read_expected(expect)?;
        match dry_run::diff(&expected, &evaluation.plan, &expect.display().to_string()) {
            None => eprintln!("hookhost: the plan matches {}", expect.display()),
            Some(diff) => {
                print!("{diff}");
                eprintln!("hookhost: the plan differs from {}", expect.display());
                return Ok(ExitCode::FAILURE);
            }
        }
    } else if args.steps {
        let ctx = &ctx;
        let lowered = lower(&evaluation.plan, &ctx.uid_mappings, &ctx.gid_mappings)?;
        print!("{}", dry_run::render_steps(&lowered));
    } else if args.json {
        print!("{}", dry_run::to_json(&evaluation.plan));
    } else {
        print!(
            "{}",
            dry_run::render(&evaluation.plan, &evaluation.outcomes)
        );
    }
    if args.run {
        return trial_run(global, &ctx, &evaluation.plan, args.runtime.as_deref());
    }
    Ok(ExitCode::SUCCESS)
}

/// `test --run`: the plan carried out under a real runtime on a copy of
/// the bundle (see trial.rs).
fn trial_run(
    global: &Global,
    ctx: &ContainerContext,
    plan: &crate::plan::Plan,
    runtime: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let lowered = lower(plan, &ctx.uid_mappings, &ctx.gid_mappings)?;
    let config = serde_json::from_slice(&ContainerContext::read_config(&ctx.bundle)?)?;
    let mut hookhost = vec![std::env::current_exe()?.into_os_string()];
    hookhost.extend(global.to_args());
    let runtime = shim::find_runtime(runtime)?;
    println!("\nrunning it under {}:", runtime.display());
    let (ok, said) = crate::trial::run(crate::trial::Trial {
        rootfs: &ctx.rootfs,
        config,
        stage: ctx.stage,
        hookhost,
        runtime: &runtime,
        expected: crate::trial::expectations(&lowered),
    })?;
    print!("{said}");
    if !ok {
        eprintln!("hookhost: the container did not see the plan (see above)");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("hookhost: the container saw the plan");
    Ok(ExitCode::SUCCESS)
}

/// The hook: evaluate, lower, inject, audit (see `backend::hook::flow`).
/// Runs with what runc gives a hook: no PATH, no HOME, no terminal; every
/// failure is one line on stderr.
fn hook(global: &Global, args: HookArgs, stage: Stage) -> anyhow::Result<ExitCode> {
    let deadline = Deadline::start(stage, Duration::from_secs(args.timeout));
    let names = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    if let Some(warning) = flow::check_environment(stage, names)? {
        eprintln!("hookhost: warning: {warning}");
    }
    let state = OciState::read(None)?;
    deadline.container(&state.id);
    let bundle = state.bundle.clone();
    // After the shim, the plugins see the stage the shim evaluated them at,
    // so that they decide as they did there.
    let seen_at = if args.after_shim {
        Stage::RuntimeShim
    } else {
        stage
    };
    let ctx = Arc::new(ContainerContext::load(&bundle, state, seen_at)?);
    let inventory = global.inventory()?;
    let runtime = global.runtime()?;
    let options = flow::Options {
        audit_log: args.audit_log,
        audit_always: args.audit_always,
        ldconfig: args.ldconfig,
        after_shim: args.after_shim,
    };
    flow::run(&runtime, &inventory, &ctx, &options, &|outcomes| {
        print_logs(outcomes, false)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `cdi generate`: each plugin's devices planned, lowered, translated into
/// a spec, validated and written (see `backend::cdi`).
fn cdi_generate(
    global: &Global,
    output: &Path,
    format: Option<CdiFormat>,
    vendor_class: Option<&str>,
    ldconfig: &Path,
    names: &[String],
) -> anyhow::Result<ExitCode> {
    let inventory = global.inventory()?;
    let plugins = inventory.select(names)?;
    // A file names one spec; anything else is the directory of the specs.
    let from_file = match output.extension().and_then(|e| e.to_str()) {
        _ if output.is_dir() => None,
        Some("json") => Some(cdi::Format::Json),
        Some("yaml") => Some(cdi::Format::Yaml),
        _ => None,
    };
    if (from_file.is_some() || vendor_class.is_some()) && plugins.len() != 1 {
        bail!(
            "--output FILE and --vendor-class are for one plugin; {} are selected (name one)",
            plugins.len()
        );
    }
    let format = match (format, from_file) {
        (Some(CdiFormat::Yaml), None) => cdi::Format::Yaml,
        (Some(CdiFormat::Json), None) | (None, None) => cdi::Format::Json,
        (None, Some(format)) => format,
        (Some(_), Some(format)) => bail!(
            "--format and --output {} disagree: the file's extension is {}",
            output.display(),
            format.extension()
        ),
    };
    let (dir, file_stem) = match from_file {
        Some(_) => (
            output.parent().unwrap_or(Path::new(".")),
            output.file_stem().and_then(|s| s.to_str()),
        ),
        None => (output, None),
    };
    let hook = cdi::HookCommand {
        hookhost: std::env::current_exe()?,
        ldconfig: ldconfig.to_path_buf(),
    };
    let runtime = global.runtime()?;
    let mut failed = 0;
    for plugin in plugins {
        let Some(wasm) = plugin.wasm() else {
            println!(
                "skipped {}: an oci-injector-hook config names no devices",
                plugin.name
            );
            continue;
        };
        let target = cdi::generate::Target {
            dir,
            file_stem: match file_stem {
                Some(stem) => stem.to_string(),
                None => format!("hookhost-{}", plugin.name),
            },
            format,
        };
        let kind = vendor_class.unwrap_or(&wasm.cdi_kind);
        let (logs, generated) = cdi::generate::generate(&runtime, plugin, kind, &hook, &target);
        let outcome = Outcome {
            name: plugin.name.clone(),
            status: Status::Inactive,
            logs,
        };
        print_logs(&[outcome], false);
        match generated {
            Ok(Generated::Written {
                path,
                kind,
                version,
                devices,
            }) => println!(
                "wrote {}: {kind} ({devices} devices, cdiVersion {version})",
                path.display()
            ),
            Ok(Generated::NoDevices { removed }) => {
                println!("skipped {}: it offers no device on this host", plugin.name);
                for path in removed {
                    println!("removed {}: its devices are gone", path.display());
                }
            }
            // Named on the command line, a plugin that cannot plan devices
            // is an error; among all of them, it is simply not offered.
            Err(e) if names.is_empty() && e.plans_no_devices() => {
                println!("skipped {}", crate::error::chain(&e))
            }
            Err(e) => {
                eprintln!("hookhost: {}", crate::error::chain(&e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} plugin(s) failed; the others' specs are written");
    }
    Ok(ExitCode::SUCCESS)
}

/// `cdi list`: every device of the specs in the CDI directories.
fn cdi_list(dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let dirs: Vec<PathBuf> = if dirs.is_empty() {
        cdi::DEFAULT_DIRS.iter().map(PathBuf::from).collect()
    } else {
        dirs.to_vec()
    };
    let mut unreadable = 0;
    for listed in cdi::list(&dirs)? {
        match listed.devices {
            Ok(devices) => {
                for device in devices {
                    println!("{device}\t{}", listed.file.display());
                }
            }
            Err(e) => {
                eprintln!("hookhost: {e}");
                unreadable += 1;
            }
        }
    }
    if unreadable > 0 {
        bail!("{unreadable} spec file(s) could not be read");
    }
    Ok(ExitCode::SUCCESS)
}

/// `cdi-hook`: the work its arguments name, done as a createContainer hook.
fn cdi_hook(global: &Global, args: CdiHookArgs) -> anyhow::Result<ExitCode> {
    let stage = Stage::CreateContainer;
    let deadline = Deadline::start(stage, Duration::from_secs(args.timeout));
    let names = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    flow::check_environment(stage, names)?;
    let pairs = |flat: Vec<String>| -> Vec<(String, String)> {
        flat.chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    };
    let work = cdi::hook::HookWork {
        plugin: args.plugin,
        dirs: pairs(args.dirs),
        symlinks: pairs(args.symlinks),
        ldconfig_dirs: args.ldconfig_dirs,
    };
    let lowered = work.lower()?;
    let state = OciState::read(None)?;
    deadline.container(&state.id);
    let ctx = ContainerContext::load(&state.bundle.clone(), state, stage)?;
    if lowered.ops.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let host = HostFs::open(&global.host_root)?;
    let (_, result) = crate::backend::hook::inject(lowered, &ctx, &host, &args.ldconfig);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The runtime shim (see `backend::shim`): edits config.json on `create`
/// and `run`, then becomes the real runtime. A failure before the exec is
/// one line on stderr (and in runc's JSON log, where the engine reads it),
/// a non-zero exit, and config.json unchanged.
fn runtime(global: &Global, args: RuntimeArgs) -> anyhow::Result<ExitCode> {
    let called = argv::parse(&args.args);
    let prepared = (|| -> anyhow::Result<()> {
        let real = shim::find_runtime(args.runtime_path.as_deref())?;
        if called.creates {
            let hook_config = args
                .hook_config_path
                .as_deref()
                .map(HookConfig::read)
                .transpose()?;
            let exe = std::env::current_exe()?;
            let mut hook_entry = vec![exe.into_os_string()];
            hook_entry.extend(global.to_args());
            hook_entry.extend(["create-runtime".into(), "--after-shim".into()]);
            hook_entry.extend(["--ldconfig".into(), args.ldconfig.clone().into_os_string()]);
            let options = shim::Options {
                hook_config,
                hook_entry,
            };
            let bundle = called.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
            let inventory = global.inventory()?;
            let runtime = || {
                global
                    .runtime()
                    .map_err(|e| shim::ShimError::Setup(format!("{e:#}")))
            };
            shim::prepare(
                &bundle,
                called.id.as_deref(),
                &inventory,
                &runtime,
                &options,
                &|outcomes| print_logs(outcomes, false),
            )?;
        }
        Err(shim::exec(&real, &args.args).into())
    })();
    let error = prepared.expect_err("exec returns only on failure");
    let message = format!("hookhost: {}", crate::error::chain(error.as_ref()));
    if let (Some(log), true) = (&called.log, called.log_json) {
        shim::log_error(log, &message);
    }
    eprintln!("{message}");
    Ok(ExitCode::FAILURE)
}

/// `install`: hooks.d written (or printed), Docker's and containerd's
/// entries printed.
fn install(global: &Global, command: InstallCommand) -> anyhow::Result<ExitCode> {
    let exe = crate::front::installed_exe()?;
    match command {
        InstallCommand::HooksD {
            dir,
            print,
            ldconfig,
        } => {
            let inventory = global.inventory()?;
            let (when, notes) = install::hooks_d_when(&inventory.plugins);
            for note in &notes {
                eprintln!("hookhost: note: `when` is `always`: {note}");
            }
            let mut command = vec![exe.into_os_string()];
            command.extend(global.to_args());
            command.extend(["prestart".into(), "--ldconfig".into(), ldconfig.into()]);
            let file = install::hooks_d_file(&command, when);
            let text = serde_json::to_string_pretty(&file)? + "\n";
            if print {
                print!("{text}");
            } else {
                let path = install::write_file(&dir, install::HOOKS_D_FILE, &text)?;
                println!("wrote {}", path.display());
            }
        }
        InstallCommand::Docker { runtime_path } => {
            let mut args = global.to_args();
            if let Some(path) = runtime_path {
                args.extend(["--runtime-path".into(), path.into_os_string()]);
            }
            print!("{}", install::docker_snippet(&exe, &args));
        }
        InstallCommand::Containerd { link } => print!("{}", install::containerd_snippet(&link)),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_logs(outcomes: &[Outcome], verbose: bool) {
    for outcome in outcomes {
        for line in &outcome.logs {
            if line.level == LogLevel::Debug && !verbose {
                continue;
            }
            let level = format!("{:?}", line.level).to_lowercase();
            eprintln!("{}: {level}: {}", outcome.name, line.message);
        }
    }
}

fn plugins_list(
    global: &Global,
    bundle: Option<&Path>,
    state: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let inventory = global.inventory()?;
    let ctx = bundle
        .map(|b| load_context(b, state, Stage::Prestart))
        .transpose()?;
    println!("{:<16} {:<10} MANIFEST / WASM", "NAME", "STATUS");
    for plugin in &inventory.plugins {
        let status = match &ctx {
            Some(ctx) if plugin.activation.matches(ctx) => "active",
            Some(_) => "inactive",
            None => "enabled",
        };
        println!(
            "{:<16} {:<10} {}",
            plugin.name,
            status,
            plugin.manifest.display()
        );
        match &plugin.kind {
            PluginKind::Wasm(wasm) => println!("{:<16} {:<10} {}", "", "", wasm.wasm.display()),
            PluginKind::Static(_) => {
                println!("{:<16} {:<10} (oci-injector-hook config)", "", "")
            }
        }
    }
    for (name, manifest) in &inventory.disabled {
        println!("{name:<16} {:<10} {}", "disabled", manifest.display());
    }
    for masked in &inventory.masked {
        println!(
            "{:<16} {:<10} {} (by {})",
            masked.name,
            "masked",
            masked.manifest.display(),
            masked.by.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn plugins_check(global: &Global, names: &[String]) -> anyhow::Result<ExitCode> {
    let inventory = global.inventory()?;
    let runtime = global.runtime()?;
    let ctx = Arc::new(ContainerContext::empty());
    let mut failed = 0;
    for plugin in inventory.select(names)? {
        let PluginKind::Wasm(wasm) = &plugin.kind else {
            // Parsed and checked when the inventory was loaded.
            println!(
                "ok      {}: oci-injector-hook config, run by the host",
                plugin.name
            );
            continue;
        };
        let checked = runtime
            .instantiate(plugin, ctx.clone())
            .and_then(|mut instance| {
                let info = instance.describe()?;
                instance.validate_settings(&wasm.settings)?;
                Ok(info)
            });
        match checked {
            Ok(info) => println!(
                "ok      {}: {} {} ({}): {}",
                plugin.name, info.name, info.version, info.vendor, info.summary
            ),
            Err(e) => {
                println!("FAILED  {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} plugin(s) failed the check");
    }
    Ok(ExitCode::SUCCESS)
}

fn plugins_compile(global: &Global, names: &[String]) -> anyhow::Result<ExitCode> {
    if global.no_cache {
        bail!("`plugins compile` fills the cache; it cannot be used with --no-cache");
    }
    let inventory = global.inventory()?;
    let runtime = global.runtime()?;
    for plugin in inventory.select(names)? {
        if plugin.wasm().is_none() {
            println!("static   {}: nothing to compile", plugin.name);
            continue;
        }
        let (entry, compiled) = runtime.precompile(plugin)?;
        println!(
            "{} {}: {}",
            if compiled { "compiled" } else { "cached  " },
            plugin.name,
            entry.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the engine reads from a command line that the front may answer
/// itself (see [`crate::front`]), in the front's terms: `None` when clap
/// refuses it or it is another command. The front must never accept what
/// this refuses, nor read it otherwise (the fuzz target `front_argv`).
pub(crate) fn front_call(args: &[std::ffi::OsString]) -> Option<crate::front::Call> {
    use crate::front::Call;
    let cli = Cli::try_parse_from(shim::invoked_as(args.to_vec()).ok()?).ok()?;
    let plugins_dirs = cli.global.plugin_dirs();
    let (stage, hook) = match cli.command {
        Command::Prestart(hook) => (Stage::Prestart, hook),
        Command::CreateRuntime(hook) => (Stage::CreateRuntime, hook),
        Command::CreateContainer(hook) => (Stage::CreateContainer, hook),
        Command::Runtime(runtime) => {
            return Some(Call::Runtime {
                runtime_path: runtime.runtime_path,
                args: runtime.args,
                plugins_dirs,
            })
        }
        _ => return None,
    };
    Some(Call::Hook {
        stage,
        timeout: hook.timeout,
        after_shim: hook.after_shim,
        plugins_dirs,
    })
}

/// Parses the command line and runs it; what `main` calls.
pub fn main() -> ExitCode {
    // Engines that take a runtime by path alone (containerd's BinaryName,
    // `ctr --runc-binary`, podman's --runtime) run `hookhost-runtime`, a
    // link to hookhost: its options come from a file (see shim::invoked_as).
    let cli = match shim::invoked_as(std::env::args_os().collect()) {
        Ok(args) => Cli::parse_from(args),
        Err(e) => {
            eprintln!("hookhost: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            // The whole chain on one line, so that the system's own error
            // ("Permission denied (os error 13)") is never lost; a cause a
            // message already quotes is said once.
            eprintln!("hookhost: {}", crate::error::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
