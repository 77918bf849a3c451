//! The one module with `unsafe`: system calls that neither nix nor rustix
//! wraps yet. Each is a thin, checked wrapper; the policy lives with its
//! callers.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

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

/// `bpf(2)` commands (linux/bpf.h `enum bpf_cmd`).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type of device programs.
const BPF_CGROUP_DEVICE: u32 = 6;
/// Attach flags: several programs per cgroup (all must allow), and
/// replacing one of them in place.
pub const BPF_F_ALLOW_MULTI: u32 = 2;
pub const BPF_F_REPLACE: u32 = 4;

/// The parts of `union bpf_attr` used here, each laid out as the kernel's
/// struct for its command.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The whole union, zeroed past the command's fields: newer kernels check
/// that the bytes they know and we do not are zero, and write some results
/// (PROG_QUERY's revision) past the fields of older ones.
#[repr(C)]
union BpfAttr {
    load: ProgLoad,
    attach: ProgAttach,
    query: ProgQuery,
    get_fd: GetFdById,
    size: [u64; 32],
}

impl BpfAttr {
    fn zeroed() -> Self {
        BpfAttr { size: [0; 32] }
    }
}

/// `bpf(cmd, attr, sizeof attr)`: the raw return value.
fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, fully initialised `union bpf_attr` of the
    // size passed; the pointers inside it (set by the callers) point to
    // buffers that outlive the call, of the lengths given beside them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BpfAttr,
            std::mem::size_of::<BpfAttr>(),
        )
    };
    Errno::result(ret)
}

/// Takes ownership of the fd a `bpf(2)` command returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// `BPF_PROG_LOAD` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program of `insns`
/// (each one `struct bpf_insn`, encoded), named `name` (15 bytes at most).
/// On failure, the errno and the verifier's log.
pub fn bpf_load_device_program(insns: &[u64], name: &str) -> Result<OwnedFd, (Errno, String)> {
    let license = c"Apache-2.0";
    let mut prog_name = [0u8; 16];
    let len = name.len().min(15);
    prog_name[..len].copy_from_slice(&name.as_bytes()[..len]);
    let load = |log: &mut [u8]| {
        let mut attr = BpfAttr::zeroed();
        attr.load = ProgLoad {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            kern_version: 0,
            prog_flags: 0,
            prog_name,
        };
        bpf(BPF_PROG_LOAD, &mut attr).map(owned)
    };
    load(&mut []).or_else(|_| {
        // Again with the verifier's log, to say why.
        let mut log = vec![0u8; 64 * 1024];
        load(&mut log).map_err(|errno| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            (
                errno,
                String::from_utf8_lossy(&log[..end]).trim().to_string(),
            )
        })
    })
}

/// `BPF_PROG_QUERY` of the device programs attached to the cgroup `cgroup`
/// (an open cgroup v2 directory): the attach flags and the program ids.
pub fn bpf_query_device_programs(cgroup: impl AsFd) -> Result<(u32, Vec<u32>), Errno> {
    let mut ids = vec![0u32; 64];
    let mut attr = BpfAttr::zeroed();
    attr.query = ProgQuery {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    // SAFETY: the kernel filled in the query fields it was given.
    let query = unsafe { attr.query };
    ids.truncate(query.prog_cnt as usize);
    Ok((query.attach_flags, ids))
}

/// `BPF_PROG_GET_FD_BY_ID`: a program by its id.
pub fn bpf_program_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut attr = BpfAttr::zeroed();
    attr.get_fd = GetFdById {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)
}

/// `BPF_PROG_ATTACH` of the device program `program` to `cgroup` with
/// `flags`; with `BPF_F_REPLACE`, in the place of `replace`.
pub fn bpf_attach_device_program(
    cgroup: impl AsFd,
    program: impl AsFd,
    flags: u32,
    replace: Option<BorrowedFd>,
) -> Result<(), Errno> {
    let mut attr = BpfAttr::zeroed();
    attr.attach = ProgAttach {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_bpf_fd: program.as_fd().as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |fd| fd.as_raw_fd() as u32),
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}
