//! The one module with `unsafe`: system calls that neither nix nor rustix
//! wraps yet. Each is a thin, checked wrapper; the policy lives with its
//! callers.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::libc;

/// `MOUNT_ATTR_*` (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct mount_attr`, version 0.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)`: sets `attrs` on the mount `fd` refers to (a detached
/// `open_tree` clone, or an attached mount's root), and on every mount below
/// it when `recursive`. Setting the attributes on a mount we hold by fd is
/// what lets a bind be read-only from the moment it is attached, with no
/// path to look up again.
pub fn mount_setattr(fd: impl AsFd, attrs: u64, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the fd is open for the duration of the call, the path is a
    // NUL-terminated empty string, and `attr` is a live `struct mount_attr`
    // of exactly the size passed, which the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}
