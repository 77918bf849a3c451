//! The runtime's command line as runc reads it: global options, then the
//! command, then its options and the container id. The shim only needs to
//! know whether the command creates a container, where its bundle is, its
//! id, and where runc's log goes; everything is passed on unchanged.
//!
//! runc parses flags with Go's `flag` package (urfave/cli v1): `-name` and
//! `--name` are the same flag, a value follows as `-name V` or `-name=V`,
//! and flag parsing stops at the first argument that is not a flag.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// runc's global options that take no value; every other global option
/// (`--root`, `--log`, `--log-format`, `--criu`, `--rootless`) takes one.
const GLOBAL_SWITCHES: &[&str] = &["debug", "systemd-cgroup", "help", "h", "version", "v"];

/// The options of `create` and `run` that take no value.
const CREATE_SWITCHES: &[&str] = &[
    "no-pivot",
    "no-new-keyring",
    "detach",
    "d",
    "keep",
    "no-subreaper",
    "help",
    "h",
];

/// What the shim learns from the runtime's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeArgs {
    /// `create` or `run`: a container is about to be made from a bundle.
    pub creates: bool,
    /// The bundle (`--bundle`/`-b`, else the current directory).
    pub bundle: Option<PathBuf>,
    /// The container id, the command's first positional argument.
    pub id: Option<String>,
    /// runc's `--log` file, and whether it is written as JSON lines.
    pub log: Option<PathBuf>,
    pub log_json: bool,
}

/// A flag: its name without dashes and an inline `=value`, if any.
fn flag(arg: &OsStr) -> Option<(&str, Option<&OsStr>)> {
    let bytes = arg.as_bytes();
    let body = bytes
        .strip_prefix(b"--")
        .or_else(|| bytes.strip_prefix(b"-"))?;
    if body.is_empty() || body.starts_with(b"-") {
        // "-" and "--" are not flags; "---x" is not one Go accepts.
        return None;
    }
    let (name, value) = match body.iter().position(|&b| b == b'=') {
        Some(i) => (&body[..i], Some(OsStr::from_bytes(&body[i + 1..]))),
        None => (body, None),
    };
    Some((std::str::from_utf8(name).ok()?, value))
}

/// Reads runc's arguments (those after `--` on hookhost's command line).
pub fn parse(args: &[OsString]) -> RuntimeArgs {
    let mut parsed = RuntimeArgs::default();
    let mut rest = args.iter();
    // Global options, up to the command.
    let command = loop {
        let Some(arg) = rest.next() else {
            return parsed;
        };
        if arg == "--" {
            break rest.next();
        }
        let Some((name, inline)) = flag(arg) else {
            break Some(arg);
        };
        if GLOBAL_SWITCHES.contains(&name) {
            continue;
        }
        let value = inline
            .map(OsStr::to_os_string)
            .or_else(|| rest.next().cloned());
        match name {
            "log" => parsed.log = value.map(PathBuf::from),
            "log-format" => parsed.log_json = value.as_deref() == Some(OsStr::new("json")),
            _ => {}
        }
    };
    if !matches!(command.and_then(|c| c.to_str()), Some("create" | "run")) {
        return parsed;
    }
    parsed.creates = true;
    // The command's options, up to the container id.
    while let Some(arg) = rest.next() {
        if arg == "--" {
            parsed.id = rest.next().map(|a| a.to_string_lossy().into_owned());
            break;
        }
        let Some((name, inline)) = flag(arg) else {
            parsed.id = Some(arg.to_string_lossy().into_owned());
            break;
        };
        if CREATE_SWITCHES.contains(&name) {
            continue;
        }
        let value = inline
            .map(OsStr::to_os_string)
            .or_else(|| rest.next().cloned());
        if matches!(name, "bundle" | "b") {
            parsed.bundle = value.map(PathBuf::from);
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    fn bundle(line: &str) -> Option<PathBuf> {
        let parsed = parse(&args(line));
        assert!(parsed.creates, "{line}");
        parsed.bundle
    }

    #[test]
    fn the_bundle_is_found_in_every_form_runc_accepts() {
        for line in [
            "create --bundle /b id",
            "create --bundle=/b id",
            "create -b /b id",
            "create -b=/b id",
            "create -bundle /b id",
            "create --b /b id",
            "run --detach --bundle /b id",
            "create --pid-file /p --console-socket /s -b /b id",
        ] {
            assert_eq!(bundle(line), Some(PathBuf::from("/b")), "{line}");
        }
        assert_eq!(bundle("create id"), None);
    }

    #[test]
    fn global_options_before_the_command_are_skipped_with_their_values() {
        // As Docker and containerd call runc.
        let parsed = parse(&args(
            "--root /run/r --log /b/log.json --log-format json --systemd-cgroup create \
             --bundle /b --pid-file /b/init.pid ctr1",
        ));
        assert_eq!(
            parsed,
            RuntimeArgs {
                creates: true,
                bundle: Some("/b".into()),
                id: Some("ctr1".into()),
                log: Some("/b/log.json".into()),
                log_json: true,
            }
        );
        // A global option whose value is "create" is not the command.
        let parsed = parse(&args("--root create --debug start id"));
        assert!(!parsed.creates);
    }

    #[test]
    fn the_id_is_the_first_argument_that_is_not_a_flag_or_its_value() {
        let parsed = parse(&args(
            "create --pid-file create -b /b --no-pivot id --bundle /x",
        ));
        assert_eq!(parsed.id.as_deref(), Some("id"));
        // Go stops at the id: a later --bundle is an argument, not a flag.
        assert_eq!(parsed.bundle, Some(PathBuf::from("/b")));
        assert_eq!(
            parse(&args("create -b /b -- -odd")).id.as_deref(),
            Some("-odd")
        );
    }

    #[test]
    fn other_commands_are_not_creations() {
        for line in [
            "start id",
            "delete --force id",
            "kill id 15",
            "state id",
            "",
            "--debug",
        ] {
            assert!(!parse(&args(line)).creates, "{line}");
        }
    }
}
