//! Small helpers shared by every module's errors.

/// An error with all its causes, on one line: pathrs says "rename failed"
/// and keeps the EEXIST or ELOOP that explains it in its source.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// Whether pathrs failed because something does not exist.
pub fn is_enoent(e: &pathrs::error::Error) -> bool {
    e.kind() == pathrs::error::ErrorKind::OsError(Some(nix::errno::Errno::ENOENT as i32))
}
