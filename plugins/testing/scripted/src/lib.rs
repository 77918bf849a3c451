//! A plugin that makes exactly the requests its manifest's settings list, in
//! order, so that hookhost's executor tests can exercise every kind of
//! request (copies, directories, symlinks) without a vendor policy that
//! happens to use it:
//!
//! ```json
//! {"requests": [
//!   {"copy": {"host": "/etc/foo.conf", "container": "/etc/foo.conf"}},
//!   {"make-dir": {"container": "/var/lib/foo", "mode": 448}},
//!   {"symlink": {"target": "foo.conf", "container": "/etc/foo.link"}}
//! ]}
//! ```
//!
//! With `"devices": ["NAME", …]` it offers those names for CDI specs and
//! plans the same requests for any of them.

use hookhost_plugin::inject::{self, File, FileRole};
use hookhost_plugin::{PluginInfo, Policy};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    requests: Vec<Request>,
    #[serde(default)]
    devices: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum Request {
    Copy { host: String, container: String },
    MakeDir { container: String, mode: u32 },
    Symlink { target: String, container: String },
}

struct Scripted;

impl Policy for Scripted {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "scripted".into(),
            vendor: "hookhost tests".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Makes the requests its settings list".into(),
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        hookhost_plugin::parse_settings::<Settings>(&settings).map(drop)
    }

    fn devices() -> Result<Vec<String>, String> {
        Ok(hookhost_plugin::settings::<Settings>()?.devices)
    }

    fn plan_devices(names: Vec<String>) -> Result<(), String> {
        hookhost_plugin::check_device_names(&names, &Self::devices()?)?;
        Self::apply()
    }

    fn apply() -> Result<(), String> {
        for request in hookhost_plugin::settings::<Settings>()?.requests {
            match request {
                Request::Copy { host, container } => File::new(host, FileRole::Misc)
                    .at(container)
                    .by_copy()
                    .request()?,
                Request::MakeDir { container, mode } => inject::make_dir(&container, mode)?,
                Request::Symlink { target, container } => inject::symlink(&target, &container)?,
            }
        }
        Ok(())
    }
}

hookhost_plugin::export!(Scripted);
