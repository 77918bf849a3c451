//! The dry-run back end: shows a plan instead of carrying it out, and
//! compares it with an expected one (`hookhost test --expect`).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::evaluate::{Outcome, Status};
use crate::lowering::{Lowered, Op};
use crate::plan::{Entry, Plan};

/// The plan as a table grouped by plugin, followed by the plugins that did
/// not contribute and why.
pub fn render(plan: &Plan, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        match &outcome.status {
            Status::Applied(info) => {
                let _ = writeln!(
                    out,
                    "{}: {} {} ({})",
                    outcome.name, info.name, info.version, info.vendor
                );
                let mut any = false;
                for entry in plan.entries().filter(|e| e.plugin() == outcome.name) {
                    let _ = writeln!(out, "  {}", row(&entry));
                    any = true;
                }
                if let Some(ld) = plan
                    .ldconfig
                    .as_ref()
                    .filter(|ld| ld.plugins.contains(&outcome.name))
                {
                    let _ = writeln!(out, "  {:<9} {}", "ldconfig", ld.dirs().join(" "));
                    any = true;
                }
                if !any {
                    let _ = writeln!(out, "  (nothing)");
                }
            }
            Status::Inactive => {
                let _ = writeln!(out, "{}: not active for this container", outcome.name);
            }
            Status::Skipped(why) => {
                let _ = writeln!(out, "{}: skipped (on-error: skip): {why}", outcome.name);
            }
            Status::Failed(why) => {
                let _ = writeln!(out, "{}: FAILED: {why}", outcome.name);
            }
        }
    }
    if outcomes.is_empty() {
        out.push_str("no plugins installed\n");
    }
    out
}

fn row(entry: &Entry) -> String {
    let from = |host: &str, at: &str| {
        if host == at {
            String::new()
        } else {
            format!("  <- {host}")
        }
    };
    match entry {
        Entry::Device(d) => format!(
            "{:<9} {}  {} {}:{} mode {:04o} owner {}:{} cgroup {}{}",
            "device",
            d.container_path,
            d.kind.letter(),
            d.major,
            d.minor,
            d.file_mode,
            d.uid,
            d.gid,
            d.permissions,
            from(&d.host_path, &d.container_path)
        ),
        Entry::File(f) => format!(
            "{:<9} {}  {}{}{}",
            format!("{:?}", f.role).to_lowercase(),
            f.container_path,
            format!("{:?}", f.transfer).to_lowercase(),
            if f.directory { " (directory)" } else { "" },
            from(&f.host_path, &f.container_path)
        ),
        Entry::Directory(d) => format!("{:<9} {}  mode {:04o}", "dir", d.container_path, d.mode),
        Entry::Symlink(s) => format!("{:<9} {} -> {}", "symlink", s.container_path, s.target),
        Entry::Env(e) => format!("{:<9} {}={}", "env", e.name, e.value),
    }
}

/// The plan as pretty JSON, as `--json` prints it and `--expect` reads it.
pub fn to_json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("a plan always serialises");
    text.push('\n');
    text
}

/// An expected plan that cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    #[error("cannot read expected plan {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("expected plan {} is not a valid plan: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Reads an expected plan.
pub fn read_expected(path: &Path) -> Result<Plan, ExpectedError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExpectedError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ExpectedError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The lowered plan, one line per operation in the order a back end runs
/// them: what the hook would do, step by step (`hookhost test --steps`).
pub fn render_steps(lowered: &Lowered) -> String {
    let mut out = String::new();
    for (i, rule) in lowered.rules.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>3}. {:<12} {:<16} {}",
            i + 1,
            "cgroup-allow",
            rule.plugin,
            rule.what
        );
    }
    let first = lowered.rules.len();
    for (i, op) in lowered.ops.iter().enumerate() {
        let detail = match &op.what {
            Op::Directory { mode, .. } => format!("mode {mode:04o}"),
            Op::DeviceNode {
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
                ..
            } => format!(
                "{} {major}:{minor} mode {mode:04o} owner {uid}:{gid}",
                kind.letter()
            ),
            Op::Bind {
                host_path,
                directory,
                ..
            } => format!(
                "<- {host_path}{} (read-only)",
                if *directory { " (directory)" } else { "" }
            ),
            Op::Copy { host_path, .. } => format!("<- {host_path}"),
            Op::Symlink { target, .. } => format!("-> {target}"),
            Op::Write { content, .. } => format!("{} bytes", content.len()),
            Op::Ldconfig { dirs } => dirs.join(" "),
        };
        let _ = writeln!(
            out,
            "{:>3}. {:<12} {:<16} {}  {detail}",
            first + i + 1,
            op.what.action(),
            op.plugin,
            op.what.path()
        );
    }
    for (name, value) in lowered.env.iter().map(|e| &e.what) {
        let _ = writeln!(out, "     env {name}={value}");
    }
    if out.is_empty() {
        out.push_str("nothing to do\n");
    }
    out
}

/// A unified diff of the two plans' JSON, or `None` when they are equal.
pub fn diff(expected: &Plan, actual: &Plan, expected_name: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (old, new) = (to_json(expected), to_json(actual));
    let diff = similar::TextDiff::from_lines(&old, &new);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(expected_name, "actual plan")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, Symlink};

    #[test]
    fn diff_shows_the_changed_lines_and_nothing_when_equal() {
        let mut a = Plan::default();
        a.add_symlink(Symlink {
            plugin: "p".into(),
            container_path: "/usr/lib/libx.so.1".into(),
            target: "libx.so.1.0".into(),
        })
        .unwrap();
        assert_eq!(diff(&a, &a.clone(), "e.json"), None);
        let mut b = a.clone();
        b.symlinks[0].target = "libx.so.2.0".into();
        let d = diff(&a, &b, "e.json").unwrap();
        assert!(d.contains("--- e.json"), "{d}");
        assert!(d.contains("-      \"target\": \"libx.so.1.0\""), "{d}");
        assert!(d.contains("+      \"target\": \"libx.so.2.0\""), "{d}");
    }
}
