//! A policy from the future: it exports `hookhost:policy/policy@1.0.0`,
//! which a 0.1 host must refuse by name before running anything.

wit_bindgen::generate!({
    inline: r#"
        package hookhost:policy@1.0.0;

        interface policy {
            record plugin-info { name: string, vendor: string, version: string, summary: string }
            describe: func() -> plugin-info;
            validate-settings: func(settings: string) -> result<_, string>;
            devices: func() -> result<list<string>, string>;
            apply: func() -> result<_, string>;
        }

        world plugin {
            export policy;
        }
    "#,
});

use exports::hookhost::policy::policy::{Guest, PluginInfo};

struct Future;

impl Guest for Future {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "future".into(),
            vendor: "hookhost tests".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Targets a WIT major version this host does not speak".into(),
        }
    }

    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }

    fn devices() -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn apply() -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
