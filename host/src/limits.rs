//! Caps on what a policy may hand the host. A plugin's memory cap bounds
//! the plugin, not the host: every string it passes is copied out of its
//! memory, and whatever lands in the plan is kept for the whole run. So each
//! string is checked here, at the import boundary, before the host copies or
//! keeps it, and a refusal names the limit.
//!
//! The limits are the kernel's where there is one: no path, link target or
//! environment entry over them could be used anyway.

use crate::requests::RequestError;

/// Longest path the kernel takes (`PATH_MAX` counts the closing NUL).
pub const PATH_MAX: usize = 4096;
/// Longest path component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Longest `NAME=value` environment entry execve takes (`MAX_ARG_STRLEN`,
/// the closing NUL included).
pub const ENV_ENTRY_MAX: usize = 128 * 1024;
/// Most bytes of strings one policy's requests may add to the plan: with
/// `MAX_REQUESTS`, a bound on the plan's memory. A real plan holds a few
/// hundred entries of a few hundred bytes.
pub const PLAN_BYTES_MAX: usize = 4 << 20;

/// How much of a refused string an error message repeats.
const SHOWN: usize = 64;

/// `s`, cut to its first few dozen bytes for an error message.
pub fn shorten(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_string();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A path (host or container, or a glob over host paths): shorter than
/// `PATH_MAX`, each component at most `NAME_MAX`. `what` says which path
/// it is in the refusal.
pub fn path(what: &str, path: &str) -> Result<(), RequestError> {
    if path.len() >= PATH_MAX {
        return Err(RequestError::Invalid(format!(
            "{}: a {what} may be at most {} bytes long (PATH_MAX)",
            shorten(path),
            PATH_MAX - 1
        )));
    }
    if let Some(long) = path.split('/').find(|c| c.len() > NAME_MAX) {
        return Err(RequestError::Invalid(format!(
            "{}: a {what} component may be at most {NAME_MAX} bytes long (NAME_MAX); `{}` is not",
            shorten(path),
            shorten(long)
        )));
    }
    Ok(())
}

/// The content of a symlink: shorter than `PATH_MAX`, as symlink(2) wants.
pub fn link_target(target: &str) -> Result<(), RequestError> {
    if target.len() >= PATH_MAX {
        return Err(RequestError::Invalid(format!(
            "{}: a symlink target may be at most {} bytes long (PATH_MAX)",
            shorten(target),
            PATH_MAX - 1
        )));
    }
    Ok(())
}

/// An environment variable: `NAME=value` within what execve takes.
pub fn env_entry(name: &str, value: &str) -> Result<(), RequestError> {
    let len = name.len() + 1 + value.len();
    if len >= ENV_ENTRY_MAX {
        return Err(RequestError::Invalid(format!(
            "{}: an environment entry NAME=value may be at most {} bytes long \
             (MAX_ARG_STRLEN); this one has {len}",
            shorten(name),
            ENV_ENTRY_MAX - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(r: Result<(), RequestError>) -> String {
        match r {
            Err(RequestError::Invalid(m)) => m,
            other => panic!("expected `invalid`, got {other:?}"),
        }
    }

    #[test]
    fn a_path_of_path_max_bytes_is_refused_and_one_byte_less_is_not() {
        let longest = format!("/{}", "a/".repeat((PATH_MAX - 2) / 2));
        let longest = &longest[..PATH_MAX - 1];
        assert_eq!(longest.len(), 4095);
        path("container path", longest).unwrap();
        let too_long = format!("{longest}b");
        let message = refusal(path("container path", &too_long));
        assert!(
            message.contains("at most 4095 bytes long (PATH_MAX)"),
            "{message}"
        );
        assert!(
            message.contains("(4096 bytes)"),
            "the size is given: {message}"
        );
    }

    #[test]
    fn a_component_over_name_max_is_refused() {
        path("host path", &format!("/dev/{}", "x".repeat(255))).unwrap();
        let message = refusal(path("host path", &format!("/dev/{}", "x".repeat(256))));
        assert!(
            message.contains("at most 255 bytes long (NAME_MAX)"),
            "{message}"
        );
    }

    #[test]
    fn a_refusal_repeats_only_the_start_of_a_huge_string() {
        let huge = format!("/{}", "a/".repeat(4 << 20));
        let message = refusal(path("container path", &huge));
        assert!(message.len() < 300, "{} bytes", message.len());
        let message = refusal(link_target(&huge));
        assert!(
            message.contains("symlink target may be at most 4095"),
            "{message}"
        );
        assert!(message.len() < 300, "{} bytes", message.len());
    }

    #[test]
    fn shortening_never_splits_a_character() {
        let s = "é".repeat(100);
        let short = shorten(&s);
        assert!(short.starts_with(&"é".repeat(32)), "{short}");
        assert!(short.ends_with("… (200 bytes)"), "{short}");
    }

    #[test]
    fn an_environment_entry_is_capped_at_max_arg_strlen() {
        env_entry("A", &"v".repeat(ENV_ENTRY_MAX - 3)).unwrap();
        let message = refusal(env_entry("A", &"v".repeat(ENV_ENTRY_MAX - 2)));
        assert!(message.contains("at most 131071 bytes long"), "{message}");
        assert!(message.contains("this one has 131072"), "{message}");
    }
}
