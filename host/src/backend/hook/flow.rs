//! The hook from start to end: evaluate the active plugins, lower their
//! plan, inject it, audit what was done.

use std::path::PathBuf;
use std::time::Instant;

use crate::audit::{self, Action};
use crate::config::Inventory;
use crate::context::{ContainerContext, Stage};
use crate::evaluate::{evaluate, EvalError, Outcome};
use crate::lowering::{lower, Lowered, Unmapped};
use crate::runtime::Runtime;

use super::HookError;

/// What the command line tells the hook.
#[derive(Debug, Clone)]
pub struct Options {
    /// Append one JSON line per container here.
    pub audit_log: Option<PathBuf>,
    /// Write the line even when nothing was injected.
    pub audit_always: bool,
    /// The host's ldconfig, by absolute path.
    pub ldconfig: PathBuf,
    /// The runtime shim wrote the spec's share of the plan into config.json:
    /// do only the rest (see `backend::shim::spec_edit::hook_part`).
    pub after_shim: bool,
}

/// Why the hook failed; each names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(
        "the hook's environment carries {names}, which a createContainer hook without \
         \"env\" gets from the container's image; refusing to run as root with it: \
         give the hook entry an explicit \"env\" (e.g. [])"
    )]
    LoaderVariables { names: String },
    #[error(transparent)]
    Evaluate(#[from] EvalError),
    #[error(transparent)]
    Unmapped(#[from] Unmapped),
    #[error(transparent)]
    Inject(#[from] HookError),
}

/// Variables that make a dynamic loader, or glibc itself, load or trust
/// files named by whoever set them.
const LOADER_VARIABLES: &[&str] = &["GLIBC_TUNABLES", "GCONV_PATH"];

/// runc hands a createContainer hook whose entry has no `env` the
/// container's own environment: an image's `LD_PRELOAD` then reaches a root
/// process (CVE-2025-23266). hookhost is statically linked, so no loader
/// reads them, but their presence means the hook entry is wrong: refused at
/// createContainer, where the values are the image's, and a warning (on
/// stderr) elsewhere. Every process hookhost starts gets an empty
/// environment either way.
pub fn check_environment(
    stage: Stage,
    vars: impl Iterator<Item = String>,
) -> Result<Option<String>, FlowError> {
    let mut found: Vec<String> = vars
        .filter(|name| name.starts_with("LD_") || LOADER_VARIABLES.contains(&name.as_str()))
        .collect();
    if found.is_empty() {
        return Ok(None);
    }
    found.sort();
    let names = found.join(", ");
    if stage == Stage::CreateContainer {
        return Err(FlowError::LoaderVariables { names });
    }
    Ok(Some(format!(
        "the hook's environment carries {names}; give the hook entry an explicit \"env\" (e.g. [])"
    )))
}

/// Runs the hook for `ctx`: all or nothing, audited. `show` gets each
/// plugin's log lines as soon as the plugins have run.
pub fn run(
    runtime: &Runtime,
    inventory: &Inventory,
    ctx: &std::sync::Arc<ContainerContext>,
    options: &Options,
    show: &dyn Fn(&[Outcome]),
) -> Result<(), FlowError> {
    let start = Instant::now();
    let audit = |actions: &[Action], error: Option<String>| {
        let Some(log) = &options.audit_log else {
            return;
        };
        let record = audit::Record {
            container: &ctx.id,
            stage: ctx.stage,
            ok: error.is_none(),
            error,
            micros: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            actions,
        };
        if let Err(e) = audit::append(log, &record) {
            eprintln!(
                "hookhost: warning: cannot write the audit log {}: {e}",
                log.display()
            );
        }
    };
    let evaluation = match evaluate(runtime, inventory, ctx) {
        Ok(evaluation) => evaluation,
        Err(failed) => {
            show(&failed.outcomes);
            audit(&[], Some(failed.error.to_string()));
            return Err(failed.error.into());
        }
    };
    show(&evaluation.outcomes);
    let plan = evaluation.plan;
    if plan.is_empty() {
        if options.audit_always {
            audit(&[], None);
        }
        return Ok(());
    }
    // After the shim, the device nodes are the spec's (owners as the
    // container sees them) and dropped here: only they use the mappings.
    let lowered = if options.after_shim {
        lower(&plan, &[], &[]).map(crate::backend::shim::spec_edit::hook_part)
    } else {
        lower(&plan, &ctx.uid_mappings, &ctx.gid_mappings)
    };
    let lowered = match lowered {
        Ok(lowered) => lowered,
        Err(unmapped) => {
            audit(&[], Some(unmapped.to_string()));
            return Err(unmapped.into());
        }
    };
    if lowered == Lowered::default() {
        // After the shim, the spec may hold all of it.
        if options.audit_always {
            audit(&[], None);
        }
        return Ok(());
    }
    let (actions, result) = super::inject(lowered, ctx, runtime.host(), &options.ldconfig);
    audit(&actions, result.as_ref().err().map(ToString::to_string));
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> impl Iterator<Item = String> {
        names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn loader_variables_are_refused_at_create_container_and_warned_about_elsewhere() {
        let image = [
            "PATH",
            "LD_PRELOAD",
            "HOME",
            "GLIBC_TUNABLES",
            "LD_LIBRARY_PATH",
        ];
        let err = check_environment(Stage::CreateContainer, vars(&image)).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the hook's environment carries GLIBC_TUNABLES, LD_LIBRARY_PATH, LD_PRELOAD,"
            ),
            "{err}"
        );
        let warning = check_environment(Stage::Prestart, vars(&image)).unwrap();
        assert!(warning.unwrap().contains("LD_PRELOAD"));
        assert_eq!(
            check_environment(Stage::CreateContainer, vars(&["PATH", "OLD_PWD"])).unwrap(),
            None
        );
    }
}
