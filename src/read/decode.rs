//! Transcoding an export's text to UTF-8 while streaming, for exports saved as Windows-1252 or UTF-16.
//!
//! The record reader and the contract read UTF-8. [`transcoded`] wraps the decompressed byte stream in a
//! [`Transcoder`] that decodes it with `encoding_rs` through fixed buffers ([`TRANSCODE_BUF`]), so memory
//! stays bounded whatever the file's size; UTF-8 input is passed through untouched.

use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult};

/// The encoding of an export's text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8, with or without a byte order mark (the default; read as is).
    #[default]
    Utf8,
    /// Windows-1252 (also named for ISO-8859-1, which it extends, as in browsers).
    Windows1252,
    /// UTF-16: little-endian unless a byte order mark says big-endian.
    Utf16,
}

impl TextEncoding {
    pub const ALL: [TextEncoding; 3] = [TextEncoding::Utf8, TextEncoding::Windows1252, TextEncoding::Utf16];

    /// The name written in a config file (`[input].encoding`).
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Windows1252 => "windows-1252",
            TextEncoding::Utf16 => "utf-16",
        }
    }
}

/// Size of the [`Transcoder`]'s input buffer (and of its output buffer, used only for reads of a few
/// bytes).
pub const TRANSCODE_BUF: usize = 64 * 1024;

/// Reads smaller than this decode into the transcoder's own buffer (a character takes up to 4 bytes of
/// UTF-8); larger ones decode straight into the caller's buffer.
const MIN_DIRECT: usize = 16;

/// `reader`'s text as UTF-8: unchanged for [`TextEncoding::Utf8`], else through a [`Transcoder`].
pub fn transcoded(reader: Box<dyn Read + Send>, encoding: TextEncoding) -> Box<dyn Read + Send> {
    match encoding {
        TextEncoding::Utf8 => reader,
        TextEncoding::Windows1252 => Box::new(Transcoder::new(reader, encoding_rs::WINDOWS_1252.new_decoder())),
        TextEncoding::Utf16 => Box::new(Transcoder::new(reader, encoding_rs::UTF_16LE.new_decoder())),
    }
}

/// A [`Read`] of the UTF-8 form of another reader's text, decoded by an `encoding_rs` [`Decoder`] in
/// bounded memory. Characters split across the inner reads are joined.
///
/// The decoders of [`transcoded`] sniff a byte order mark: a UTF-8, UTF-16LE or UTF-16BE BOM decides the
/// encoding whatever was configured, and is dropped. A malformed sequence (an unpaired UTF-16 surrogate, a
/// lone byte at the end) becomes the byte `0xFF`, which is never valid UTF-8: the record holding it is
/// rejected as not UTF-8, as it would be in a UTF-8 file.
pub struct Transcoder<R> {
    inner: R,
    decoder: Decoder,
    /// Undecoded bytes: `input[in_pos..in_end]`.
    input: Box<[u8]>,
    in_pos: usize,
    in_end: usize,
    /// Decoded text not yet returned: `output[out_pos..out_end]` (empty until a small read needs it).
    output: Vec<u8>,
    out_pos: usize,
    out_end: usize,
    /// `inner` has ended.
    eof: bool,
    /// A malformed sequence's `0xFF` comes next, after the text in `output`.
    malformed: bool,
    /// The decoder has finished the stream (it must not be called again).
    done: bool,
}

impl<R: Read> Transcoder<R> {
    pub fn new(inner: R, decoder: Decoder) -> Self {
        Transcoder {
            inner,
            decoder,
            input: vec![0; TRANSCODE_BUF].into_boxed_slice(),
            in_pos: 0,
            in_end: 0,
            output: Vec::new(),
            out_pos: 0,
            out_end: 0,
            eof: false,
            malformed: false,
            done: false,
        }
    }

    /// Decodes what is buffered (reading more first when nothing is) into `dst`; returns the bytes written,
    /// which may be 0 (a BOM consumed, a character still incomplete).
    fn decode_into(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if self.in_pos == self.in_end && !self.eof {
            let n = loop {
                match self.inner.read(&mut self.input) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            (self.in_pos, self.in_end, self.eof) = (0, n, n == 0);
        }
        let (result, read, written) =
            self.decoder.decode_to_utf8_without_replacement(&self.input[self.in_pos..self.in_end], dst, self.eof);
        self.in_pos += read;
        match result {
            DecoderResult::Malformed(..) => self.malformed = true,
            DecoderResult::InputEmpty if self.eof => self.done = true,
            DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
        }
        Ok(written)
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_pos < self.out_end {
                let n = buf.len().min(self.out_end - self.out_pos);
                buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.malformed {
                self.malformed = false;
                buf[0] = 0xFF;
                return Ok(1);
            }
            if self.done {
                return Ok(0);
            }
            if buf.len() >= MIN_DIRECT {
                let n = self.decode_into(buf)?;
                if n > 0 {
                    return Ok(n);
                }
            } else {
                let mut output = std::mem::take(&mut self.output);
                output.resize(TRANSCODE_BUF, 0);
                let n = self.decode_into(&mut output);
                self.output = output;
                (self.out_pos, self.out_end) = (0, n?);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that returns at most `step` bytes per read.
    struct Trickle(io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    /// Everything `encoding` makes of `bytes`, the source giving `source_step` bytes per read and the
    /// caller asking for `read_size` bytes per read.
    fn decode(bytes: &[u8], encoding: TextEncoding, source_step: usize, read_size: usize) -> Vec<u8> {
        let mut reader = transcoded(Box::new(Trickle(io::Cursor::new(bytes.to_vec()), source_step)), encoding);
        let (mut out, mut buf) = (Vec::new(), vec![0u8; read_size]);
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Every combination of tiny and large reads, on both sides.
    fn each_read_size(bytes: &[u8], encoding: TextEncoding, want: &[u8]) {
        for source_step in [1, 2, 3, 7, TRANSCODE_BUF + 5] {
            for read_size in [1, 2, 3, 5, MIN_DIRECT, 100, 256 * 1024] {
                let got = decode(bytes, encoding, source_step, read_size);
                assert!(
                    got == want,
                    "{encoding:?}, source reads of {source_step}, reads of {read_size}: {:?}",
                    String::from_utf8_lossy(&got[..got.len().min(200)])
                );
            }
        }
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let units = bom.then_some(0xFEFF).into_iter().chain(text.encode_utf16());
        units.flat_map(|u| if big_endian { u.to_be_bytes() } else { u.to_le_bytes() }).collect()
    }

    #[test]
    fn encodings_by_name() {
        assert_eq!(TextEncoding::ALL.map(TextEncoding::name), ["utf-8", "windows-1252", "utf-16"]);
        assert_eq!(TextEncoding::default(), TextEncoding::Utf8);
    }

    #[test]
    fn windows_1252_becomes_utf8() {
        let bytes = b"sku,name,price\r\nA1,caf\xE9 \x80,M\xFCller\r\n\"x\xE9\",\x80\x80,\xFC\n";
        let want = "sku,name,price\r\nA1,café €,Müller\r\n\"xé\",€€,ü\n";
        each_read_size(bytes, TextEncoding::Windows1252, want.as_bytes());
        // Every byte maps to a character: all 256 in a row, then a stream longer than the buffers.
        let all: Vec<u8> = (0..=255u8).collect();
        let (text, _, had_errors) = encoding_rs::WINDOWS_1252.decode(&all);
        assert!(!had_errors);
        let long: Vec<u8> = all.iter().copied().cycle().take(3 * TRANSCODE_BUF + 11).collect();
        let long_want: String = text.chars().cycle().take(long.len()).collect();
        assert_eq!(decode(&long, TextEncoding::Windows1252, 4093, 256 * 1024), long_want.as_bytes());
        assert_eq!(decode(&long, TextEncoding::Windows1252, TRANSCODE_BUF, 3), long_want.as_bytes());
        // UTF-8 passes through untouched, invalid bytes included.
        each_read_size(bytes, TextEncoding::Utf8, bytes);
    }

    #[test]
    fn utf16_with_and_without_bom_becomes_utf8() {
        // A character of every UTF-8 length, and one that takes two UTF-16 units (split across reads too).
        let text = "event_time,sku,name\r\n2026-11-22T13:05:09Z,A1,café € 😀 ü\n\"a,b\",日本,x\n";
        each_read_size(&utf16(text, false, true), TextEncoding::Utf16, text.as_bytes());
        each_read_size(&utf16(text, true, true), TextEncoding::Utf16, text.as_bytes());
        each_read_size(&utf16(text, false, false), TextEncoding::Utf16, text.as_bytes());
        // A BOM decides even when another encoding was configured.
        each_read_size(&utf16(text, true, true), TextEncoding::Windows1252, text.as_bytes());
        let utf8_with_bom = [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat();
        each_read_size(&utf8_with_bom, TextEncoding::Windows1252, text.as_bytes());
        each_read_size(&utf8_with_bom, TextEncoding::Utf16, text.as_bytes());
        let long = text.repeat(3 * TRANSCODE_BUF / text.len());
        assert_eq!(decode(&utf16(&long, true, true), TextEncoding::Utf16, 4093, 256 * 1024), long.as_bytes());
        assert_eq!(decode(&utf16(&long, false, false), TextEncoding::Utf16, 7, 100), long.as_bytes());
        assert_eq!(decode(b"", TextEncoding::Utf16, 1, 100), b"");
        assert_eq!(decode(b"\xFF\xFE", TextEncoding::Utf16, 1, 100), b"");
    }

    #[test]
    fn malformed_utf16_becomes_a_byte_that_is_never_utf8() {
        // A lone high surrogate before `b`, a lone low surrogate, and an odd byte at the end.
        let mut bytes: Vec<u8> =
            [0xFEFF, 'a' as u16, 0xD83D, 'b' as u16, 0xDE00, 'c' as u16].iter().flat_map(|u| u.to_le_bytes()).collect();
        bytes.push(b'd');
        each_read_size(&bytes, TextEncoding::Utf16, b"a\xFFb\xFFc\xFF");
    }

    #[test]
    fn errors_of_the_source_come_through() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[0] = b'a';
                Ok(1)
            }
        }
        let mut reader = transcoded(Box::new(Fails(3)), TextEncoding::Windows1252);
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(out, b"aaa");
    }
}
