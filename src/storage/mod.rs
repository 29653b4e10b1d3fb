//! Where outputs go: a small [`Sink`] trait over "a place with keys", and its local-directory implementation.
//!
//! Keys are relative, `/`-separated paths such as `hourly_kpis/dt=2026-11-22/hour=13/x.parquet`; every sink
//! lays them out identically, so a local run and a cloud run produce the same relative layout.

pub mod s3;

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

/// What [`Sink::head`] tells of an object: its entity tag and the publication generation it was written
/// with (see [`crate::output::publish`]), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub etag: String,
    pub generation: Option<u64>,
}

/// The condition of a conditional write ([`Sink::put_if`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Only if no object has the key (S3 `If-None-Match: *`).
    Absent,
    /// Only if the object's entity tag is this one (S3 `If-Match`).
    Matches(String),
}

/// A destination for outputs. Writes of one key are atomic: a reader sees the old object or the new one.
pub trait Sink: Send + Sync {
    /// The full URI of a key (`file:///…` or `s3://…`).
    fn uri(&self, key: &str) -> String;
    /// Stores `body` under `key`, replacing any previous object.
    fn put(&self, key: &str, body: Body<'_>, content_type: &str) -> Result<()>;
    /// Stores a finished temporary file under `key`. A directory may move it into place instead of copying
    /// it; otherwise the file is handed back (deleted when dropped), for the caller to read again without
    /// downloading it.
    fn put_temp(&self, key: &str, file: tempfile::TempPath, content_type: &str) -> Result<Option<tempfile::TempPath>> {
        self.put(key, Body::File(&file), content_type)?;
        Ok(Some(file))
    }
    /// Reads a small object, or `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Deletes `key`; deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Reads a small object with its entity tag, or `None` when it does not exist.
    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>>;
    /// The entity tag and generation of an object, or `None` when it does not exist.
    fn head(&self, key: &str) -> Result<Option<Head>>;
    /// Stores `bytes` under `key` only if `condition` holds at the moment of the write (atomically), with
    /// `generation` recorded on the object. `Ok(false)` when the condition failed: another writer got there
    /// first, and the caller reads again and retries.
    fn put_if(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        condition: &Condition,
        generation: Option<u64>,
    ) -> Result<bool>;
    /// The keys that start with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// The key of a URI this sink produced, if it is one of its own.
    fn key_of(&self, uri: &str) -> Option<String> {
        uri.strip_prefix(&self.uri("")).map(str::to_string)
    }
}

/// Requests a run made of its sink, by kind (what S3 bills per request).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requests {
    /// GetObject.
    pub get: u64,
    /// HeadObject.
    pub head: u64,
    /// PutObject (conditional ones included; a multipart upload counts as one).
    pub put: u64,
    /// Conditional writes that lost to another writer (412 / 409) and were retried.
    pub put_conflicts: u64,
    /// DeleteObject.
    pub delete: u64,
    /// ListObjectsV2 calls.
    pub list: u64,
}

/// A sink that counts the requests made of another.
pub struct Counting<'a> {
    inner: &'a dyn Sink,
    counts: std::sync::Mutex<Requests>,
}

impl<'a> Counting<'a> {
    pub fn new(inner: &'a dyn Sink) -> Self {
        Counting { inner, counts: Default::default() }
    }

    pub fn requests(&self) -> Requests {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut Requests)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
    }
}

impl Sink for Counting<'_> {
    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }
    fn put(&self, key: &str, body: Body<'_>, content_type: &str) -> Result<()> {
        self.count(|c| c.put += 1);
        self.inner.put(key, body, content_type)
    }
    fn put_temp(&self, key: &str, file: tempfile::TempPath, content_type: &str) -> Result<Option<tempfile::TempPath>> {
        self.count(|c| c.put += 1);
        self.inner.put_temp(key, file, content_type)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.count(|c| c.get += 1);
        self.inner.get(key)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.count(|c| c.delete += 1);
        self.inner.delete(key)
    }
    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.count(|c| c.get += 1);
        self.inner.get_tagged(key)
    }
    fn head(&self, key: &str) -> Result<Option<Head>> {
        self.count(|c| c.head += 1);
        self.inner.head(key)
    }
    fn put_if(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        condition: &Condition,
        generation: Option<u64>,
    ) -> Result<bool> {
        let written = self.inner.put_if(key, bytes, content_type, condition, generation)?;
        self.count(|c| {
            c.put += 1;
            c.put_conflicts += u64::from(!written);
        });
        Ok(written)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.count(|c| c.list += 1);
        self.inner.list(prefix)
    }
    fn key_of(&self, uri: &str) -> Option<String> {
        self.inner.key_of(uri)
    }
}

/// The entity tag of a local object: 16 hex digits of the XXH3-64 hash of its bytes.
fn local_etag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// A local directory. Conditional writes and the reads they are checked against hold an exclusive `flock`
/// on `<root>/.lock`, so they are atomic across threads and processes sharing the directory; an object's
/// generation is kept in a hidden file beside it (`.<file>.meta`, which query engines skip as they skip
/// every name starting with a dot).
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

    fn meta_path(&self, key: &str) -> PathBuf {
        let path = self.path(key);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        path.with_file_name(format!(".{name}.meta"))
    }

    /// Holds the directory's lock until the returned file is dropped.
    fn lock(&self) -> Result<fs::File> {
        let path = self.root.join(".lock");
        let err = |source| Error::Write { path: path.clone(), source };
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(err)?;
        file.lock().map_err(err)?;
        Ok(file)
    }

    fn head_unlocked(&self, key: &str) -> Result<Option<Head>> {
        let Some(bytes) = self.get(key)? else { return Ok(None) };
        let generation = fs::read_to_string(self.meta_path(key)).ok().and_then(|m| m.trim().parse().ok());
        Ok(Some(Head { etag: local_etag(&bytes), generation }))
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
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
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

    fn put_temp(&self, key: &str, file: tempfile::TempPath, content_type: &str) -> Result<Option<tempfile::TempPath>> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| Error::Write { path: path.clone(), source })?;
        }
        // A rename within one file system; a copy when the temporary directory is on another.
        match file.persist(&path) {
            Ok(()) => Ok(None),
            Err(e) => {
                self.put(key, Body::File(&e.path), content_type)?;
                Ok(Some(e.path))
            }
        }
    }

    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        Ok(self.get(key)?.map(|bytes| {
            let etag = local_etag(&bytes);
            (bytes, etag)
        }))
    }

    fn head(&self, key: &str) -> Result<Option<Head>> {
        let _lock = self.lock()?;
        self.head_unlocked(key)
    }

    fn put_if(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        condition: &Condition,
        generation: Option<u64>,
    ) -> Result<bool> {
        let _lock = self.lock()?;
        let current = self.head_unlocked(key)?;
        let holds = match (condition, &current) {
            (Condition::Absent, None) => true,
            (Condition::Matches(etag), Some(head)) => &head.etag == etag,
            _ => false,
        };
        if !holds {
            return Ok(false);
        }
        let meta = self.meta_path(key);
        match generation {
            Some(g) => {
                if let Some(parent) = meta.parent() {
                    fs::create_dir_all(parent).map_err(|source| Error::Write { path: meta.clone(), source })?;
                }
                fs::write(&meta, g.to_string()).map_err(|source| Error::Write { path: meta.clone(), source })?
            }
            None => {
                let _ = fs::remove_file(&meta);
            }
        }
        self.put(key, Body::Bytes(bytes), content_type)?;
        Ok(true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Read { uri: dir.display().to_string(), source }),
            };
            for entry in entries {
                let entry = entry.map_err(|source| Error::Read { uri: dir.display().to_string(), source })?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.contains(".tmp-") {
                    continue;
                }
                let key =
                    path.strip_prefix(&self.root).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
                if path.is_dir() {
                    // Only directories that can hold keys with the prefix.
                    let dir_key = format!("{key}/");
                    if dir_key.starts_with(prefix) || prefix.starts_with(&dir_key) {
                        dirs.push(path);
                    }
                } else if key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
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
        let mut temp = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut temp, b"moved").unwrap();
        assert!(sink.put_temp("a/t.bin", temp.into_temp_path(), "x").unwrap().is_none(), "moved into place");
        assert_eq!(sink.get("a/t.bin").unwrap().as_deref(), Some(&b"moved"[..]));
        sink.delete("a/t.bin").unwrap();
        sink.delete("a/b/c.txt").unwrap();
        sink.delete("a/b/c.txt").unwrap();
        assert_eq!(sink.get("a/b/c.txt").unwrap(), None);
        assert!(!sink.path("a").exists(), "empty directories are removed");
    }

    #[test]
    fn conditional_writes_hold_only_when_their_condition_does() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDir::new(dir.path()).unwrap();
        assert!(sink.put_if("m/x.json", b"1", "t", &Condition::Absent, Some(1)).unwrap());
        assert!(!sink.put_if("m/x.json", b"2", "t", &Condition::Absent, Some(2)).unwrap(), "it exists");
        let head = sink.head("m/x.json").unwrap().unwrap();
        assert_eq!(head.generation, Some(1));
        assert!(!sink.put_if("m/x.json", b"3", "t", &Condition::Matches("\"0\"".into()), None).unwrap());
        assert!(sink.put_if("m/x.json", b"3", "t", &Condition::Matches(head.etag.clone()), Some(3)).unwrap());
        let (bytes, etag) = sink.get_tagged("m/x.json").unwrap().unwrap();
        assert_eq!((bytes.as_slice(), etag.as_str() != head.etag), (&b"3"[..], true));
        assert_eq!(sink.head("m/x.json").unwrap().unwrap().generation, Some(3));
        assert!(!sink.put_if("m/x.json", b"4", "t", &Condition::Matches(head.etag), None).unwrap(), "stale tag");
        sink.put("m/y/z.bin", Body::Bytes(b"z"), "t").unwrap();
        assert_eq!(sink.list("m/").unwrap(), ["m/x.json", "m/y/z.bin"], "hidden metadata files are not listed");
        assert_eq!(sink.list("m/y").unwrap(), ["m/y/z.bin"]);
        assert!(sink.list("nothing/").unwrap().is_empty());
    }
}
