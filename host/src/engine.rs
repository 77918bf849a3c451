//! `hookhost-engine`: the full hookhost, which the `hookhost` front (see
//! `hookhost::front`) runs for everything it does not answer itself.
fn main() -> std::process::ExitCode {
    hookhost::cli::main()
}
