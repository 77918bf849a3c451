//! The native floor of the start-up benchmark (`host/benches/startup.rs`): the
//! least a hook written in plain Rust has to do before deciding anything. It
//! reads the OCI state and the bundle's config.json and parses them with the
//! same crates as hookhost (serde_json, oci-spec), then exits.
//!
//! Usage: native_floor STATE BUNDLE

use std::path::PathBuf;

use oci_spec::runtime::{Spec, State};

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(state), Some(bundle), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: native_floor STATE BUNDLE");
        std::process::exit(2);
    };
    let state: State = read(&state);
    let spec: Spec = read(&bundle.join("config.json"));
    // Use both, so that neither parse can be optimised away.
    std::hint::black_box((state, spec));
}

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> T {
    let bytes = std::fs::read(path).unwrap_or_else(|e| fail(path, e));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| fail(path, e))
}

fn fail(path: &std::path::Path, e: impl std::fmt::Display) -> ! {
    eprintln!("native_floor: {}: {e}", path.display());
    std::process::exit(1);
}
