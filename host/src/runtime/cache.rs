//! The cache of precompiled plugins.
//!
//! Compiling a component costs tens of milliseconds; loading a precompiled
//! one costs well under one. But a precompiled component is native code that
//! wasmtime maps and runs without further checks, so the cache is trusted
//! only when nobody else can write to it: it must be a directory owned by the
//! running user with no group or other write bit, and so must every file in
//! it. Entries are keyed by the hash of the `.wasm`, the wasmtime version and
//! the engine's settings, and written under a temporary name then renamed,
//! so a reader never sees half a file.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The wasmtime this host is built with (pinned exactly in Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

// The causes are part of the messages and deliberately not `source`s: the
// top level prints the whole chain, which would then say them twice.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {dir}: {problem}")]
    Untrusted { dir: PathBuf, problem: String },
    #[error("cache directory {dir}: {op}: {error}")]
    Io {
        dir: PathBuf,
        op: &'static str,
        error: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Opens the cache, creating the directory (mode 0700) if it is missing,
    /// and refuses one that others could write to.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(error) => {
                return Err(CacheError::Io {
                    dir: dir.to_path_buf(),
                    op: "create",
                    error,
                })
            }
        }
        let meta = fs::symlink_metadata(dir).map_err(|error| CacheError::Io {
            dir: dir.to_path_buf(),
            op: "stat",
            error,
        })?;
        if !meta.is_dir() {
            return Err(untrusted(dir, "is not a directory (a symlink is refused)"));
        }
        check_owner_and_mode(&meta).map_err(|p| untrusted(dir, &p))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the precompiled form of `wasm` lives for this engine.
    pub fn entry(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let digest = Sha256::digest(wasm);
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!(
            "{hex}-wasmtime{WASMTIME_VERSION}-{:016x}.cwasm",
            engine_hash.finish()
        ))
    }

    /// The component of `wasm`: loaded from the cache when a trusted entry
    /// is there, else compiled and stored. Returns whether it was compiled.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Component, bool), LoadError> {
        let entry = self.entry(engine, wasm);
        if let Some(component) = self.load(engine, &entry)? {
            return Ok((component, false));
        }
        let component = Component::new(engine, wasm).map_err(LoadError::Compile)?;
        self.store(&entry, &component)?;
        Ok((component, true))
    }

    fn load(&self, engine: &Engine, entry: &Path) -> Result<Option<Component>, LoadError> {
        let meta = match fs::symlink_metadata(entry) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io("stat an entry", error).into()),
        };
        if !meta.is_file() {
            return Err(untrusted(entry, "is not a regular file").into());
        }
        check_owner_and_mode(&meta).map_err(|p| untrusted(entry, &p))?;
        // SAFETY: `deserialize_file` maps the file as native code. It is
        // sound as long as the file was written by `Component::serialize` of
        // a compatible engine and nobody else can change it: the entry and
        // its directory are owned by us and writable by no one else (checked
        // above and in `open`), and we only ever write finished entries by
        // rename. A stale or foreign-engine entry fails wasmtime's own header
        // check and is then recompiled.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, entry) };
        Ok(loaded.ok())
    }

    fn store(&self, entry: &Path, component: &Component) -> Result<(), CacheError> {
        let bytes = component.serialize().map_err(|e| CacheError::Io {
            dir: self.dir.clone(),
            op: "serialize a component",
            error: std::io::Error::other(e.to_string()),
        })?;
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            entry.file_name().unwrap().to_string_lossy()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, entry)
        };
        write().map_err(|error| {
            let _ = fs::remove_file(&tmp);
            self.io("write an entry", error)
        })
    }

    fn io(&self, op: &'static str, error: std::io::Error) -> CacheError {
        CacheError::Io {
            dir: self.dir.clone(),
            op,
            error,
        }
    }
}

/// Why a plugin's code could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0:#}")]
    Compile(wasmtime::Error),
}

fn check_owner_and_mode(meta: &fs::Metadata) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(format!(
            "is owned by uid {}, not by the running user (uid {euid})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:04o}); run `chmod go-w` on it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn untrusted(path: &Path, problem: &str) -> CacheError {
    CacheError::Untrusted {
        dir: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_cache_writable_by_others_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Cache::open(&dir).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o777,
            "the mode is reported, not fixed behind the user's back"
        );
    }

    #[test]
    fn a_missing_cache_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        Cache::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_symlinked_cache_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", tmp.path().join("link")).unwrap();
        let err = Cache::open(&tmp.path().join("link"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("symlink"), "{err}");
    }
}
