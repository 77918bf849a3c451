//! The fuzz targets of host/fuzz without libFuzzer: the functions they
//! call (`hookhost::fuzzing`) over each target's committed seeds, the
//! inputs of the crashes fuzzing found, and a few thousand deterministic
//! mutations of the seeds, so that every property a target checks is
//! checked in every test run, with no instrumented build.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hookhost::fuzzing::TARGETS;

use crate::common::repo;

/// Mutated inputs run per target.
const MUTATIONS: usize = 3000;

fn fuzz_dir() -> PathBuf {
    repo().join("host/fuzz")
}

/// The files of `dir`, sorted by name (none if it does not exist).
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), data)
        })
        .collect();
    files.sort();
    files
}

/// Runs `target` on `data`, naming the target and the input on failure.
fn run(name: &str, target: fn(&[u8]), what: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| target(data))).is_err() {
        panic!(
            "fuzz target {name} fails on {what}: b\"{}\"",
            data.escape_ascii()
        );
    }
}

/// xorshift64: the same mutations in every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// One to four edits of `input` of the kinds libFuzzer makes: a byte
/// changed, inserted or removed, a run of it repeated, a run of `other`
/// spliced in, a digit changed.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\0\x01\xff/.*?[]{}\":,=-\n0123456789";
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] = rng.below(256) as u8,
            1 => data.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < data.len() => {
                let end = (at + 1 + rng.below(8)).min(data.len());
                data.drain(at..end);
            }
            3 if at < data.len() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                let run = data[at..end].to_vec();
                data.splice(at..at, run);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(32)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                if let Some(digit) = data.iter().position(|b| b.is_ascii_digit()) {
                    data[digit] = b"0123456789"[rng.below(10)];
                }
            }
        }
    }
    data
}

#[test]
fn each_fuzz_target_holds_its_properties_over_its_seeds_and_their_mutations() {
    for &(name, target) in TARGETS {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {name}");
        for (file, data) in &seeds {
            run(name, target, &format!("seed {file}"), data);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        for i in 0..MUTATIONS {
            let (_, input) = &seeds[rng.below(seeds.len())];
            let (_, other) = &seeds[rng.below(seeds.len())];
            let data = mutate(&mut rng, input, other);
            run(name, target, &format!("mutation {i}"), &data);
        }
    }
}

#[test]
fn the_inputs_of_crashes_fuzzing_found_pass_their_targets() {
    let dir = fuzz_dir().join("regressions");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (_, target) = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{}: no fuzz target {name}", dir.display()));
        let crashes = inputs(&path);
        assert!(!crashes.is_empty(), "{} is empty", path.display());
        for (file, data) in &crashes {
            run(&name, *target, &format!("regressions/{name}/{file}"), data);
        }
    }
}
