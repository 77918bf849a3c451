//! A policy from a newer patch release: it exports
//! `hookhost:policy/policy@0.1.9`, whose imports a 0.1.1 host may lack, so
//! the host must refuse it by name before running anything (rather than
//! fail later, at link time, with a less clear message).

wit_bindgen::generate!({
    inline: r#"
        package hookhost:policy@0.1.9;

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

struct Newer;

impl Guest for Newer {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "newer".into(),
            vendor: "hookhost tests".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Targets a newer WIT patch release than this host speaks".into(),
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

export!(Newer);
