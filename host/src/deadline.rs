//! The whole hook's deadline: a thread that sleeps until it and then ends
//! the process, with one line naming the stage and the container. One
//! sleeping thread per container start; the process's exit (or its exec of
//! the engine, which starts a deadline of its own) ends it when the hook
//! finishes in time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::context::Stage;

pub struct Deadline {
    container: Arc<OnceLock<String>>,
}

impl Deadline {
    pub fn start(stage: Stage, timeout: Duration) -> Self {
        let container: Arc<OnceLock<String>> = Arc::default();
        let spawned = std::thread::Builder::new()
            .name("hookhost-deadline".into())
            .spawn({
                let container = container.clone();
                move || {
                    std::thread::sleep(timeout);
                    let who = match container.get() {
                        Some(id) => format!("container {id}"),
                        None => "a container whose state was not read yet".into(),
                    };
                    eprintln!(
                        "hookhost: the {} hook for {who} did not finish within {} s (--timeout); giving up",
                        stage.name(),
                        timeout.as_secs()
                    );
                    std::process::exit(1);
                }
            });
        // A small pids.max in the hook's cgroup can refuse a thread: the hook
        // still runs, as it would have without a deadline.
        if let Err(e) = spawned {
            eprintln!("hookhost: warning: no deadline for this hook: spawning its thread: {e}");
        }
        Deadline { container }
    }

    /// Names the container in the message, once the state is read.
    pub fn container(&self, id: &str) {
        let _ = self.container.set(id.to_string());
    }
}
