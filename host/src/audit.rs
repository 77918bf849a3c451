//! The audit log: one JSON line per container the hook acted on, with each
//! action, the plugin it was for, its outcome and its duration.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::context::Stage;

/// One action of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub plugin: String,
    pub action: &'static str,
    pub path: String,
    pub outcome: Outcome,
    pub micros: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    Failed,
    Undone,
}

impl Action {
    /// An action that started at `start` and ended now.
    pub fn timed(
        plugin: &str,
        action: &'static str,
        path: &str,
        outcome: Outcome,
        start: Instant,
    ) -> Self {
        Action {
            plugin: plugin.to_string(),
            action,
            path: path.to_string(),
            outcome,
            micros: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }
}

/// One JSON line of the audit log.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub container: &'a str,
    pub stage: Stage,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub micros: u64,
    pub actions: &'a [Action],
}

/// Appends one record to the audit log. O_APPEND makes each line atomic
/// against other hooks writing at the same time.
pub fn append(log: &Path, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(record).expect("an audit record always serialises");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    file.write_all(&line)
}
