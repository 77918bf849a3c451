//! Runs the active plugins against one container and merges their requests
//! into one plan. Every back end starts here.

use std::sync::Arc;

use crate::config::{Inventory, OnError, PluginConfig, PluginKind};
use crate::context::ContainerContext;
use crate::plan::{Conflict, Plan};
use crate::requests::{DeviceGate, RequestError, Requests};
use crate::runtime::{LogLevel, LogLine, PluginError, PluginInfo, Runtime};
use crate::static_policy::StaticPolicy;

/// What happened to one installed plugin.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub status: Status,
    pub logs: Vec<LogLine>,
}

#[derive(Debug)]
pub enum Status {
    /// Its activation did not match the container.
    Inactive,
    Applied(PluginInfo),
    /// It failed and its manifest says `on-error: skip`: its requests were dropped.
    Skipped(String),
    /// It failed and failed the container (`on-error: fail`).
    Failed(String),
}

#[derive(Debug)]
pub struct Evaluation {
    pub plan: Plan,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("plugin `{plugin}` ({}): {error}", manifest.display())]
    Static {
        plugin: String,
        manifest: std::path::PathBuf,
        error: RequestError,
    },
    #[error("plugin `{plugin}`: its requests conflict with an earlier plugin's: {conflict}")]
    Conflict { plugin: String, conflict: Conflict },
}

/// A failure that fails the container, with the logs gathered up to it (so
/// the user sees what the plugins said before it).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failed {
    pub error: EvalError,
    pub outcomes: Vec<Outcome>,
}

pub fn evaluate(
    runtime: &Runtime,
    inventory: &Inventory,
    ctx: &Arc<ContainerContext>,
) -> Result<Evaluation, Box<Failed>> {
    let mut plan = Plan::default();
    let mut outcomes = Vec::new();
    for plugin in &inventory.plugins {
        if !plugin.activation.matches(ctx) {
            outcomes.push(Outcome {
                name: plugin.name.clone(),
                status: Status::Inactive,
                logs: Vec::new(),
            });
            continue;
        }
        let mut logs = Vec::new();
        let result = match &plugin.kind {
            PluginKind::Wasm(_) => run_wasm(runtime, plugin, ctx, &mut logs),
            PluginKind::Static(policy) => run_static(runtime, plugin, policy, ctx, &mut logs),
        }
        .and_then(|(info, own_plan)| {
            plan.merge(own_plan)
                .map(|()| info)
                .map_err(|conflict| EvalError::Conflict {
                    plugin: plugin.name.clone(),
                    conflict,
                })
        });
        let status = match result {
            Ok(info) => Status::Applied(info),
            Err(error) if plugin.on_error == OnError::Skip => Status::Skipped(error.to_string()),
            Err(error) => {
                outcomes.push(Outcome {
                    name: plugin.name.clone(),
                    status: Status::Failed(error.to_string()),
                    logs,
                });
                return Err(Box::new(Failed { error, outcomes }));
            }
        };
        outcomes.push(Outcome {
            name: plugin.name.clone(),
            status,
            logs,
        });
    }
    Ok(Evaluation { plan, outcomes })
}

/// A WASM plugin: instantiate it, `describe`, `apply`.
fn run_wasm(
    runtime: &Runtime,
    plugin: &PluginConfig,
    ctx: &Arc<ContainerContext>,
    logs: &mut Vec<LogLine>,
) -> Result<(PluginInfo, Plan), EvalError> {
    let mut instance = runtime.instantiate(plugin, ctx.clone())?;
    let result = instance
        .describe()
        .and_then(|info| instance.apply().map(|applied| (info, applied)));
    *logs = instance.logs();
    let (info, applied) = result?;
    *logs = applied.logs;
    Ok((info, applied.plan))
}

/// An oci-injector-hook config: the host makes its requests itself.
fn run_static(
    runtime: &Runtime,
    plugin: &PluginConfig,
    policy: &StaticPolicy,
    ctx: &ContainerContext,
    logs: &mut Vec<LogLine>,
) -> Result<(PluginInfo, Plan), EvalError> {
    crate::runtime::check_allow_list(plugin)?;
    let mut requests = Requests::new(
        &plugin.name,
        ctx.stage,
        runtime.host().clone(),
        plugin.allow.clone(),
        DeviceGate::new(plugin.device_rule, ctx),
    );
    let warnings = policy
        .apply(&mut requests)
        .map_err(|error| EvalError::Static {
            plugin: plugin.name.clone(),
            manifest: plugin.manifest.clone(),
            error,
        })?;
    logs.extend(warnings.into_iter().map(|message| LogLine {
        level: LogLevel::Warn,
        message,
    }));
    let info = PluginInfo {
        name: plugin.name.clone(),
        vendor: "oci-injector-hook config".into(),
        version: "static".into(),
        summary: format!("static policy, activated by {}", policy.activation_flag),
    };
    Ok((info, requests.take_plan()))
}
