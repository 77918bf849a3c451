#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookhost::fuzzing::runc_argv(data));
