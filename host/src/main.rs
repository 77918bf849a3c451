//! `hookhost`: the front (see `hookhost::front`), which answers the common
//! container start itself and runs `hookhost-engine` for everything else.
fn main() -> std::process::ExitCode {
    hookhost::front::main()
}
