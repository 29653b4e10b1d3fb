//! S3 as input and output, through aws-sdk-s3.
//!
//! The pipeline is synchronous (CPU-bound parsing and aggregation on a blocking thread); S3 is async. The
//! bridge is made once, here:
//! - **Input**: a tokio task reads the `GetObject` body and sends its chunks into a bounded channel
//!   ([`CHANNEL_CHUNKS`] chunks); the pipeline reads them through [`ChannelReader`] (`std::io::Read`). The
//!   object is never held whole in memory; back-pressure stops the download when parsing lags. If the body
//!   stream breaks (the SDK does not retry those), the task resumes with a ranged `GetObject` pinned to the
//!   same ETag, a few times with backoff.
//! - **Several streams**: one S3 connection reads more slowly than the parser, and Lambda bills wall time,
//!   so an object larger than one part ([`ReadOptions`]) is read as ranged `GetObject`s, several in flight:
//!   the first part streams as it arrives while the next ones download, and parts are handed on in order.
//!   Every part is pinned to the ETag (and version) of the first response and resumed on its own when its
//!   body breaks; memory is bounded by the parts in flight.
//! - **Output**: [`S3Sink`] implements [`Sink`] by blocking on the runtime handle (it must be called from a
//!   blocking thread, never from async code). Files above [`S3Sink::multipart_threshold`] are uploaded in
//!   parts, streamed from disk.
//!
//! SDK retries (standard mode, with backoff) handle 5xx, throttling and timeouts; whatever still fails
//! becomes [`Error::Storage`] with `retryable` set from the error class.

use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::read::input::{Input, SourceInfo};
use crate::storage::{Body, Condition, Head, Sink};

/// Body chunks buffered between the download task and the parser.
pub const CHANNEL_CHUNKS: usize = 16;
/// How often a broken body stream is resumed before the run fails.
const BODY_RESUMES: u32 = 3;

/// An `s3://bucket/key` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses `s3://bucket/key` (the key may be empty or end with `/`).
    pub fn parse(uri: &str) -> Option<S3Uri> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| S3Uri { bucket: bucket.to_string(), key: key.to_string() })
    }
}

/// Whether an SDK error is worth retrying later (5xx, throttling, timeouts, connection trouble).
pub fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout() || d.is_other(),
        SdkError::ServiceError(se) => {
            let status = se.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || matches!(
                    se.err().code(),
                    Some(
                        "SlowDown"
                            | "RequestTimeout"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "Throttling"
                            | "ThrottlingException"
                            | "ExpiredToken"
                    )
                )
        }
        _ => false,
    }
}

fn storage_error<E>(uri: String, op: &str, err: &SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    Error::Storage { uri, message: format!("{op}: {}", DisplayErrorContext(err)), retryable: is_transient(err) }
}

/// How an object is read: in parts of `part_bytes`, `streams` of them in flight (one stream: a single
/// `GetObject`, as for any object no larger than one part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    pub streams: usize,
    pub part_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { streams: 4, part_bytes: 8 << 20 }
    }
}

impl ReadOptions {
    /// `S3_GET_STREAMS` (default 4, 1 = one `GetObject`) and `S3_GET_PART_MIB` (default 8).
    pub fn from_env() -> Self {
        let number =
            |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&n| n > 0);
        let default = ReadOptions::default();
        ReadOptions {
            streams: number("S3_GET_STREAMS").map_or(default.streams, |n| n.min(64) as usize),
            part_bytes: number("S3_GET_PART_MIB").map_or(default.part_bytes, |n| n.min(1024) << 20),
        }
    }
}

/// Slices a downloaded part is handed on in, so that the channel holds a bounded number of bytes.
const SLICE_BYTES: usize = 1 << 20;

/// Opens an object for streaming, as [`ReadOptions::from_env`] says. `Ok(None)` when it does not exist
/// (deleted before we ran).
pub async fn open_object(client: &Client, bucket: &str, key: &str, version_id: Option<&str>) -> Result<Option<Input>> {
    open_object_with(client, bucket, key, version_id, ReadOptions::from_env()).await
}

/// [`open_object`] with explicit read options.
pub async fn open_object_with(
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    options: ReadOptions,
) -> Result<Option<Input>> {
    let uri = format!("s3://{bucket}/{key}");
    let options = ReadOptions { streams: options.streams.max(1), part_bytes: options.part_bytes.max(1) };
    let request = || client.get_object().bucket(bucket).key(key).set_version_id(version_id.map(str::to_string));
    let ranged = options.streams > 1;
    let first = if ranged { request().range(format!("bytes=0-{}", options.part_bytes - 1)) } else { request() };
    let mut out = match first.send().await {
        Ok(out) => out,
        Err(e) if is_missing(&e) => return Ok(None),
        // An empty object has no byte 0: a range is not satisfiable, the whole object is.
        Err(e) if ranged && e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
            match request().send().await {
                Ok(out) => out,
                Err(e) if is_missing(&e) => return Ok(None),
                Err(e) => return Err(storage_error(uri, "GetObject", &e)),
            }
        }
        Err(e) => return Err(storage_error(uri, "GetObject", &e)),
    };
    // `bytes 0-8388607/1000000000`: the object's size after the slash.
    let size_of = |range: &str| range.rsplit_once('/').and_then(|(_, t)| t.parse::<u64>().ok());
    if out.content_range().is_some_and(|r| size_of(r).is_none()) {
        // A part of an object of unknown size (`/*`): read the whole object in one stream instead.
        out = match request().send().await {
            Ok(out) => out,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(storage_error(uri, "GetObject", &e)),
        };
    }
    let received = out.content_length().unwrap_or(0).max(0) as u64;
    let total = out.content_range().and_then(size_of).unwrap_or(received);
    let info = SourceInfo {
        uri: uri.clone(),
        bytes: total,
        etag: out.e_tag().map(str::to_string),
        version_id: out.version_id().map(str::to_string),
        sequencer: None,
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let object = ObjectRef {
        client: client.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: info.version_id.clone().or_else(|| version_id.map(str::to_string)),
        etag: info.etag.clone(),
    };
    let task = BodyTask { object, tx };
    let span = tracing::Span::current();
    if received < total {
        tracing::debug!(bytes = total, streams = options.streams, part_bytes = options.part_bytes, "ranged reads");
        let parts = Parts { next: received, total, options };
        tokio::spawn(tracing::Instrument::instrument(task.run_parts(out.body, parts), span));
    } else {
        tokio::spawn(tracing::Instrument::instrument(task.run(out.body), span));
    }
    Ok(Some(Input { reader: Box::new(ChannelReader { rx, current: Bytes::new() }), info }))
}

/// The parts of an object still to be read after the first: from `next` to `total`.
struct Parts {
    next: u64,
    total: u64,
    options: ReadOptions,
}

/// Whether `s3://bucket/key` still has the ETag a run read (a re-upload changes it).
pub async fn still_current(client: &Client, bucket: &str, key: &str, etag: Option<&str>) -> Result<bool> {
    let Some(etag) = etag else { return Ok(true) };
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(head.e_tag() == Some(etag)),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(false),
        Err(e) => Err(storage_error(format!("s3://{bucket}/{key}"), "HeadObject", &e)),
    }
}

/// Whether a response is 403 Forbidden.
fn is_forbidden(response: Option<&aws_sdk_s3::config::http::HttpResponse>) -> bool {
    response.is_some_and(|r| r.status().as_u16() == 403)
}

/// Whether `s3://bucket/key` has a current object.
pub async fn still_exists(client: &Client, bucket: &str, key: &str) -> Result<bool> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().is_some_and(|se| se.is_not_found())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Ok(false)
        }
        Err(e) => Err(storage_error(format!("s3://{bucket}/{key}"), "HeadObject", &e)),
    }
}

fn is_missing(e: &SdkError<aws_sdk_s3::operation::get_object::GetObjectError>) -> bool {
    e.as_service_error()
        .is_some_and(|se| se.is_no_such_key() || matches!(se.code(), Some("NoSuchVersion" | "NoSuchBucket")))
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

struct BodyTask {
    object: ObjectRef,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl BodyTask {
    /// Streams the whole object's body (the first response's) on.
    async fn run(self, body: ByteStream) {
        self.stream(body, 0, None).await;
    }

    /// Streams the first part's body while the next parts download, `streams - 1` at a time besides it,
    /// then hands each part on in order as it completes. A failed part fails the read.
    async fn run_parts(self, first: ByteStream, mut parts: Parts) {
        let first_end = parts.next;
        let mut pending: std::collections::VecDeque<tokio::task::JoinHandle<io::Result<Bytes>>> =
            std::collections::VecDeque::new();
        let streams = parts.options.streams;
        let spawn_more = |pending: &mut std::collections::VecDeque<_>, parts: &mut Parts, limit: usize| {
            while pending.len() < limit && parts.next < parts.total {
                let end = (parts.next + parts.options.part_bytes).min(parts.total);
                let part = fetch_part(self.object.clone(), parts.next, end);
                pending.push_back(tokio::spawn(tracing::Instrument::instrument(part, tracing::Span::current())));
                parts.next = end;
            }
        };
        // While the first part streams, the others take the remaining streams.
        spawn_more(&mut pending, &mut parts, streams - 1);
        if !self.stream(first, 0, Some(first_end)).await {
            pending.iter().for_each(|h| h.abort());
            return;
        }
        while let Some(handle) = pending.pop_front() {
            spawn_more(&mut pending, &mut parts, streams);
            let result = handle.await.unwrap_or_else(|e| Err(io::Error::other(format!("a part download failed: {e}"))));
            match result {
                Ok(bytes) => {
                    let mut at = 0;
                    while at < bytes.len() {
                        let end = (at + SLICE_BYTES).min(bytes.len());
                        if self.tx.send(Ok(bytes.slice(at..end))).await.is_err() {
                            pending.iter().for_each(|h| h.abort());
                            return;
                        }
                        at = end;
                    }
                }
                Err(e) => {
                    pending.iter().for_each(|h| h.abort());
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Sends the body of the bytes `from..to` (to the end without `to`) on as it arrives, resuming it where
    /// it breaks. False when the read is over (the reader is gone, or the body failed: the error was sent).
    async fn stream(&self, body: ByteStream, from: u64, to: Option<u64>) -> bool {
        let mut body = ResumingBody { object: &self.object, body, offset: from, to, resumes: 0 };
        loop {
            match body.next().await {
                Ok(Some(chunk)) => {
                    if self.tx.send(Ok(chunk)).await.is_err() {
                        return false; // the reader is gone (run failed or finished early)
                    }
                }
                Ok(None) => return true,
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return false;
                }
            }
        }
    }
}

/// The object a read is pinned to.
#[derive(Clone)]
struct ObjectRef {
    client: Client,
    bucket: String,
    key: String,
    version_id: Option<String>,
    etag: Option<String>,
}

impl ObjectRef {
    /// A ranged `GetObject` of `from..to` (to the end without `to`), pinned to the version and ETag.
    async fn range(&self, from: u64, to: Option<u64>) -> io::Result<ByteStream> {
        let range = match to {
            Some(to) => format!("bytes={from}-{}", to - 1),
            None => format!("bytes={from}-"),
        };
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_version_id(self.version_id.clone())
            .set_if_match(self.etag.clone())
            .range(range)
            .send()
            .await
            .map_err(|e| io::Error::other(format!("ranged GetObject failed: {}", DisplayErrorContext(&e))))?;
        // Checked here too, for stores that ignore `If-Match` on reads: two versions must never be mixed.
        if let (Some(want), Some(got)) = (&self.etag, out.e_tag()) {
            if want != got {
                return Err(io::Error::other(format!(
                    "ranged GetObject failed: the object changed while it was read (ETag {got}, was {want})"
                )));
            }
        }
        Ok(out.body)
    }
}

/// The body of the bytes `offset..to` of an object (to its end without `to`), resumed with a ranged
/// `GetObject` where the stream breaks (the SDK does not retry those), a few times with backoff.
struct ResumingBody<'a> {
    object: &'a ObjectRef,
    body: ByteStream,
    /// The first byte not yet returned.
    offset: u64,
    to: Option<u64>,
    resumes: u32,
}

impl ResumingBody<'_> {
    /// The next chunk, `None` at the end; a body that ends before `to` is an error.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.body.try_next().await {
                Ok(Some(chunk)) => {
                    self.offset += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Ok(None) => {
                    return match self.to {
                        Some(to) if self.offset < to => {
                            Err(io::Error::other(format!("object body ended at {} of {to}", self.offset)))
                        }
                        _ => Ok(None),
                    }
                }
                Err(e) if self.resumes < BODY_RESUMES => {
                    self.resumes += 1;
                    let (offset, attempt) = (self.offset, self.resumes);
                    tracing::warn!(offset, attempt, error = %e, "object body stream broke; resuming");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    self.body = self.object.range(offset, self.to).await?;
                }
                Err(e) => return Err(io::Error::other(format!("object body stream failed: {e}"))),
            }
        }
    }
}

/// One part of a ranged read: the bytes `from..to`, downloaded whole.
async fn fetch_part(object: ObjectRef, from: u64, to: u64) -> io::Result<Bytes> {
    let body = object.range(from, Some(to)).await?;
    let mut data = bytes::BytesMut::with_capacity((to - from) as usize);
    let mut body = ResumingBody { object: &object, body, offset: from, to: Some(to), resumes: 0 };
    while let Some(chunk) = body.next().await? {
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}

/// Reads the chunks a [`BodyTask`] sends. Blocking: use it off the async runtime.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// Outputs under `s3://bucket/prefix`.
pub struct S3Sink {
    client: Client,
    bucket: String,
    prefix: String,
    handle: Handle,
    /// Files at least this large are uploaded with multipart upload.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (S3 requires at least 5 MiB except for the last part).
    pub part_size: u64,
}

impl S3Sink {
    /// `prefix` is empty or ends with `/`.
    pub fn new(client: Client, bucket: &str, prefix: &str, handle: Handle) -> Self {
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        S3Sink {
            client,
            bucket: bucket.to_string(),
            prefix,
            handle,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
        }
    }

    /// The runtime handle the sink blocks on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Whether `key` exists, by listing exactly its name. A role may list the output bucket only under its
    /// prefix (an `s3:prefix` condition), and S3 then answers a GET or HEAD of a missing key with 403, not
    /// 404 (the request carries no prefix): a 403 is a missing key when this listing does not show it.
    async fn listed(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key);
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| storage_error(self.uri(key), "ListObjectsV2 (after 403)", &e))?;
        Ok(out.contents().iter().any(|o| o.key() == Some(full.as_str())))
    }

    async fn put_multipart(&self, key: &str, path: &Path, content_type: &str) -> Result<()> {
        let uri = self.uri(key);
        let full = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| storage_error(uri.clone(), "CreateMultipartUpload", &e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        // Every way out but a completed upload aborts it, so no parts are left billed and invisible.
        let result = match self.upload_parts(&full, &upload_id, path, &uri).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| storage_error(uri.clone(), "CompleteMultipartUpload", &e)),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let abort = self.client.abort_multipart_upload().bucket(&self.bucket).key(&full).upload_id(&upload_id);
            if let Err(abort_err) = abort.send().await {
                tracing::warn!(error = %DisplayErrorContext(&abort_err), "could not abort multipart upload");
            }
        }
        result
    }

    async fn upload_parts(&self, full: &str, upload_id: &str, path: &Path, uri: &str) -> Result<Vec<CompletedPart>> {
        let io_err = |source| Error::Read { uri: path.display().to_string(), source };
        let mut file = std::fs::File::open(path).map_err(io_err)?;
        let mut parts = Vec::new();
        let mut buf = vec![0u8; self.part_size as usize];
        for number in 1.. {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 && number > 1 {
                break;
            }
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf[..filled].to_vec()))
                .send()
                .await
                .map_err(|e| storage_error(uri.to_string(), "UploadPart", &e))?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_string)).build());
            if filled < buf.len() {
                break;
            }
        }
        Ok(parts)
    }
}

impl Sink for S3Sink {
    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    fn put(&self, key: &str, body: Body<'_>, content_type: &str) -> Result<()> {
        let uri = self.uri(key);
        self.handle.block_on(async {
            let stream = match body {
                Body::Bytes(bytes) => ByteStream::from(bytes.to_vec()),
                Body::File(path) => {
                    let len = std::fs::metadata(path).map_err(|source| Error::Read { uri: uri.clone(), source })?.len();
                    if len >= self.multipart_threshold {
                        return self.put_multipart(key, path, content_type).await;
                    }
                    ByteStream::from_path(path).await.map_err(|e| Error::Read {
                        uri: path.display().to_string(),
                        source: io::Error::other(e.to_string()),
                    })?
                }
            };
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .content_type(content_type)
                .body(stream)
                .send()
                .await
                .map_err(|e| storage_error(uri.clone(), "PutObject", &e))?;
            Ok(())
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_tagged(key)?.map(|(bytes, _)| bytes))
    }

    fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        let uri = self.uri(key);
        self.handle.block_on(async {
            match self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
                Ok(out) => {
                    let etag = out.e_tag().unwrap_or_default().to_string();
                    let bytes = out.body.collect().await.map_err(|e| Error::Storage {
                        uri: uri.clone(),
                        message: format!("reading body: {e}"),
                        retryable: true,
                    })?;
                    Ok(Some((bytes.into_bytes().to_vec(), etag)))
                }
                Err(e) if is_missing(&e) => Ok(None),
                Err(e) if is_forbidden(e.raw_response()) && !self.listed(key).await? => Ok(None),
                Err(e) => Err(storage_error(uri.clone(), "GetObject", &e)),
            }
        })
    }

    fn head(&self, key: &str) -> Result<Option<Head>> {
        let uri = self.uri(key);
        self.handle.block_on(async {
            match self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
                Ok(out) => Ok(Some(Head {
                    etag: out.e_tag().unwrap_or_default().to_string(),
                    generation: out.metadata().and_then(|m| m.get(GENERATION)).and_then(|g| g.parse().ok()),
                })),
                Err(e)
                    if e.as_service_error().is_some_and(|se| se.is_not_found())
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
                {
                    Ok(None)
                }
                Err(e) if is_forbidden(e.raw_response()) && !self.listed(key).await? => Ok(None),
                Err(e) => Err(storage_error(uri.clone(), "HeadObject", &e)),
            }
        })
    }

    fn put_if(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        condition: &Condition,
        generation: Option<u64>,
    ) -> Result<bool> {
        let uri = self.uri(key);
        self.handle.block_on(async {
            let mut put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .content_type(content_type)
                .body(ByteStream::from(bytes.to_vec()));
            put = match condition {
                Condition::Absent => put.if_none_match("*"),
                Condition::Matches(etag) => put.if_match(etag),
            };
            if let Some(g) = generation {
                put = put.metadata(GENERATION, g.to_string());
            }
            match put.send().await {
                Ok(_) => Ok(true),
                // 412: the condition failed; 409: a concurrent conditional write of the key won.
                Err(e) if e.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) => Ok(false),
                Err(e) => Err(storage_error(uri.clone(), "PutObject (conditional)", &e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let uri = self.uri(prefix);
        self.handle.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full_key(prefix))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| storage_error(uri.clone(), "ListObjectsV2", &e))?;
                for object in page.contents() {
                    if let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                        keys.push(key.to_string());
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let uri = self.uri(key);
        self.handle.block_on(async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .send()
                .await
                .map_err(|e| storage_error(uri.clone(), "DeleteObject", &e))?;
            Ok(())
        })
    }
}

/// The user metadata (`x-amz-meta-generation`) a published table carries: the day manifest generation it
/// was computed from (see [`crate::output::publish`]).
const GENERATION: &str = "generation";

/// An S3 client from the standard AWS configuration (environment, profile, instance role). When a
/// custom endpoint is configured (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`), path-style addressing is
/// used, which every S3-compatible server understands.
pub async fn client_from_env() -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    let custom_endpoint =
        std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(custom_endpoint).build();
    Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris() {
        assert_eq!(S3Uri::parse("s3://b/k/x.csv"), Some(S3Uri { bucket: "b".into(), key: "k/x.csv".into() }));
        assert_eq!(S3Uri::parse("s3://b"), Some(S3Uri { bucket: "b".into(), key: "".into() }));
        assert_eq!(S3Uri::parse("s3:///k"), None);
        assert_eq!(S3Uri::parse("/tmp/x.csv"), None);
    }
}
