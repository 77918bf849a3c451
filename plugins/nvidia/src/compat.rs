//! CUDA forward compatibility. A CUDA image may carry, in
//! `/usr/local/cuda/compat`, the user-space driver of a newer driver
//! release than the host's (`libcuda.so.<version>` with its companions),
//! so that a new CUDA runs on an older kernel module of a data-centre GPU.
//! As in NVIDIA's toolkit, when the major version of that `libcuda` is
//! above the host driver's, those libraries win over the injected ones:
//! the host's ldconfig scans the directory first. An older or equal one is
//! left alone; the host's driver serves the image.
//!
//! The image is the container owner's: the host lists the directory inside
//! the rootfs (an image link never leads out) and hands over names only.

use hookhost_plugin::{container, inject, log, Error};

/// Where NVIDIA's CUDA images put the compat libraries.
pub const DIR: &str = "/usr/local/cuda/compat";

/// Makes the image's compat libraries win when they are newer than the
/// host driver `host_version`.
pub fn prefer_if_newer(host_version: &str) -> Result<(), String> {
    let names = match container::image_entries(DIR) {
        Ok(names) => names,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(compat) = newest_libcuda(&names) else {
        return Ok(());
    };
    let host = major(host_version).ok_or_else(|| format!("driver version `{host_version}`"))?;
    if compat.0 <= host {
        log::debug!(
            "{DIR}: libcuda.so.{} is not newer than the host driver {host_version}: not used",
            compat.1
        );
        return Ok(());
    }
    log::info!(
        "{DIR}: libcuda.so.{} is newer than the host driver {host_version}: its libraries come first",
        compat.1
    );
    Ok(inject::prefer_image_libraries(DIR)?)
}

/// The major number and the whole version of the newest
/// `libcuda.so.<major>.<minor>[.<patch>]` among `names`.
fn newest_libcuda(names: &[String]) -> Option<(u32, &str)> {
    names
        .iter()
        .filter_map(|name| name.strip_prefix("libcuda.so."))
        // `libcuda.so.1` is the soname link, not a release.
        .filter(|version| version.contains('.'))
        .filter_map(|version| Some((major(version)?, version)))
        .max_by_key(|(major, _)| *major)
}

fn major(version: &str) -> Option<u32> {
    let (major, rest) = version.split_once('.')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(major) && rest.split('.').all(numeric))
        .then(|| major.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_newest_release_of_libcuda_is_found_and_the_soname_link_skipped() {
        let found = names(&[
            "libcuda.so",
            "libcuda.so.1",
            "libcuda.so.555.42.02",
            "libcuda.so.560.28.03",
            "libnvidia-nvvm.so.560.28.03",
        ]);
        assert_eq!(newest_libcuda(&found), Some((560, "560.28.03")));
    }

    #[test]
    fn names_that_are_no_release_are_ignored() {
        let found = names(&[
            "libcuda.so.1",
            "libcuda.so.x.y",
            "libcuda.so.560.",
            "libcuda.so..1",
        ]);
        assert_eq!(newest_libcuda(&found), None);
        assert_eq!(major("99999999999.1"), None, "beyond u32");
    }
}
