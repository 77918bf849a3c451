//! `wasi:clocks/monotonic-clock` with waits that end at the call's deadline.
//!
//! Epoch interruption stops wasm code, not a host call: a plugin blocked in
//! `wasi:io/poll` on a clock pollable (what `std::thread::sleep` does on
//! wasip2) would sleep through its time limit, and only the watchdog could
//! end it, by ending the whole hook and every plugin with it. So this
//! interface shadows WASI's: a pollable from `subscribe-duration` or
//! `subscribe-instant` is ready at the time asked for or at the current
//! call's deadline, whichever comes first. A sleep within the budget sleeps;
//! one past it returns at the deadline, the epoch deadline (already passed)
//! interrupts the wasm code that runs next, and a wait that was cut short
//! marks the call as timed out even if the plugin returns before the next
//! epoch check. The plugin is then failed or skipped like one that loops.
//!
//! The clocks are the only thing a plugin can wait on: its WASI context has
//! no files, no sockets, a closed stdin and discarding stdout/stderr, whose
//! pollables are all ready at once; and the host's own imports do bounded
//! work (see `imports`). The watchdog stays as a last resort for a host call
//! that blocks anyway (a hung file system under an allowed host path).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable};

/// The deadline of the call into the plugin now running, and whether a
/// wait was cut short by it.
#[derive(Debug, Default)]
pub struct CallDeadline {
    at: Option<Instant>,
    cut: Arc<AtomicBool>,
}

impl CallDeadline {
    /// A call with a budget of `limit` starts.
    pub fn start(&mut self, limit: Duration) {
        self.at = Instant::now().checked_add(limit);
        self.cut = Arc::default();
    }

    /// The call returned: whether the plugin waited until its deadline.
    pub fn finish(&mut self) -> bool {
        self.at = None;
        self.cut.load(Ordering::Relaxed)
    }
}

/// What the shadowing interface works on: WASI's clocks (for `now` and
/// `resolution`), the resource table and the call's deadline.
pub struct BoundedClock<'a> {
    pub wasi: WasiClocksCtxView<'a>,
    pub deadline: &'a CallDeadline,
}

impl HasData for BoundedClock<'static> {
    type Data<'a> = BoundedClock<'a>;
}

impl BoundedClock<'_> {
    fn subscribe(&mut self, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let now = Instant::now();
        // No call running (cannot happen: wasm only runs inside one): no wait.
        let deadline = self.deadline.at.unwrap_or(now).max(now);
        let (wake, cut) = match now.checked_add(wait) {
            Some(wake) if wake <= deadline => (wake, None),
            _ => (deadline, Some(self.deadline.cut.clone())),
        };
        let alarm = self.wasi.table.push(Alarm {
            wake: tokio::time::Instant::from_std(wake),
            cut,
        })?;
        wasmtime_wasi::p2::subscribe(self.wasi.table, alarm)
    }
}

impl monotonic_clock::Host for BoundedClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        monotonic_clock::Host::now(&mut self.wasi)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        monotonic_clock::Host::resolution(&mut self.wasi)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = monotonic_clock::Host::now(&mut self.wasi)?;
        self.subscribe(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.subscribe(Duration::from_nanos(duration))
    }
}

/// A clock pollable: ready at `wake`. `cut` is set when `wake` is the
/// call's deadline rather than the time asked for, and the plugin waited
/// for it.
struct Alarm {
    wake: tokio::time::Instant,
    cut: Option<Arc<AtomicBool>>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Alarm {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.wake).await;
        if let Some(cut) = &self.cut {
            cut.store(true, Ordering::Relaxed);
        }
    }
}

/// Replaces WASI's monotonic clock in `linker` (which must allow shadowing).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> BoundedClock<'_>,
) -> wasmtime::Result<()> {
    monotonic_clock::add_to_linker::<T, BoundedClock<'static>>(linker, view)
}
