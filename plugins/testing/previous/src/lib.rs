//! A policy from the past: built against `hookhost:policy@0.1.0` (the WIT
//! frozen in `../wit/`, as released), it must keep loading and working in
//! every 0.1.y host. It asks for the device node named by PREVIOUS_DEVICE.

wit_bindgen::generate!({ path: "../../../wit/0.1.0", world: "plugin" });

use exports::hookhost::policy::policy::{Guest, PluginInfo};
use hookhost::policy::{container, inject};

struct Previous;

impl Guest for Previous {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "previous".into(),
            vendor: "hookhost tests".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Built against hookhost:policy@0.1.0".into(),
        }
    }

    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }

    fn devices() -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn apply() -> Result<(), String> {
        let Some(path) = container::getenv("PREVIOUS_DEVICE") else {
            return Ok(());
        };
        inject::add_device(&inject::Device {
            host_path: path,
            container_path: None,
            file_mode: None,
            uid: None,
            gid: None,
            permissions: None,
        })
        .map_err(|e| format!("{e:?}"))
    }
}

export!(Previous);
