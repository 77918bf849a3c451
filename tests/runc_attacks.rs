//! The red-team review's attacks on the executor, each performed for real
//! in runc containers (see docs/security.md): an image's device node under
//! the linker cache, a writer racing the binds, an image's `LD_PRELOAD` in a
//! createContainer hook, setuid copies, a rootfs started twice, and errors
//! that keep their errno.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::runc::{nvidia_host, runc, snapshot, Bundle};

/// A loop device over a file: a stand-in for a host disk. Detached on drop.
struct Loop {
    device: PathBuf,
}

impl Loop {
    fn attach(file: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux's mount package) attaches the test's loop device");
        assert!(out.status.success(), "losetup: {}", stderr(&out));
        Loop {
            device: PathBuf::from(stdout(&out).trim()),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

fn mknod_like(at: &Path, device: &Path) {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(device).unwrap().rdev();
    let status = Command::new("mknod")
        .arg(at)
        .arg("b")
        .arg(nix::sys::stat::major(rdev).to_string())
        .arg(nix::sys::stat::minor(rdev).to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ldconfig_cannot_write_into_a_block_device_shipped_in_the_image() {
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let disk_dir = tempfile::tempdir().unwrap();
    let disk = disk_dir.path().join("disk.img");
    let content = vec![0xabu8; 1 << 20];
    std::fs::write(&disk, &content).unwrap();
    let loop_device = Loop::attach(&disk);

    // ldconfig writes its cache to `/etc/ld.so.cache~` with O_CREAT|O_TRUNC|
    // O_NOFOLLOW, which a device node does not stop.
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    std::fs::create_dir_all(bundle.rootfs().join("etc")).unwrap();
    mknod_like(
        &bundle.rootfs().join("etc/ld.so.cache~"),
        &loop_device.device,
    );
    let before = snapshot(&bundle.rootfs());
    let (ok, out) = bundle.run(&runc);
    let _ = Command::new("sync").status();
    assert!(
        std::fs::read(&disk).unwrap() == content,
        "ldconfig wrote onto the host's disk through the image's node:\n{out}"
    );
    assert!(!ok, "the image's node makes ldconfig fail:\n{out}");
    assert!(out.contains("ld.so.cache~"), "ldconfig's words:\n{out}");
    crate::runc::assert_all_undone(&bundle, &before, &out);
}

#[test]
fn a_racing_writer_never_gets_an_injected_library_writable() {
    // A writer outside the container (a sibling sharing the rootfs
    // directory) swaps the library directory for a symlink to a decoy copy
    // and back, as fast as it can, while the hook binds the host's libraries
    // there. Whichever directory a bind lands in, it is read-only from the
    // moment it is attached, and the host's files never change.
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let libs = host.path().join("usr/lib/x86_64-linux-gnu");
    let host_before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&libs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let mut started = 0;
    for round in 0..12 {
        // The container looks once the writer has stopped (it stops when
        // the hook has written its audit line), so that its own `>>` never
        // creates a file through a directory that moved under it.
        let bundle = Bundle::new(
            host.path(),
            &["NVIDIA_VISIBLE_DEVICES=0"],
            "i=0; while [ ! -e /writer-stopped ] && [ $i -lt 400 ]; do \
               sleep 0.05; i=$((i+1)); done; \
             for f in /usr/lib/x86_64-linux-gnu/* /usr/lib/decoy/*; do \
               test -f \"$f\" || continue; \
               echo attack 2>/dev/null >> \"$f\" && echo \"WRITABLE $f\"; \
             done; echo checked",
        );
        let usr_lib = bundle.rootfs().join("usr/lib");
        std::fs::create_dir_all(usr_lib.join("x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(usr_lib.join("decoy")).unwrap();
        std::os::unix::fs::symlink("decoy", usr_lib.join("swap")).unwrap();
        let racer = std::thread::spawn({
            let dir = usr_lib.clone();
            let audit = bundle.audit.clone();
            let stopped = bundle.rootfs().join("writer-stopped");
            move || {
                // Bounded: it stops once the hook is done, or after 200,000
                // swaps.
                let mut swaps = 0;
                while !audit.exists() && swaps < 200_000 {
                    let _ = nix::fcntl::renameat2(
                        nix::fcntl::AT_FDCWD,
                        &dir.join("x86_64-linux-gnu"),
                        nix::fcntl::AT_FDCWD,
                        &dir.join("swap"),
                        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                    );
                    swaps += 1;
                    if swaps % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
                std::fs::write(stopped, "").unwrap();
                swaps
            }
        });
        let (ok, out) = bundle.run(&runc);
        let swaps = racer.join().unwrap();
        assert!(swaps > 0);
        assert!(
            !out.contains("WRITABLE"),
            "round {round}: an injected file was writable:\n{out}"
        );
        if ok {
            assert!(out.contains("checked"), "{out}");
            started += 1;
        } else {
            assert!(out.contains("hookhost: "), "round {round}:\n{out}");
        }
        for (path, bytes) in &host_before {
            assert!(
                std::fs::read(path).unwrap() == *bytes,
                "round {round}: the host's {} changed:\n{out}",
                path.display()
            );
        }
    }
    assert!(started > 0, "no container started in 12 rounds");
}

/// A shared object whose constructor creates `marker`: what an image would
/// plant for the host's loader.
fn evil_library(at: &Path, marker: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("evil.c");
    std::fs::write(
        &source,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void own(void) {{\n\
               int fd = open(\"{}\", O_CREAT | O_WRONLY, 0644);\n\
               if (fd >= 0) close(fd);\n\
             }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(at)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn an_images_ld_preload_never_runs_in_a_create_container_hook() {
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("image-code-ran-as-root");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    let rootfs = bundle.rootfs();
    evil_library(&rootfs.join("evil.so"), &marker);
    bundle.as_create_container_hook();
    let config_path = bundle.dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    // No "env" in the hook entry: runc hands the hook the container's, where
    // the image set the loader's variables (relative to the hook's working
    // directory, and, for certainty here, absolute).
    config["hooks"]["createContainer"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let env = config["process"]["env"].as_array_mut().unwrap();
    env.push(
        format!(
            "LD_PRELOAD=/proc/self/cwd/evil.so {}/evil.so",
            rootfs.display()
        )
        .into(),
    );
    env.push(format!("LD_LIBRARY_PATH=/proc/self/cwd:{}", rootfs.display()).into());
    std::fs::write(&config_path, config.to_string()).unwrap();

    let (ok, out) = bundle.run(&runc);
    assert!(
        !marker.exists(),
        "the image's library ran inside the root hook:\n{out}"
    );
    assert!(
        !ok,
        "the hook refuses to run with the image's loader variables:\n{out}"
    );
    assert!(
        out.contains("carries LD_LIBRARY_PATH, LD_PRELOAD")
            && out.contains("give the hook entry an explicit"),
        "{out}"
    );
}

#[test]
fn both_binaries_are_static_so_no_loader_reads_their_environment() {
    // A statically linked executable has no PT_INTERP program header: the
    // kernel starts it directly and no ld.so ever reads LD_PRELOAD.
    for (name, path) in [
        ("hookhost", env!("CARGO_BIN_EXE_hookhost")),
        ("hookhost-engine", env!("CARGO_BIN_EXE_hookhost-engine")),
    ] {
        let elf = std::fs::read(path).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF");
        let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
        let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        const PT_INTERP: u32 = 3;
        let interp = (0..phnum).any(|i| {
            let at = phoff + i * phentsize;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
        });
        assert!(!interp, "{name} is dynamically linked");
        // ET_DYN: static-pie, so ASLR still applies.
        assert_eq!(u16_at(0x10), 3, "{name} is not position-independent");
    }
}

#[test]
fn copies_never_carry_setuid_or_setgid() {
    let Some(runc) = runc() else { return };
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("usr/bin")).unwrap();
    let tool = host.path().join("usr/bin/vendor-tool");
    std::fs::copy("/bin/busybox", &tool).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let plugins = scripted_plugins(
        &["/usr/bin/vendor-tool"],
        serde_json::json!([
            {"copy": {"host": "/usr/bin/vendor-tool", "container": "/usr/bin/vendor-tool"}},
        ]),
    );
    let bundle = Bundle::with_plugins(
        plugins.path(),
        host.path(),
        &["SCRIPTED=1"],
        "stat -c 'tool %a %u' /usr/bin/vendor-tool",
    );
    let (ok, out) = bundle.run(&runc);
    assert!(ok, "the container must start:\n{out}");
    assert!(out.contains("tool 755 0"), "setuid/setgid stripped:\n{out}");
    assert_eq!(
        std::fs::metadata(&tool).unwrap().permissions().mode() & 0o7777,
        0o6755,
        "the host's tool is untouched"
    );
}

/// A plugins directory with the scripted test plugin making `requests`,
/// active on `SCRIPTED`, allowed `allow`.
fn scripted_plugins(allow: &[&str], requests: serde_json::Value) -> tempfile::TempDir {
    let manifest = serde_json::json!({
        "activation": {"env": ["SCRIPTED"]},
        "allow": allow,
        "settings": {"requests": requests},
    });
    plugin_dir("scripted", "scripted", &manifest.to_string())
}

#[test]
fn a_persistent_rootfs_starts_twice() {
    // Docker's stop/start keeps the upper layer; a plain directory rootfs
    // is kept too: the second start finds the first start's links, copies
    // and drop-in, and accepts them as they are.
    let Some(runc) = runc() else { return };
    let host = nvidia_host();
    let bundle = Bundle::new(
        host.path(),
        &["NVIDIA_VISIBLE_DEVICES=0"],
        "readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1; cat /dev/nvidia0 2>&1; true",
    );
    for start in ["first", "second"] {
        let (ok, out) = bundle.run(&runc);
        assert!(ok, "the {start} start must work:\n{out}");
        assert!(out.contains("libcuda.so.550.54.14\n"), "{out}");
        assert!(out.contains("No such device or address"), "{out}");
    }
    // A copy and a link of the scripted plugin, likewise.
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(etc.path().join("etc")).unwrap();
    std::fs::write(etc.path().join("etc/foo.conf"), "setting=1\n").unwrap();
    let plugins = scripted_plugins(
        &["/etc/foo.conf"],
        serde_json::json!([
            {"copy": {"host": "/etc/foo.conf", "container": "/etc/foo.conf"}},
            {"symlink": {"target": "foo.conf", "container": "/etc/foo.link"}},
        ]),
    );
    let bundle = Bundle::with_plugins(
        plugins.path(),
        etc.path(),
        &["SCRIPTED=1"],
        "cat /etc/foo.link",
    );
    for start in ["first", "second"] {
        let (ok, out) = bundle.run(&runc);
        assert!(ok, "the {start} start must work:\n{out}");
        assert!(out.contains("setting=1"), "{out}");
    }
    // What differs is still refused, with the system's reason when it has one.
    std::fs::write(bundle.rootfs().join("etc/foo.conf"), "the image's own\n").unwrap();
    let (ok, out) = bundle.run(&runc);
    assert!(!ok, "{out}");
    assert!(
        out.contains("plugin `scripted`: copy /etc/foo.conf: something else is already there"),
        "{out}"
    );
}

#[test]
fn executor_errors_name_plugin_action_path_and_the_system_error() {
    // The image's library directory is a link that dangles inside the
    // rootfs: making it fails with EEXIST, and the message says so.
    let Some(runc) = runc() else { return };
    let host = fake_host("nvidia");
    let bundle = Bundle::new(host.path(), &["NVIDIA_VISIBLE_DEVICES=0"], "true");
    std::fs::create_dir_all(bundle.rootfs().join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("/nowhere", bundle.rootfs().join("usr/lib/x86_64-linux-gnu"))
        .unwrap();
    let (ok, out) = bundle.run(&runc);
    assert!(!ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("hookhost: plugin `nvidia`: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(" /usr/lib/x86_64-linux-gnu/")
            && line.contains("mkdirat x86_64-linux-gnu: EEXIST: File exists"),
        "{line}"
    );
}
