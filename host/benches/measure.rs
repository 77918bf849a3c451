//! What the benches share: checking a command, medians and quantiles of
//! run times, and the CPU time other processes took meanwhile.

/// The runs per scenario: `HOOKHOST_BENCH_RUNS`, else `default`.
pub fn runs(default: usize) -> usize {
    match std::env::var("HOOKHOST_BENCH_RUNS") {
        Ok(v) => v.parse().expect("HOOKHOST_BENCH_RUNS must be a number"),
        Err(_) => default,
    }
}

pub fn check(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sorts `times` and returns their median.
pub fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    (times[(n - 1) / 2] + times[n / 2]) / 2.0
}

/// The `q` quantile of sorted `times` (nearest rank).
pub fn percentile(times: &[f64], q: f64) -> f64 {
    let rank = (q * times.len() as f64).ceil() as usize;
    times[rank.clamp(1, times.len()) - 1]
}

/// CPU time in clock ticks: the whole machine's, and this process's with
/// the children it has waited for.
pub fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let all: Vec<u64> = stat.lines().next().unwrap()[3..]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let busy = all[0] + all[1] + all[2] + all[5] + all[6] + all[7];
    let me = std::fs::read_to_string("/proc/self/stat").unwrap();
    let own: u64 = me[me.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    (busy, own)
}
