//! Where outputs go: a small [`Sink`] trait over "a place with keys", and its local-directory implementation.
//!
//! Keys are relative, `/`-separated paths such as `hourly_kpis/dt=2026-11-22/hour=13/x.parquet`; every sink
//! lays them out identically, so a local run and a cloud run produce the same relative layout.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The body of an object to store.
pub enum Body<'a> {
    Bytes(&'a [u8]),
    /// A local file, possibly large (streamed, never read whole into memory).
    File(&'a Path),
}

/// A destination for outputs. Writes of one key are atomic: a reader sees the old object or the new one.
pub trait Sink: Send + Sync {
    /// The full URI of a key (`file:///…` or `s3://…`).
    fn uri(&self, key: &str) -> String;
    /// Stores `body` under `key`, replacing any previous object.
    fn put(&self, key: &str, body: Body<'_>, content_type: &str) -> Result<()>;
    /// Reads a small object, or `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Deletes `key`; deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// The key of a URI this sink produced, if it is one of its own.
    fn key_of(&self, uri: &str) -> Option<String> {
        uri.strip_prefix(&self.uri("")).map(str::to_string)
    }
}

/// A local directory.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Uses (and creates) `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| Error::Write { path: root.clone(), source })?;
        let root = fs::canonicalize(&root).map_err(|source| Error::Write { path: root.clone(), source })?;
        Ok(LocalDir { root })
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

impl Sink for LocalDir {
    fn uri(&self, key: &str) -> String {
        format!("file://{}/{}", self.root.display(), key)
    }

    fn put(&self, key: &str, body: Body<'_>, _content_type: &str) -> Result<()> {
        let path = self.path(key);
        let write = || -> io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            match body {
                Body::Bytes(bytes) => fs::write(&tmp, bytes)?,
                Body::File(src) => {
                    fs::copy(src, &tmp)?;
                }
            }
            fs::rename(&tmp, &path)
        };
        write().map_err(|source| Error::Write { path: path.clone(), source })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { uri: self.uri(key), source }),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                // Tidy empty partition directories left behind (best effort).
                let mut dir = path.parent();
                while let Some(d) = dir {
                    if d == self.root || fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dir_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDir::new(dir.path().join("out")).unwrap();
        sink.put("a/b/c.txt", Body::Bytes(b"hello"), "text/plain").unwrap();
        assert_eq!(sink.get("a/b/c.txt").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(sink.key_of(&sink.uri("a/b/c.txt")).as_deref(), Some("a/b/c.txt"));
        sink.delete("a/b/c.txt").unwrap();
        sink.delete("a/b/c.txt").unwrap();
        assert_eq!(sink.get("a/b/c.txt").unwrap(), None);
        assert!(!sink.path("a").exists(), "empty directories are removed");
    }
}
