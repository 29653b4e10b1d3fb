//! Opening an input: local files, gzip detection and decoding while streaming, and what is known about the
//! source (URI, size, ETag, version) for the summary.
//!
//! Gzip is recognised by its magic bytes, not the file name, so a mislabelled file still works. Decoding
//! errors are tagged so the pipeline can tell a corrupt input (the file fails) from an I/O error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::read::decode::{transcoded, TextEncoding};

/// What the summary records about the source.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SourceInfo {
    pub uri: String,
    pub bytes: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// The S3 event's `sequencer` for this object (orders the versions of one key; null locally).
    #[serde(default)]
    pub sequencer: Option<String>,
}

/// An opened input: the raw byte stream (possibly gzip) and its description.
pub struct Input {
    pub reader: Box<dyn Read + Send>,
    pub info: SourceInfo,
}

/// Opens a local file.
pub fn open_local(path: &Path) -> Result<Input> {
    let read_err = |source| Error::Read { uri: path.display().to_string(), source };
    let file = File::open(path).map_err(read_err)?;
    let bytes = file.metadata().map_err(read_err)?.len();
    let abs = std::fs::canonicalize(path).map_err(read_err)?;
    let info =
        SourceInfo { uri: format!("file://{}", abs.display()), bytes, etag: None, version_id: None, sequencer: None };
    Ok(Input { reader: Box::new(file), info })
}

/// The marker inside an `io::Error` raised by the decompressor (the input is corrupt, not the disk).
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The input is in a form this program does not read (an `io::Error` of kind `Unsupported` carries it).
#[derive(Debug)]
pub enum Unsupported {
    /// Text in an encoding other than UTF-8 (named).
    Encoding(String),
    /// A compression format other than gzip (named).
    Compression(String),
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsupported::Encoding(e) => write!(f, "{e}"),
            Unsupported::Compression(c) => write!(f, "{c}"),
        }
    }
}

impl std::error::Error for Unsupported {}

/// Whether an I/O error says the input is in an unsupported form.
pub fn unsupported(e: &io::Error) -> Option<&Unsupported> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Unsupported>())
}

fn unsupported_error(u: Unsupported) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, u)
}

/// Compression formats recognised by their magic bytes but not decoded: (magic, name).
const OTHER_COMPRESSIONS: &[(&[u8], &str)] =
    &[(&[0x28, 0xb5, 0x2f, 0xfd], "zstd"), (b"BZh", "bzip2"), (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz")];

/// The encoding of a text's first bytes when it is UTF-16 or UTF-32 (by byte order mark, or by the NUL
/// bytes that ASCII characters have in those encodings), else `None`.
pub fn wide_encoding(head: &[u8]) -> Option<&'static str> {
    match head {
        [0xff, 0xfe, 0, 0, ..] => return Some("UTF-32LE (with byte order mark)"),
        [0, 0, 0xfe, 0xff, ..] => return Some("UTF-32BE (with byte order mark)"),
        [0xff, 0xfe, ..] => return Some("UTF-16LE (with byte order mark)"),
        [0xfe, 0xff, ..] => return Some("UTF-16BE (with byte order mark)"),
        _ => {}
    }
    let n = head.len().min(64) / 4 * 4;
    if n < 8 {
        return None;
    }
    let zero_at = |i: usize| (0..n).filter(|&j| j % 4 == i).all(|j| head[j] == 0);
    let nonzero_at = |i: usize| (0..n).filter(|&j| j % 4 == i).any(|j| head[j] != 0);
    match (zero_at(0), zero_at(1), zero_at(2), zero_at(3)) {
        (false, true, true, true) if nonzero_at(0) => Some("UTF-32LE (no byte order mark)"),
        (true, true, true, false) if nonzero_at(3) => Some("UTF-32BE (no byte order mark)"),
        (false, true, false, true) => Some("UTF-16LE (no byte order mark)"),
        (true, false, true, false) => Some("UTF-16BE (no byte order mark)"),
        _ => None,
    }
}

/// Whether an I/O error came from decoding the input rather than reading it.
pub fn decode_error(e: &io::Error) -> Option<&DecodeError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<DecodeError>())
}

struct TagDecodeErrors<R>(R);

impl<R: Read> Read for TagDecodeErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
                io::Error::new(io::ErrorKind::InvalidData, DecodeError(format!("gzip stream is corrupt: {e}")))
            }
            _ => e,
        })
    }
}

/// Read buffer size for the raw and decoded streams.
pub const BUF_SIZE: usize = 256 * 1024;

/// Wraps a raw input: gzip (by magic bytes, multi-member) is decoded on the fly, and a leading UTF-8 BOM of
/// the text is dropped.
///
/// Plain text is read straight from `reader` after the first block (the one looked at for the magic bytes):
/// behind a `BufReader` of [`BUF_SIZE`], the record reader's reads (a little under [`BUF_SIZE`], after the
/// unread end of the previous buffer) would never bypass it, and every byte would be copied a second time,
/// through the `BufReader`'s own buffer.
pub fn decoded(reader: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    decoded_as(reader, TextEncoding::Utf8)
}

/// [`decoded`] for text in `encoding`: after gzip decoding, the text is transcoded to UTF-8
/// ([`crate::read::decode::transcoded`]; its byte order mark, if any, decides and is dropped). With
/// [`TextEncoding::Utf8`] this is [`decoded`].
pub fn decoded_as(reader: Box<dyn Read + Send>, encoding: TextEncoding) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(BUF_SIZE, reader);
    let head = buffered.fill_buf()?;
    if let Some((_, name)) = OTHER_COMPRESSIONS.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(unsupported_error(Unsupported::Compression(format!(
            "{name} (recognised by its magic bytes); only gzip is decoded: recompress it with gzip or upload it plain"
        ))));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let decoder = flate2::bufread::MultiGzDecoder::new(buffered);
        skip_bom(transcoded(Box::new(TagDecodeErrors(decoder)), encoding))
    } else {
        let head = head.to_vec();
        skip_bom(transcoded(Box::new(io::Cursor::new(head).chain(buffered.into_inner())), encoding))
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads the text's first bytes: a UTF-16 or UTF-32 text fails as unsupported, a UTF-8 BOM is dropped.
fn skip_bom(mut reader: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut prefix = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    while prefix.len() < 64 {
        let n = reader.read(&mut chunk[..64 - prefix.len()])?;
        if n == 0 {
            break;
        }
        prefix.extend_from_slice(&chunk[..n]);
    }
    if let Some(encoding) = wide_encoding(&prefix) {
        return Err(unsupported_error(Unsupported::Encoding(format!(
            "{encoding}; save or export it as UTF-8 (the byte order mark is optional)"
        ))));
    }
    if prefix.starts_with(BOM) {
        prefix.drain(..BOM.len());
    }
    Ok(Box::new(io::Cursor::new(prefix).chain(reader)))
}

/// Buffers of decoded text kept between the reader thread and the parser.
pub const PREFETCH_BUFFERS: usize = 4;

/// Free room at the front of every prefetched buffer: the parser puts the unread end of its previous
/// buffer (the start of a line) there, so the new text follows it without being copied.
pub const HEADROOM: usize = 4096;

/// Moves reading (the system call's copy, an S3 body's channel) and gzip decoding of `reader` to a thread
/// of its own, so that they overlap with parsing on another core. The thread fills [`BUF_SIZE`] buffers
/// (after [`HEADROOM`] free bytes) and hands them over through a bounded channel ([`PREFETCH_BUFFERS`]
/// deep); the parser works in the handed-over buffer itself and sends its previous one back for reuse.
/// Memory stays at a few MiB and the thread waits when the parser lags. It stops at the end of the
/// stream, at the first error (which the parser then reads, [`DecodeError`] tag intact), or when the
/// reader is dropped.
pub fn prefetch(mut reader: Box<dyn Read + Send>) -> io::Result<PrefetchReader> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(PREFETCH_BUFFERS);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::Builder::new().name("input-reader".into()).spawn(move || loop {
        let mut buf = recycle_rx.try_recv().unwrap_or_default();
        buf.resize(HEADROOM + BUF_SIZE, 0);
        // A buffer the parser grew for a long record goes back to the usual size, so that long records
        // never leave several large buffers circulating.
        buf.shrink_to(HEADROOM + BUF_SIZE);
        let mut filled = HEADROOM;
        // Fill most of the buffer: decoders and sockets return small reads.
        let result = loop {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled >= HEADROOM + BUF_SIZE / 2 {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let done = filled == HEADROOM || result.is_err();
        // A buffer without text is the end marker: the parser tells a finished stream from a thread that died.
        if (filled > HEADROOM || result.is_ok()) && tx.send(Ok(buf)).is_err() {
            return;
        }
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
        if done {
            return;
        }
    })?;
    Ok(PrefetchReader { rx, recycle: recycle_tx, failed: false, ended: false })
}

/// The parser's end of [`prefetch`].
pub struct PrefetchReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: std::sync::mpsc::Sender<Vec<u8>>,
    failed: bool,
    ended: bool,
}

impl PrefetchReader {
    /// The next buffer from the thread (text from [`HEADROOM`] on), or `None` at the end of the stream.
    fn next_buffer(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.failed {
            return Err(io::Error::other("the input stream failed earlier"));
        }
        if self.ended {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(next)) if next.len() == HEADROOM => {
                self.ended = true;
                Ok(None)
            }
            Ok(Ok(next)) => Ok(Some(next)),
            Ok(Err(e)) => {
                self.failed = true;
                Err(e)
            }
            // No end marker: the thread died (a panic), which must not look like a complete input.
            Err(_) => {
                self.failed = true;
                Err(io::Error::other("the input reader thread stopped before the end of the stream"))
            }
        }
    }
}

impl crate::read::records::Refill for PrefetchReader {
    fn refill(&mut self, buf: &mut Vec<u8>, keep: std::ops::Range<usize>) -> io::Result<std::ops::Range<usize>> {
        let Some(mut next) = self.next_buffer()? else { return Ok(keep) };
        let kept = keep.len();
        if kept <= HEADROOM {
            // The usual case: the unread part (a line's start) goes into the headroom, and the parser
            // continues in the thread's buffer.
            next[HEADROOM - kept..HEADROOM].copy_from_slice(&buf[keep]);
            let _ = self.recycle.send(std::mem::replace(buf, next));
            Ok(HEADROOM - kept..buf.len())
        } else {
            // A record longer than the headroom: append the new text to it, in the parser's buffer.
            buf.copy_within(keep, 0);
            buf.truncate(kept);
            buf.extend_from_slice(&next[HEADROOM..]);
            let _ = self.recycle.send(next);
            Ok(0..buf.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_encodings_are_told_apart_from_utf8_and_binary() {
        let text = "event_time,order_id,sku\n";
        let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let utf32le: Vec<u8> = text.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
        let utf32be: Vec<u8> = text.chars().flat_map(|c| (c as u32).to_be_bytes()).collect();
        assert_eq!(wide_encoding(&utf16le), Some("UTF-16LE (no byte order mark)"));
        assert_eq!(wide_encoding(&utf16be), Some("UTF-16BE (no byte order mark)"));
        assert_eq!(wide_encoding(&utf32le), Some("UTF-32LE (no byte order mark)"));
        assert_eq!(wide_encoding(&utf32be), Some("UTF-32BE (no byte order mark)"));
        assert_eq!(wide_encoding(&[&[0xff, 0xfe][..], &utf16le].concat()), Some("UTF-16LE (with byte order mark)"));
        assert_eq!(wide_encoding(&[&[0xfe, 0xff][..], &utf16be].concat()), Some("UTF-16BE (with byte order mark)"));
        assert_eq!(wide_encoding(text.as_bytes()), None);
        assert_eq!(wide_encoding("\u{feff}événement,x\n".as_bytes()), None, "UTF-8 with its BOM");
        assert_eq!(wide_encoding(b"ab"), None, "too short to tell");
        assert_eq!(wide_encoding(&[0u8; 64]), None, "all NUL is binary, not text");
    }
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_and_multimember() {
        let mut out = String::new();
        decoded(Box::new(io::Cursor::new(b"a,b\n1,2\n".to_vec()))).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "a,b\n1,2\n");

        let mut two = gzip(b"a,b\n");
        two.extend(gzip(b"1,2\n"));
        let mut out = String::new();
        decoded(Box::new(io::Cursor::new(two))).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "a,b\n1,2\n");

        for (input, want) in
            [(&b"\xEF\xBB\xBFa,b\n"[..], "a,b\n"), (b"\xEF\xBBa", "\u{FFFD}a"), (b"ab", "ab"), (b"", "")]
        {
            let mut out = Vec::new();
            decoded(Box::new(io::Cursor::new(input.to_vec()))).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(String::from_utf8_lossy(&out), want, "case {input:?}");
        }
    }

    /// Everything a prefetch delivers, taken as the record reader does: each time keeping an unread tail of
    /// `keep(round)` bytes (so both the headroom and the long-record path run), until the end or an error.
    fn drain(reader: &mut PrefetchReader, keep: impl Fn(usize) -> usize) -> (Vec<u8>, io::Result<()>) {
        use crate::read::records::Refill;
        let (mut buf, mut text, mut out) = (Vec::new(), 0..0, Vec::new());
        for round in 0.. {
            let tail = keep(round).min(text.len());
            out.extend_from_slice(&buf[text.start..text.end - tail]);
            let keep = text.end - tail..text.end;
            let kept = buf[keep.clone()].to_vec();
            text = match reader.refill(&mut buf, keep) {
                Ok(text) => text,
                Err(e) => return (out, Err(e)),
            };
            assert_eq!(&buf[text.start..text.start + tail], &kept[..], "the unread tail comes first");
            if text.start > 0 && text.len() > tail {
                // A buffer straight from the thread: one the parser grew earlier came back to the usual size.
                assert!(buf.capacity() <= HEADROOM + BUF_SIZE, "a grown buffer circulates: {}", buf.capacity());
            }
            if text.len() == tail {
                out.extend_from_slice(&kept);
                return (out, Ok(()));
            }
        }
        unreachable!()
    }

    #[test]
    fn prefetch_delivers_every_byte_then_the_error() {
        let data: Vec<u8> = (0..20 * BUF_SIZE + 17).map(|i| (i % 251) as u8).collect();
        // Tails that always fit the headroom, never do, vary, or alternate (a long record grows the parser's
        // buffer, then a short one sends it back to the thread).
        let tails: [fn(usize) -> usize; 6] = [
            |_| 0,
            |_| 100,
            |_| HEADROOM,
            |_| HEADROOM + 1,
            |round| round * 50_000 % (BUF_SIZE + 7),
            |round| if round % 2 == 0 { 10 } else { BUF_SIZE / 2 + round },
        ];
        for keep in tails {
            let (out, result) = drain(&mut prefetch(Box::new(io::Cursor::new(data.clone()))).unwrap(), keep);
            result.unwrap();
            assert!(out == data, "every byte once, in order");
        }

        let mut corrupt = gzip(&b"a,b\n1,2\n".repeat(100_000));
        corrupt.truncate(corrupt.len() / 2);
        let mut reader = prefetch(decoded(Box::new(io::Cursor::new(corrupt))).unwrap()).unwrap();
        let (out, result) = drain(&mut reader, |_| 3);
        let err = result.unwrap_err();
        assert!(decode_error(&err).is_some(), "the tag survives the thread: {err:?}");
        assert!(out.starts_with(b"a,b\n1,2\n"), "text before the damage is delivered");
        let again = crate::read::records::Refill::refill(&mut reader, &mut Vec::new(), 0..0);
        assert!(again.is_err(), "a failed stream does not look like a clean end");

        struct Panics;
        impl Read for Panics {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("a reader that dies (test)")
            }
        }
        let err = drain(&mut prefetch(Box::new(Panics)).unwrap(), |_| 0).1.unwrap_err();
        assert!(err.to_string().contains("stopped before the end"), "{err}");
    }

    #[test]
    fn plain_text_is_read_straight_from_the_source() {
        /// A source that records the size of every read asked of it.
        struct Sizes(io::Cursor<Vec<u8>>, std::sync::Arc<std::sync::Mutex<Vec<usize>>>);
        impl Read for Sizes {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1.lock().unwrap().push(buf.len());
                self.0.read(buf)
            }
        }
        let data: Vec<u8> = (0..3 * BUF_SIZE).map(|i| b'a' + (i % 26) as u8).collect();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = decoded(Box::new(Sizes(io::Cursor::new(data.clone()), asked.clone()))).unwrap();
        let (mut out, mut buf) = (Vec::new(), vec![0u8; 100_000]);
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert!(out == data, "every byte once, in order");
        let asked = asked.lock().unwrap();
        assert_eq!(asked[0], BUF_SIZE, "the first block, for the magic bytes");
        assert!(asked[1..].iter().all(|&n| n == buf.len()), "then the caller's reads go to the source: {asked:?}");
    }

    #[test]
    fn other_encodings_are_transcoded_after_gzip() {
        let text = "event_time,sku,name\r\n2026-11-22T13:05:09Z,A1,café € ü\n";
        let utf16le: Vec<u8> = [0xFEFF].into_iter().chain(text.encode_utf16()).flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = [0xFEFF].into_iter().chain(text.encode_utf16()).flat_map(u16::to_be_bytes).collect();
        let cp1252 = b"event_time,sku,name\r\n2026-11-22T13:05:09Z,A1,caf\xE9 \x80 \xFC\n".to_vec();
        for (bytes, encoding) in
            [(utf16le, TextEncoding::Utf16), (utf16be, TextEncoding::Utf16), (cp1252, TextEncoding::Windows1252)]
        {
            for input in [bytes.clone(), gzip(&bytes)] {
                let mut out = String::new();
                decoded_as(Box::new(io::Cursor::new(input)), encoding).unwrap().read_to_string(&mut out).unwrap();
                assert_eq!(out, text, "{encoding:?}");
            }
            // As UTF-8 (the default), UTF-16 is still refused and Windows-1252 is read byte for byte.
            match decoded_as(Box::new(io::Cursor::new(bytes.clone())), TextEncoding::Utf8) {
                Err(e) => assert!(matches!(unsupported(&e), Some(Unsupported::Encoding(_))), "{e}"),
                Ok(mut reader) => {
                    let mut out = Vec::new();
                    reader.read_to_end(&mut out).unwrap();
                    assert_eq!(out, bytes);
                }
            }
        }
        // A UTF-16 file without BOM declared as Windows-1252 is refused as before (its NUL bytes).
        let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let err = decoded_as(Box::new(io::Cursor::new(bare)), TextEncoding::Windows1252).err().expect("refused");
        assert!(matches!(unsupported(&err), Some(Unsupported::Encoding(_))), "{err}");
        // The text reaches the record reader as UTF-8 records.
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let with_bom = [&[0xFE, 0xFF][..], &bytes].concat();
        let reader = decoded_as(Box::new(io::Cursor::new(gzip(&with_bom))), TextEncoding::Utf16).unwrap();
        let mut records = crate::read::records::RecordReader::new(reader, 1 << 20);
        records.read().unwrap().expect("the header");
        let (line, record) = records.read().unwrap().expect("a row");
        assert_eq!((line, record.get(2), record.is_utf8()), (2, "café € ü".as_bytes(), true));
    }

    #[test]
    fn corrupt_gzip_is_tagged() {
        let mut data = gzip(&b"a,b\n1,2\n".repeat(1000));
        let n = data.len();
        data.truncate(n / 2);
        let mut out = Vec::new();
        let err = decoded(Box::new(io::Cursor::new(data))).unwrap().read_to_end(&mut out).unwrap_err();
        assert!(decode_error(&err).is_some(), "{err:?}");
    }
}
