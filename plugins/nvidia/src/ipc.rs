//! The driver's daemons, reached through the file system: the sockets of
//! nvidia-persistenced and nv-fabricmanager (with `utility`'s libraries)
//! and the MPS pipe directory (with compute's), bound at the same path in
//! the container where the host has them, as libnvidia-container does.

use hookhost_plugin::host::{self, FileKind};
use hookhost_plugin::inject::{File, FileRole};
use hookhost_plugin::log;

use crate::select::Capability;

/// The daemons' sockets, as NVIDIA's toolkit names them.
pub const SOCKETS: [&str; 2] = [
    "/var/run/nvidia-persistenced/socket",
    "/var/run/nvidia-fabricmanager/socket",
];

/// Where `/var/run` leads on every current distribution: the host checks
/// the allow-list on what a path resolves to as well.
#[cfg(test)]
pub fn resolved(socket: &str) -> String {
    socket.replacen("/var/run/", "/run/", 1)
}

/// The MPS control daemon's default `CUDA_MPS_PIPE_DIRECTORY`.
pub const MPS_PIPE_DIRECTORY: &str = "/tmp/nvidia-mps";

/// Requests the sockets with `utility` and the pipe directory
/// `mps_pipe_directory` with compute among `libraries_of` (see
/// `Capability::libraries_of`).
pub fn request(libraries_of: &[Capability], mps_pipe_directory: &str) -> Result<(), String> {
    if libraries_of.contains(&Capability::Utility) {
        for socket in SOCKETS {
            endpoint(socket, FileKind::Socket)?;
        }
    }
    if libraries_of.contains(&Capability::Compute) {
        endpoint(mps_pipe_directory, FileKind::Directory)?;
    }
    Ok(())
}

/// Binds `path` when the host has it as a `kind`. A daemon that is not
/// running is no error, as in NVIDIA's toolkit; nor is a path the host
/// refuses to show (under a directory others can write, such as `/tmp`,
/// or one that a daemon's own user owns): the container starts without
/// it, and the log says why.
fn endpoint(path: &str, kind: FileKind) -> Result<(), String> {
    match host::glob(path) {
        Ok(found) if found.is_empty() => {
            log::debug!("{path} is not on this host (or not allowed)");
            return Ok(());
        }
        Ok(_) => {}
        Err(e) => {
            log::warn!("{path} is not given to the container: {e}");
            return Ok(());
        }
    }
    if host::stat(path)?.kind != kind {
        let want = if kind == FileKind::Socket {
            "socket"
        } else {
            "directory"
        };
        log::warn!("{path} is not given to the container: it is not a {want}");
        return Ok(());
    }
    File::new(path, FileRole::Misc).request()?;
    Ok(())
}
