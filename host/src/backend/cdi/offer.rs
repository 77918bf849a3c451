//! What one plugin offers a CDI spec: the edits of each device it names,
//! planned without a container (`plan-devices`, WIT 0.2) and lowered, with
//! the edits every device shares pulled out as the spec's own.

use std::sync::Arc;

use crate::config::PluginConfig;
use crate::context::{ContainerContext, Stage};
use crate::lowering::{lower, Attributed, Lowered, Op};
use crate::runtime::{LogLine, PluginError, Runtime};

/// The device that stands for all of a plugin's devices. A plugin that does
/// not name it itself gets one planned for every name it offers.
pub const ALL: &str = "all";

/// A plugin's devices, ready to become a CDI spec.
#[derive(Debug, Default)]
pub struct Offer {
    /// What every device needs (the spec's own `containerEdits`). Device
    /// nodes stay with their devices, so that each device gives its nodes
    /// whatever else is asked for with it.
    pub common: Lowered,
    /// Each device's own edits, in the order the plugin named them.
    pub devices: Vec<(String, Lowered)>,
    /// What the plugin logged.
    pub logs: Vec<LogLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Source(#[from] crate::backend::BindSourceError),
}

/// Plans each device `plugin` offers on this host, each in a fresh store.
pub fn plan(runtime: &Runtime, plugin: &PluginConfig) -> Result<Offer, OfferError> {
    let ctx = Arc::new(ContainerContext {
        stage: Stage::Cdi,
        ..ContainerContext::empty()
    });
    let mut offer = Offer::default();
    let mut instance = runtime.instantiate(plugin, ctx.clone())?;
    instance.can_plan_devices()?;
    let names = instance.devices();
    offer.logs.extend(instance.logs());
    let names = names?;
    let mut plan_for = |names: &[String]| -> Result<Lowered, OfferError> {
        let mut instance = runtime.instantiate(plugin, ctx.clone())?;
        let applied = instance.plan_devices(names);
        offer.logs.extend(instance.logs());
        let applied = applied?;
        offer.logs.extend(applied.logs);
        // Owners as the container sees them: no mapping, nothing to fail.
        let lowered = lower(&applied.plan, &[], &[]).expect("identity maps every id");
        // The engine will mount each source by its path.
        crate::backend::check_bind_sources(runtime.host(), &lowered)?;
        Ok(lowered)
    };
    let mut devices = Vec::new();
    for name in &names {
        devices.push((name.clone(), plan_for(std::slice::from_ref(name))?));
    }
    if !names.is_empty() && !names.iter().any(|n| n == ALL) {
        devices.push((ALL.to_string(), plan_for(&names)?));
    }
    offer.common = shared(devices.iter().map(|(_, lowered)| lowered));
    for (_, lowered) in &mut devices {
        remove(lowered, &offer.common);
    }
    offer.devices = devices;
    Ok(offer)
}

/// The operations and variables that every one of `all` has, device nodes
/// (and so device rules) excepted, in the first one's order.
fn shared<'a>(all: impl Iterator<Item = &'a Lowered> + Clone) -> Lowered {
    let Some(first) = all.clone().next() else {
        return Lowered::default();
    };
    let in_all = |has: &dyn Fn(&Lowered) -> bool| all.clone().all(has);
    Lowered {
        rules: Vec::new(),
        ops: first
            .ops
            .iter()
            .filter(|op| !matches!(op.what, Op::DeviceNode { .. }))
            .filter(|op| in_all(&|l: &Lowered| same_op(&l.ops, op)))
            .cloned()
            .collect(),
        env: first
            .env
            .iter()
            .filter(|var| in_all(&|l: &Lowered| l.env.iter().any(|v| v.what == var.what)))
            .cloned()
            .collect(),
    }
}

/// Whether `ops` has `op` (by what it does: which plugin asked for the
/// ldconfig run may differ).
fn same_op(ops: &[Attributed<Op>], op: &Attributed<Op>) -> bool {
    ops.iter().any(|o| o.what == op.what)
}

/// `lowered` without what `common` has.
fn remove(lowered: &mut Lowered, common: &Lowered) {
    lowered.ops.retain(|op| !same_op(&common.ops, op));
    lowered
        .env
        .retain(|var| !common.env.iter().any(|v| v.what == var.what));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lowering::DeviceRule;
    use crate::plan::DeviceType;

    fn at<T>(what: T) -> Attributed<T> {
        Attributed {
            plugin: "gpu".into(),
            what,
        }
    }

    fn node(minor: u32) -> Op {
        Op::DeviceNode {
            path: format!("/dev/gpu{minor}"),
            kind: DeviceType::Char,
            major: 195,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }

    fn bind(name: &str) -> Op {
        Op::Bind {
            host_path: format!("/usr/lib/{name}"),
            path: format!("/usr/lib/{name}"),
            directory: false,
        }
    }

    fn device(minor: u32, extra: &[Op]) -> Lowered {
        let mut ops = vec![at(node(255)), at(node(minor))];
        ops.extend(extra.iter().cloned().map(at));
        Lowered {
            rules: vec![at(DeviceRule {
                kind: DeviceType::Char,
                major: 195,
                minor,
                access: "rwm".into(),
            })],
            ops,
            env: vec![at(("GPU_LIB".to_string(), "1".to_string()))],
        }
    }

    #[test]
    fn what_every_device_has_is_common_except_device_nodes() {
        let ldconfig = Op::Ldconfig {
            dirs: vec!["/usr/lib".into()],
        };
        let mut devices = [
            device(0, &[bind("libgpu.so"), ldconfig.clone()]),
            device(
                1,
                &[bind("libgpu.so"), bind("libextra.so"), ldconfig.clone()],
            ),
        ];
        let common = shared(devices.iter());
        assert_eq!(
            common.ops.iter().map(|o| &o.what).collect::<Vec<_>>(),
            [&bind("libgpu.so"), &ldconfig],
            "the control node /dev/gpu255 every device has stays with each"
        );
        assert_eq!(common.env.len(), 1);
        assert!(common.rules.is_empty());
        for lowered in &mut devices {
            remove(lowered, &common);
        }
        assert_eq!(
            devices[0].ops.iter().map(|o| &o.what).collect::<Vec<_>>(),
            [&node(255), &node(0)]
        );
        assert_eq!(
            devices[1].ops.iter().map(|o| &o.what).collect::<Vec<_>>(),
            [&node(255), &node(1), &bind("libextra.so")]
        );
        assert_eq!(devices[1].rules.len(), 1, "a device keeps its rules");
        assert!(devices[1].env.is_empty());
    }

    #[test]
    fn one_device_keeps_its_nodes_and_shares_the_rest() {
        let devices = [device(0, &[bind("libgpu.so")])];
        let common = shared(devices.iter());
        assert_eq!(
            common.ops.iter().map(|o| &o.what).collect::<Vec<_>>(),
            [&bind("libgpu.so")]
        );
        assert_eq!(shared(std::iter::empty()), Lowered::default());
    }
}
