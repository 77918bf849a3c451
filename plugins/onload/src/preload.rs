//! The `preload` setting: LD_PRELOAD, which makes the application's sockets
//! Onload's. Only some back ends can change a container's environment (the
//! runtime shim and CDI); a hook cannot, and the host then answers
//! `unsupported`.
//!
//! That answer fails the container, with a message that says what to do,
//! rather than a warning: Onload exists for latency, an application that
//! silently falls back to the kernel's stack is a problem found late and
//! hard to trace, and a hook's warnings are not shown when the container
//! starts. A container that preloads Onload by itself is not failed: its
//! LD_PRELOAD names `libonload.so` already, or its command is the `onload`
//! launcher, which sets LD_PRELOAD.

pub const VARIABLE: &str = "LD_PRELOAD";

/// What the launcher preloads, and what the container's own LD_PRELOAD is
/// looked through for.
pub const LIBRARY: &str = "libonload.so";

/// The launcher's file name.
const LAUNCHER: &str = "onload";

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The container's LD_PRELOAD loads `libonload.so` already.
    AlreadyPreloaded,
    /// The container's command is the launcher, which sets LD_PRELOAD.
    Launcher,
    /// Set LD_PRELOAD to this.
    Set(String),
}

/// What to do for a container whose LD_PRELOAD is `current` and whose
/// command is `command` (`process.args[0]`), to preload `library` (a path in
/// the container).
pub fn decide(library: &str, current: Option<&str>, command: Option<&str>) -> Decision {
    let current = current.unwrap_or("").trim();
    let file_name = |path: &str| path.rsplit('/').next().unwrap_or_default().to_string();
    // ld.so splits LD_PRELOAD at colons and spaces.
    if current
        .split([':', ' '])
        .any(|entry| file_name(entry) == LIBRARY)
    {
        return Decision::AlreadyPreloaded;
    }
    if command.is_some_and(|command| file_name(command) == LAUNCHER) {
        return Decision::Launcher;
    }
    // Onload first, then the container's own, as the launcher does.
    if current.is_empty() {
        Decision::Set(library.to_string())
    } else {
        Decision::Set(format!("{library}:{current}"))
    }
}

/// The error when the back end cannot set LD_PRELOAD (`why`, the host's
/// explanation); `launcher` is where the launcher was injected, if it was.
pub fn unsupported(why: &str, launcher: Option<&str>) -> String {
    let launcher = match launcher {
        Some(path) => format!("Onload's launcher (`onload APP`, injected at {path})"),
        None => "Onload's launcher (`onload APP`)".to_string(),
    };
    format!(
        "setting `preload`: this back end cannot set {VARIABLE}, and without it the \
         application would use the kernel's network stack, not Onload. Start the \
         application under {launcher}, set {VARIABLE}={LIBRARY} in the container's \
         environment, or turn `preload` off where hookhost runs as a hook ({why})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "/opt/onload/usr/lib64/libonload.so";

    #[test]
    fn onload_goes_first_and_the_containers_own_preloads_stay() {
        assert_eq!(decide(LIB, None, None), Decision::Set(LIB.into()));
        assert_eq!(
            decide(LIB, Some(" "), Some("/app")),
            Decision::Set(LIB.into())
        );
        assert_eq!(
            decide(LIB, Some("libjemalloc.so.2"), Some("/app")),
            Decision::Set(format!("{LIB}:libjemalloc.so.2"))
        );
    }

    #[test]
    fn a_container_that_preloads_onload_itself_is_left_alone() {
        for current in [
            "libonload.so",
            "/usr/lib64/libonload.so",
            "libjemalloc.so.2:libonload.so",
            "libjemalloc.so.2 /opt/onload/usr/lib64/libonload.so",
        ] {
            assert_eq!(
                decide(LIB, Some(current), None),
                Decision::AlreadyPreloaded,
                "{current}"
            );
        }
        // Only that file name counts.
        assert_eq!(
            decide(LIB, Some("libonload.so.bak"), None),
            Decision::Set(format!("{LIB}:libonload.so.bak"))
        );
    }

    #[test]
    fn the_launcher_preloads_by_itself() {
        assert_eq!(decide(LIB, None, Some("onload")), Decision::Launcher);
        assert_eq!(
            decide(LIB, None, Some("/usr/bin/onload")),
            Decision::Launcher
        );
        assert_eq!(
            decide(LIB, None, Some("/usr/bin/onload_stackdump")),
            Decision::Set(LIB.into())
        );
    }

    #[test]
    fn the_error_says_what_to_do() {
        let error = unsupported("a prestart hook cannot", Some("/usr/bin/onload"));
        assert!(error.ends_with("(a prestart hook cannot)"), "{error}");
        assert!(error.contains("injected at /usr/bin/onload"), "{error}");
        assert!(error.contains("set LD_PRELOAD=libonload.so"), "{error}");
        assert!(error.contains("turn `preload` off"), "{error}");
        assert!(!unsupported("x", None).contains("injected"));
    }
}
