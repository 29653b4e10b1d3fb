//! Splitting the decoded text into CSV records, each with the line it starts on.
//!
//! Most lines of an export have no quotes, or only simple quoted fields (`"home, garden"`); [`RecordReader`]
//! splits those on the delimiter directly (one pass over the buffer), which is cheaper than a general CSV
//! state machine (docs/benchmarks.md). Any other quote (a doubled quote, a line break inside quotes, a
//! quote that does not open a field, text after a closing quote) sends the record through `csv_core`, the
//! state machine of the `csv` crate, so those keep the standard semantics. Either way the result is the
//! same as the `csv` crate's flexible reader with the same delimiter: line breaks are `\n`, `\r\n` or a
//! lone `\r`, blank lines are skipped, and records may have any number of fields. The delimiter is a comma
//! unless the reader is made with [`RecordReader::with_delimiter`].
//!
//! Line numbers are exact: the header is line 1, blank lines and line breaks inside quoted fields count.
//! A record longer than the configured maximum (an unclosed quote, binary data without line breaks)
//! fails with a [`DecodeError`] naming its first line, so memory stays bounded.

use std::io::{self, Read};

use csv::ByteRecord;
use csv_core::ReadRecordResult;

/// One record, borrowed from the reader until its next read: the text its fields are in, and where each
/// field lies in it. Unquoted lines are not copied at all.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    text: &'a [u8],
    spans: &'a [(usize, usize)],
    /// Whether an ASCII separator stands between every two fields in `text`.
    separated: bool,
    /// Whether `text` is known to be ASCII (so valid UTF-8) without looking at it again.
    ascii: bool,
}

impl<'a> Record<'a> {
    /// Fields that lie back to back in `text` (or anywhere: `spans` says where).
    pub fn new(text: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Record { text, spans, separated: false, ascii: false }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Field `i` (empty when there is no such field).
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.spans.get(i).map_or(&[][..], |&(from, to)| &self.text[from..to])
    }

    /// Where field `i` lies in [`Record::text`] (an empty span when there is no such field).
    #[inline(always)]
    pub fn span(&self, i: usize) -> (usize, usize) {
        self.spans.get(i).copied().unwrap_or((0, 0))
    }

    /// The text holding every field: for a record split by the one-pass scan, the line itself (fields with
    /// the delimiters, and the quotes of simple quoted fields, between them); for one parsed by csv_core, the
    /// fields back to back.
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    /// Whether every field is valid UTF-8. Fields joined without separators are not enough: the end of one
    /// field and the start of the next could together form a character.
    #[inline(always)]
    pub fn is_utf8(&self) -> bool {
        self.ascii || self.is_utf8_checked()
    }

    #[inline(never)]
    fn is_utf8_checked(&self) -> bool {
        if self.text.is_ascii() {
            return true;
        }
        match std::str::from_utf8(self.text) {
            Err(_) => false,
            Ok(_) if self.separated => true,
            Ok(_) => self.iter().all(|f| std::str::from_utf8(f).is_ok()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The fields as an owned `csv::ByteRecord` (for the rejects file and the header).
    pub fn to_byte_record(&self) -> ByteRecord {
        self.iter().collect()
    }
}

/// Fields owned together, for building records in tests and tools.
#[derive(Clone, Debug, Default)]
pub struct OwnedRecord {
    text: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl OwnedRecord {
    pub fn from_fields(fields: &[&[u8]]) -> Self {
        let mut owned = OwnedRecord::default();
        for field in fields {
            let from = owned.text.len();
            owned.text.extend_from_slice(field);
            owned.spans.push((from, owned.text.len()));
        }
        owned
    }

    pub fn view(&self) -> Record<'_> {
        Record::new(&self.text, &self.spans)
    }
}

use crate::read::input::{DecodeError, BUF_SIZE};

/// Where a [`RecordReader`] gets more text. Any [`Read`] copies into the reader's buffer;
/// [`crate::read::input::PrefetchReader`] instead hands over the buffer its thread filled, so the text is not
/// copied again on the parsing thread.
pub trait Refill {
    /// Makes `buf` hold the unread text `buf[keep]` followed by more text, and returns where both now are.
    /// `buf` may be replaced. A returned range no longer than `keep` means the end of the stream.
    fn refill(&mut self, buf: &mut Vec<u8>, keep: std::ops::Range<usize>) -> io::Result<std::ops::Range<usize>>;
}

impl<R: Read> Refill for R {
    fn refill(&mut self, buf: &mut Vec<u8>, keep: std::ops::Range<usize>) -> io::Result<std::ops::Range<usize>> {
        let kept = keep.len();
        buf.copy_within(keep, 0);
        if kept == buf.len() {
            // The unread text fills the buffer (a long line): grow it.
            buf.resize((buf.len() * 2).max(BUF_SIZE), 0);
        }
        loop {
            match self.read(&mut buf[kept..]) {
                Ok(n) => return Ok(0..kept + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The byte between the fields of a record: a comma by default. Any ASCII punctuation except the quote
/// (`,` `;` `|` `:` …) or a tab; never a letter, digit, space, quote or line break, which would make the
/// quoting and trimming rules ambiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiter(u8);

impl Delimiter {
    pub const COMMA: Delimiter = Delimiter(b',');
    pub const SEMICOLON: Delimiter = Delimiter(b';');
    pub const TAB: Delimiter = Delimiter(b'\t');
    pub const PIPE: Delimiter = Delimiter(b'|');

    /// The delimiter `byte`, or why it cannot be one.
    pub fn new(byte: u8) -> Result<Self, String> {
        if byte == b'\t' || (byte.is_ascii_punctuation() && byte != b'"') {
            Ok(Delimiter(byte))
        } else {
            Err(format!(
                "{:?} cannot be the delimiter: use one ASCII punctuation character other than '\"' (such as , ; |) \
                 or a tab",
                char::from(byte)
            ))
        }
    }

    /// The byte.
    pub fn byte(self) -> u8 {
        self.0
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Delimiter::COMMA
    }
}

pub struct RecordReader<R> {
    inner: R,
    /// The field delimiter's byte ([`Delimiter`]).
    delimiter: u8,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Line of `buf[pos]`, and whether the byte before it was a `\r` (so a `\n` there ends no line).
    line: u64,
    after_cr: bool,
    /// Stream offset of `buf[pos]`.
    offset: u64,
    max_record_bytes: u64,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// The last record's fields: `spans[..fields]`. `spans` has room for one more than [`MAX_FIELDS`], so
    /// [`scan_line`] writes a field with a bounds check and a store, its count in a register, where a vector
    /// push would load its capacity and store its length for every field.
    spans: Vec<(usize, usize)>,
    fields: usize,
    /// Where the last record's text is: in `buf` (an unquoted line) or in `out` (parsed by csv_core).
    last: (usize, usize, bool),
    /// `buf[pos..ascii_end]` is known to be ASCII: one check per buffer instead of one per line.
    ascii_end: usize,
}

impl<R: Refill> RecordReader<R> {
    /// A reader of comma-separated records; a record longer than `max_record_bytes` fails the stream.
    pub fn new(inner: R, max_record_bytes: u64) -> Self {
        Self::with_delimiter(inner, max_record_bytes, Delimiter::COMMA)
    }

    /// A reader of records whose fields are separated by `delimiter`.
    pub fn with_delimiter(inner: R, max_record_bytes: u64, delimiter: Delimiter) -> Self {
        RecordReader {
            inner,
            delimiter: delimiter.0,
            buf: vec![0; BUF_SIZE],
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            after_cr: false,
            offset: 0,
            max_record_bytes,
            core: primed_core(delimiter.0),
            out: vec![0; 4096],
            ends: vec![0; 64],
            spans: vec![(0, 0); MAX_FIELDS + 1],
            fields: 0,
            last: (0, 0, false),
            ascii_end: 0,
        }
    }

    /// Bytes of the text consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next record; returns the line it starts on and the record, or `None` at the end.
    pub fn read(&mut self) -> io::Result<Option<(u64, Record<'_>)>> {
        Ok(self.next_record()?.map(|line| (line, self.record())))
    }

    /// Reads the next record, which [`RecordReader::record`] then gives; returns the line it starts on, or
    /// `None` at the end. The hot loop uses this pair rather than [`RecordReader::read`]: a record returned
    /// inside an `io::Result<Option<..>>` goes through memory, written in parts and read back whole, which
    /// stalls store forwarding on every row (docs/benchmarks.md).
    pub fn next_record(&mut self) -> io::Result<Option<u64>> {
        // Blank lines (and the `\n` of a `\r\n` that ended the previous record) are skipped.
        loop {
            if self.pos == self.end && !self.fill()? {
                return Ok(None);
            }
            match self.buf[self.pos] {
                b'\n' | b'\r' => self.advance(1),
                _ => break,
            }
        }
        let (line, start) = (self.line, self.offset);
        loop {
            let text = &self.buf[self.pos..self.end];
            let (scan, fields) = scan_line(text, &mut self.spans, self.delimiter);
            self.fields = fields;
            match scan {
                Scan::Plain(eol) if eol.is_some() || self.eof => {
                    let len = eol.unwrap_or(text.len());
                    self.last = (self.pos, self.pos + len, false);
                    match eol {
                        // One line, one break: no need to scan it again for line breaks.
                        Some(at) => {
                            self.line += 1;
                            self.after_cr = text[at] == b'\r';
                            self.pos += at + 1;
                            self.offset += at as u64 + 1;
                        }
                        None => self.advance(len),
                    }
                    break;
                }
                // The line continues past the buffer: read more (growing it for long lines).
                Scan::Plain(_) => {
                    self.check_size(start, line, (self.end - self.pos) as u64)?;
                    self.fill()?;
                }
                Scan::Quoted => {
                    self.read_quoted(line, start)?;
                    break;
                }
            }
        }
        if self.fields > MAX_FIELDS {
            return Err(self.corrupt(format!("the record at line {line} has more than {MAX_FIELDS} fields")));
        }
        let (from, to, quoted) = self.last;
        if !quoted && to > self.ascii_end {
            // Extend the known ASCII run; it stops at a non-ASCII byte until the lines pass it.
            let known = self.ascii_end.max(from);
            self.ascii_end = known + ascii_prefix(&self.buf[known..self.end]);
        }
        Ok(Some(line))
    }

    /// The record [`RecordReader::next_record`] read last.
    #[inline(always)]
    pub fn record(&self) -> Record<'_> {
        let (from, to, quoted) = self.last;
        let spans = &self.spans[..self.fields];
        if quoted {
            Record { text: &self.out[from..to], spans, separated: false, ascii: false }
        } else {
            Record { text: &self.buf[from..to], spans, separated: true, ascii: to <= self.ascii_end }
        }
    }

    /// A record with a quote: parsed by `csv_core`, which may consume it across several buffers.
    fn read_quoted(&mut self, line: u64, start: u64) -> io::Result<()> {
        let (mut nout, mut nends) = (0, 0);
        loop {
            let input = &self.buf[self.pos..self.end];
            let (result, nin, o, e) = self.core.read_record(input, &mut self.out[nout..], &mut self.ends[nends..]);
            nout += o;
            nends += e;
            self.advance(nin);
            match result {
                ReadRecordResult::InputEmpty => {
                    self.check_size(start, line, self.offset - start)?;
                    if self.pos == self.end {
                        self.fill()?;
                    }
                }
                ReadRecordResult::OutputFull => {
                    self.check_size(start, line, self.out.len() as u64)?;
                    self.out.resize(self.out.len() * 2, 0);
                }
                ReadRecordResult::OutputEndsFull if self.ends.len() > MAX_FIELDS => {
                    return Err(self.corrupt(format!("the record at line {line} has more than {MAX_FIELDS} fields")));
                }
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        // More than MAX_FIELDS ends: the first MAX_FIELDS + 1 are kept, and the caller fails the record.
        self.fields = nends.min(self.spans.len());
        let mut from = 0;
        for (span, &to) in self.spans.iter_mut().zip(&self.ends[..nends]) {
            *span = (from, to);
            from = to;
        }
        self.last = (0, nout, true);
        Ok(())
    }

    /// Moves `n` bytes past `pos`, counting the line breaks among them (`\r\n` is one).
    fn advance(&mut self, n: usize) {
        let bytes = &self.buf[self.pos..self.pos + n];
        for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
            let after_cr = if at > 0 { bytes[at - 1] == b'\r' } else { self.after_cr };
            if bytes[at] == b'\r' || !after_cr {
                self.line += 1;
            }
        }
        if let Some(&last) = bytes.last() {
            self.after_cr = last == b'\r';
        }
        self.pos += n;
        self.offset += n as u64;
    }

    fn check_size(&self, start: u64, line: u64, size: u64) -> io::Result<()> {
        if size.max(self.offset - start) <= self.max_record_bytes {
            return Ok(());
        }
        Err(self.corrupt(format!(
            "the record starting at line {line} is larger than {} MiB (an unclosed quote, or binary data?)",
            self.max_record_bytes >> 20
        )))
    }

    /// An error that fails the file as corrupt input.
    fn corrupt(&self, message: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, DecodeError(message))
    }

    /// Gets more text after what is unread ([`Refill`]: the unread part moves to the front of this buffer or
    /// of a handed-over one). Returns false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let kept = self.end - self.pos;
        let ascii_kept = self.ascii_end.saturating_sub(self.pos);
        let text = self.inner.refill(&mut self.buf, self.pos..self.end)?;
        debug_assert!(text.len() >= kept && text.end <= self.buf.len());
        (self.pos, self.end, self.ascii_end) = (text.start, text.end, text.start + ascii_kept);
        if text.len() == kept {
            self.eof = true;
            return Ok(kept > 0);
        }
        Ok(true)
    }
}

/// A `csv_core` reader past its first record. csv_core drops a UTF-8 BOM at the start of its first input
/// ever, and this reader calls it first at whatever line has the first quote: the leading BOM is already
/// gone (`input::decoded`), and a BOM further down must stay data, as in the `csv` crate.
fn primed_core(delimiter: u8) -> csv_core::Reader {
    let mut core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let (mut out, mut ends) = ([0u8; 8], [0usize; 4]);
    let (result, ..) = core.read_record(b"x\n", &mut out, &mut ends);
    debug_assert_eq!(result, ReadRecordResult::Record);
    core
}

/// Fields a record may have. More means the file is not an orders export; without a bound, a 32 MiB line of
/// delimiters would take gigabytes of field positions.
pub const MAX_FIELDS: usize = 65_536;

/// What [`scan_line`] found at the start of the text.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A line without quotes or with only simple quoted fields, split into fields; the position of its line
    /// break, if the text has one.
    Plain(Option<usize>),
    /// Any other quote before the end of the line: the record is left to csv_core.
    Quoted,
}

/// The byte classes the splitter looks for, a block of text at a time: masks of the bytes that are a line
/// break (`\n`, `\r`), a quote and the delimiter (called the comma here, its default). A byte at index `i` of the block sets bit `i * STRIDE` (and
/// only that bit) of a mask, so `trailing_zeros() / STRIDE` is the first one's index and `m & (m - 1)`
/// drops it.
mod classes {
    /// SSE2 (part of x86_64): compare 16 bytes at once, one mask bit per byte.
    #[cfg(target_arch = "x86_64")]
    mod arch {
        use std::arch::x86_64::*;
        pub const BLOCK: usize = 16;
        pub const STRIDE: u32 = 1;
        pub type Loaded = __m128i;

        #[inline(always)]
        pub fn load(block: &[u8]) -> Loaded {
            assert!(block.len() >= BLOCK);
            // SAFETY: SSE2 is always present on x86_64; the load is unaligned and within `block`.
            unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
        }

        #[inline(always)]
        pub fn equal(v: Loaded, byte: u8) -> u64 {
            // SAFETY: SSE2 is always present on x86_64.
            unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8))) as u32 as u64 }
        }

        /// The mask of the bytes equal to any of three (one mask extraction).
        #[inline(always)]
        pub fn equal_any(v: Loaded, [a, b, c]: [u8; 3]) -> u64 {
            // SAFETY: SSE2 is always present on x86_64.
            unsafe {
                let eq = |byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(eq(a), eq(b)), eq(c))) as u32 as u64
            }
        }
    }

    /// NEON (part of aarch64): compare 16 bytes at once; narrowing the comparison by 4 bits gives a
    /// nibble per byte, of which one bit is kept.
    #[cfg(target_arch = "aarch64")]
    mod arch {
        use std::arch::aarch64::*;
        pub const BLOCK: usize = 16;
        pub const STRIDE: u32 = 4;
        pub type Loaded = uint8x16_t;

        #[inline(always)]
        pub fn load(block: &[u8]) -> Loaded {
            assert!(block.len() >= BLOCK);
            // SAFETY: NEON is always present on aarch64; the load is within `block`.
            unsafe { vld1q_u8(block.as_ptr()) }
        }

        #[inline(always)]
        pub fn equal(v: Loaded, byte: u8) -> u64 {
            // SAFETY: NEON is always present on aarch64.
            narrow(unsafe { vceqq_u8(v, vdupq_n_u8(byte)) })
        }

        /// The mask of the bytes equal to any of three (one narrowing).
        #[inline(always)]
        pub fn equal_any(v: Loaded, [a, b, c]: [u8; 3]) -> u64 {
            // SAFETY: NEON is always present on aarch64.
            narrow(unsafe {
                let eq = |byte: u8| vceqq_u8(v, vdupq_n_u8(byte));
                vorrq_u8(vorrq_u8(eq(a), eq(b)), eq(c))
            })
        }

        /// A nibble per byte of a comparison result, one bit of it kept.
        #[inline(always)]
        fn narrow(hit: uint8x16_t) -> u64 {
            // SAFETY: NEON is always present on aarch64.
            unsafe {
                let hit = vreinterpretq_u16_u8(hit);
                vget_lane_u64::<0>(vreinterpret_u64_u8(vshrn_n_u16::<4>(hit))) & 0x1111_1111_1111_1111
            }
        }
    }

    /// Anywhere else: SWAR on one `u64`, the flag in the top bit of each byte.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    mod arch {
        pub const BLOCK: usize = 8;
        pub const STRIDE: u32 = 8;
        pub type Loaded = u64;

        #[inline(always)]
        pub fn load(block: &[u8]) -> Loaded {
            u64::from_le_bytes(block[..8].try_into().expect("8 bytes"))
        }

        #[inline(always)]
        pub fn equal(word: Loaded, byte: u8) -> u64 {
            super::swar_equal(word, byte)
        }

        #[inline(always)]
        pub fn equal_any(word: Loaded, [a, b, c]: [u8; 3]) -> u64 {
            equal(word, a) | equal(word, b) | equal(word, c)
        }
    }

    pub use arch::{BLOCK, STRIDE};

    /// The masks of line breaks, quotes and commas (the delimiter `comma`) in the first [`BLOCK`] bytes of
    /// `block`.
    #[inline(always)]
    pub fn masks(block: &[u8], comma: u8) -> (u64, u64, u64) {
        let v = arch::load(block);
        (arch::equal(v, b'\n') | arch::equal(v, b'\r'), arch::equal(v, b'"'), arch::equal(v, comma))
    }

    /// The masks of the bytes that end or interrupt a plain run of fields (line breaks and quotes
    /// together), and of commas (the delimiter `comma`): most blocks have none of the first, and need
    /// nothing more.
    #[inline(always)]
    pub fn stops_and_commas(block: &[u8], comma: u8) -> (u64, u64) {
        let v = arch::load(block);
        (arch::equal_any(v, [b'\n', b'\r', b'"']), arch::equal(v, comma))
    }

    /// 0x80 in every byte of `word` that equals `byte`, 0 elsewhere. Exact (no borrow runs between bytes).
    #[allow(dead_code)] // used where there is no SIMD path, and by the tests
    #[inline(always)]
    pub fn swar_equal(word: u64, byte: u8) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        let y = word ^ (ONES * u64::from(byte));
        !(((y & LOW7) + LOW7) | y | LOW7)
    }
}

/// [`scan_by`] with the delimiter `comma`: the comma (the default) has a copy of the scan of its own, in
/// which it is a constant; any other delimiter shares one copy, which broadcasts it once per line.
fn scan_line(text: &[u8], spans: &mut [(usize, usize)], comma: u8) -> (Scan, usize) {
    if comma == b',' {
        scan_by(text, spans, b',')
    } else {
        scan_by(text, spans, comma)
    }
}

/// Splits the line at the start of `text` into `spans` on commas (the delimiter `comma`), stopping at its first line break (`\n`
/// or `\r`). One pass, a block at a time ([`classes`]: 16 bytes with SSE2 or NEON): the line break, quote and
/// comma tests of a block are a few instructions, where a search call per field costs more than the search. A quoted field that csv
/// reads as just its contents (see [`simple_quoted`]) is taken here too; any other quote leaves the record
/// to csv_core ([`Scan::Quoted`]). Returns how the scan ended and how many fields it wrote to the start of
/// `spans`; fields past its room are not kept, and a count of `spans.len()` means the line may have more.
#[inline(always)]
fn scan_by(text: &[u8], spans: &mut [(usize, usize)], comma: u8) -> (Scan, usize) {
    let mut n = 0;
    let mut from = 0;
    let mut at = 0;
    // Past the room in `spans` the field is not kept; the count then tells the caller to fail the record.
    let field = |spans: &mut [(usize, usize)], n: &mut usize, span: (usize, usize)| {
        if let Some(slot) = spans.get_mut(*n) {
            *slot = span;
            *n += 1;
        }
    };
    // A quote at `q`: the field must start there and be simple. Returns where scanning goes on, or how the
    // scan ends.
    let quoted = |spans: &mut [(usize, usize)], n: &mut usize, from: &mut usize, q: usize| -> Result<usize, Scan> {
        let close = (q == *from).then(|| simple_quoted(text, q, comma)).flatten().ok_or(Scan::Quoted)?;
        field(spans, n, (q + 1, close));
        match text.get(close + 1) {
            Some(&b) if b == comma => {
                *from = close + 2;
                Ok(close + 2)
            }
            Some(_) => Err(Scan::Plain(Some(close + 1))), // a line break
            None => Err(Scan::Plain(None)),
        }
    };
    use classes::{BLOCK, STRIDE};
    // The fields that end at the commas of `commas`, a mask of the block at `at`.
    let split = |spans: &mut [(usize, usize)], n: &mut usize, from: &mut usize, at: usize, mut commas: u64| {
        while commas != 0 {
            let comma = at + (commas.trailing_zeros() / STRIDE) as usize;
            field(spans, n, (*from, comma));
            *from = comma + 1;
            commas &= commas - 1;
        }
    };
    while let Some(block) = text.get(at..at + BLOCK) {
        let (stops, commas) = classes::stops_and_commas(block, comma);
        if stops == 0 {
            // Only commas (most blocks of a line).
            split(spans, &mut n, &mut from, at, commas);
            at += BLOCK;
            continue;
        }
        let (breaks, quotes, commas) = classes::masks(block, comma);
        // The mask bits of the bytes before the first line break, then before the first quote.
        let before = if breaks == 0 { u64::MAX } else { (breaks & breaks.wrapping_neg()) - 1 };
        let quotes = quotes & before;
        let limit = if quotes == 0 { before } else { (quotes & quotes.wrapping_neg()) - 1 };
        split(spans, &mut n, &mut from, at, commas & limit);
        if quotes != 0 {
            match quoted(spans, &mut n, &mut from, at + (quotes.trailing_zeros() / STRIDE) as usize) {
                Ok(next) => at = next,
                Err(end) => return (end, n),
            }
            continue;
        }
        if breaks != 0 {
            let eol = at + (breaks.trailing_zeros() / STRIDE) as usize;
            field(spans, &mut n, (from, eol));
            return (Scan::Plain(Some(eol)), n);
        }
        at += BLOCK;
    }
    while let Some(&byte) = text.get(at) {
        match byte {
            b'\n' | b'\r' => {
                field(spans, &mut n, (from, at));
                return (Scan::Plain(Some(at)), n);
            }
            b'"' => match quoted(spans, &mut n, &mut from, at) {
                Ok(next) => at = next,
                Err(end) => return (end, n),
            },
            b if b == comma => {
                field(spans, &mut n, (from, at));
                from = at + 1;
                at += 1;
            }
            _ => at += 1,
        }
    }
    field(spans, &mut n, (from, text.len()));
    (Scan::Plain(None), n)
}

/// Where the closing quote is of the quoted field opening at `q`, if csv reads that field as just the bytes
/// between the quotes: no quote inside (a doubled quote is an escape), no line break inside (csv_core counts
/// those), and the delimiter `comma`, a line break or the end of the text right after it.
fn simple_quoted(text: &[u8], q: usize, comma: u8) -> Option<usize> {
    // The block after the opening quote first (most quoted values are short): its masks give the closing
    // quote and any line break before it, where two searches' calls cost more than the bytes.
    let in_block = text.get(q + 1..q + 1 + classes::BLOCK).map(|block| classes::masks(block, comma));
    let close = match in_block {
        Some((breaks, quotes, _)) if quotes != 0 => {
            if breaks & ((quotes & quotes.wrapping_neg()) - 1) != 0 {
                return None;
            }
            q + 1 + (quotes.trailing_zeros() / classes::STRIDE) as usize
        }
        Some((breaks, _, _)) if breaks != 0 => return None,
        _ => {
            let close = q + 1 + memchr::memchr(b'"', &text[q + 1..])?;
            if memchr::memchr2(b'\n', b'\r', &text[q + 1..close]).is_some() {
                return None;
            }
            close
        }
    };
    match text.get(close + 1) {
        None | Some(b'\n' | b'\r') => Some(close),
        Some(&b) if b == comma => Some(close),
        _ => None,
    }
}

/// Length of the ASCII run at the start of `bytes`.
fn ascii_prefix(bytes: &[u8]) -> usize {
    let mut at = 0;
    for block in bytes.chunks_exact(64) {
        if !block.is_ascii() {
            break;
        }
        at += 64;
    }
    at + bytes[at..].iter().position(|b| !b.is_ascii()).unwrap_or(bytes.len() - at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny reads exercise records and terminators split across buffer refills.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all(input: &[u8], step: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        all_with(input, step, Delimiter::COMMA)
    }

    fn all_with(input: &[u8], step: usize, delimiter: Delimiter) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut reader = RecordReader::with_delimiter(Trickle(input, step), 1 << 20, delimiter);
        let mut out = Vec::new();
        while let Some((line, record)) = reader.read().unwrap() {
            out.push((line, record.iter().map(<[u8]>::to_vec).collect()));
        }
        out
    }

    /// What the `csv` crate's flexible reader makes of the input (the reference for fields).
    fn reference(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        reference_with(input, b',')
    }

    /// The same with another delimiter.
    fn reference_with(input: &[u8], delimiter: u8) -> Vec<Vec<Vec<u8>>> {
        let mut rdr =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(input);
        rdr.byte_records().map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect()).collect()
    }

    #[test]
    fn records_and_lines_with_every_line_ending() {
        // (input, the line each record starts on)
        let cases: &[(&str, &[u64])] = &[
            ("h\na\nb\n", &[1, 2, 3]),
            ("h\r\na\r\nb\r\n", &[1, 2, 3]),
            ("h\ra\rb", &[1, 2, 3]),
            ("h\na\n\nb\nc\n", &[1, 2, 4, 5]),
            ("h\n\n\na\r\n\r\nb", &[1, 4, 6]),
            ("h\n\"q\nq\"\nb\n", &[1, 2, 4]),
            ("h\n\"q\r\n\r\nq\"\r\nb\r\n", &[1, 2, 5]),
            ("\n\nh,\"x\"\"y\",z\r\n1,,\"\"\n\"a\rb\"", &[3, 4, 5]),
            ("a,b\"c,d\n\"e\",\"f\"g\n", &[1, 2]),
            ("x", &[1]),
            ("h\n\u{feff}\"x\",y\n\u{feff}a,b\n", &[1, 2, 3]),
            ("", &[]),
            ("\r\n\n", &[]),
        ];
        for (input, want) in cases {
            for step in [1, 2, 3, 1000] {
                let got = all(input.as_bytes(), step);
                let lines: Vec<u64> = got.iter().map(|(line, _)| *line).collect();
                assert_eq!(lines, *want, "lines of {input:?} read {step} bytes at a time");
                let fields: Vec<Vec<Vec<u8>>> = got.into_iter().map(|(_, f)| f).collect();
                assert_eq!(fields, reference(input.as_bytes()), "fields of {input:?} (step {step})");
            }
            // The same texts with another delimiter in place of the comma: the same lines, the csv crate's
            // fields; and read with the comma, the other delimiter is plain text.
            for delimiter in [Delimiter::SEMICOLON, Delimiter::TAB, Delimiter::PIPE] {
                let input = input.replace(',', &char::from(delimiter.byte()).to_string());
                for step in [1, 3, 1000] {
                    let got = all_with(input.as_bytes(), step, delimiter);
                    let lines: Vec<u64> = got.iter().map(|(line, _)| *line).collect();
                    assert_eq!(lines, *want, "lines of {input:?} ({delimiter:?}, step {step})");
                    let fields: Vec<Vec<Vec<u8>>> = got.into_iter().map(|(_, f)| f).collect();
                    assert_eq!(fields, reference_with(input.as_bytes(), delimiter.byte()), "{input:?} ({delimiter:?})");
                }
                let as_commas: Vec<Vec<Vec<u8>>> = all(input.as_bytes(), 1000).into_iter().map(|(_, f)| f).collect();
                assert_eq!(as_commas, reference(input.as_bytes()), "{input:?} read with commas");
            }
        }
    }

    #[test]
    fn other_delimiters_split_like_the_csv_crate() {
        let semicolon = Delimiter::SEMICOLON;
        let cases: &[(Delimiter, &str, &[&[&str]])] = &[
            // Commas (decimal commas, thousands) inside a semicolon file are data, quoted or not.
            (semicolon, "a;b;c\n19,99;\"1,5\";x\r\n", &[&["a", "b", "c"], &["19,99", "1,5", "x"]]),
            // A quoted field holding the delimiter, a doubled quote, a line break.
            (semicolon, "\"a;b\";\"c\"\"d\";\"e\nf\"\n", &[&["a;b", "c\"d", "e\nf"]]),
            (semicolon, ";;\n\"\";\"\"", &[&["", "", ""], &["", ""]]),
            (Delimiter::TAB, "a\tb, c\t\"d\te\"\r\nx\t\ty\n", &[&["a", "b, c", "d\te"], &["x", "", "y"]]),
            (Delimiter::PIPE, "a|\"b|c\"|d,e\n\"x\"\"|\"|\n", &[&["a", "b|c", "d,e"], &["x\"|", ""]]),
            (Delimiter::new(b':').unwrap(), "a:b\n\"c:d\":e\n", &[&["a", "b"], &["c:d", "e"]]),
        ];
        for (delimiter, input, want) in cases {
            let want: Vec<Vec<Vec<u8>>> =
                want.iter().map(|r| r.iter().map(|f| f.as_bytes().to_vec()).collect()).collect();
            assert_eq!(reference_with(input.as_bytes(), delimiter.byte()), want, "the reference, {input:?}");
            for step in [1, 2, 5, 1000] {
                let got: Vec<Vec<Vec<u8>>> =
                    all_with(input.as_bytes(), step, *delimiter).into_iter().map(|(_, f)| f).collect();
                assert_eq!(got, want, "{input:?} with {delimiter:?}, step {step}");
            }
        }
        // Long lines (the block-at-a-time scan) with a delimiter in every position of a block.
        for delimiter in [Delimiter::SEMICOLON, Delimiter::TAB, Delimiter::PIPE] {
            let d = char::from(delimiter.byte());
            for pad in 0..40 {
                let x = "x".repeat(pad);
                let input = format!("{x}{d}a,b{d}\"{x}{d}q\"{d}{x}\"{d}y\n{x},{x}{d}\r\n");
                let got: Vec<Vec<Vec<u8>>> =
                    all_with(input.as_bytes(), 1000, delimiter).into_iter().map(|(_, f)| f).collect();
                assert_eq!(got, reference_with(input.as_bytes(), delimiter.byte()), "{input:?}");
            }
        }
    }

    #[test]
    fn delimiters_are_checked() {
        for byte in [b',', b';', b'|', b'\t', b':', b'^'] {
            assert_eq!(Delimiter::new(byte).map(Delimiter::byte), Ok(byte), "{byte:#x}");
        }
        assert_eq!(Delimiter::new(b'\t'), Ok(Delimiter::TAB));
        assert_eq!(Delimiter::default(), Delimiter::COMMA);
        for byte in [b'"', b'\n', b'\r', b' ', b'a', b'0', b'7', 0, 0x80, 0xFF] {
            let err = Delimiter::new(byte).unwrap_err();
            assert!(err.contains("cannot be the delimiter"), "{byte:#x}: {err}");
        }
    }

    #[test]
    fn utf8_is_checked_per_field_when_fields_are_joined() {
        // "\xC3" + "\xA9" would read as "é" if a quoted record's fields were checked joined: through csv_core
        // (an escaped quote), whose fields are joined, and through the one-pass scan.
        let text = b"\"O\"\"RD\xC3\",\xA9SKU\n\"ORD\xC3\",\xA9SKU\nok,\"\xC3\xA9\"\n";
        let mut reader = RecordReader::new(&text[..], 1 << 20);
        let (_, joined) = reader.read().unwrap().unwrap();
        assert_eq!(joined.get(0), b"O\"RD\xC3");
        assert!(!joined.is_utf8());
        let (_, joined) = reader.read().unwrap().unwrap();
        assert!(!joined.is_utf8());
        let (_, fine) = reader.read().unwrap().unwrap();
        assert!(fine.is_utf8());
        assert!(!OwnedRecord::from_fields(&[b"a\xC3", b"\xA9"]).view().is_utf8());
    }

    #[test]
    fn too_many_fields_fail_the_file() {
        // Unquoted, a simple quoted field (the one-pass scan), and an escaped quote (csv_core); exactly
        // MAX_FIELDS fields pass, one more fails.
        for first in ["", "\"q\"", "\"q\"\"q\""] {
            for fields in [MAX_FIELDS, MAX_FIELDS + 1, MAX_FIELDS + 2] {
                let text = format!("h\n{first}{}\n", ",".repeat(fields - 1));
                let mut reader = RecordReader::new(text.as_bytes(), 1 << 24);
                assert!(reader.read().unwrap().is_some());
                match reader.read() {
                    Ok(Some((_, record))) => assert_eq!((fields, record.len()), (MAX_FIELDS, MAX_FIELDS), "{first}"),
                    Ok(None) => panic!("no record"),
                    Err(err) => {
                        let decode = crate::read::input::decode_error(&err).expect("a decode error");
                        assert!(decode.to_string().contains("more than 65536 fields"), "{decode}");
                        assert!(fields > MAX_FIELDS, "{first}: {fields} fields fail");
                    }
                }
            }
        }
    }

    #[test]
    fn long_lines_grow_the_buffer_and_runaway_records_fail() {
        let long = format!("h\n{},{}\nz\n", "x".repeat(3 * BUF_SIZE), "y".repeat(10));
        let got = all(long.as_bytes(), 100_000);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].1[0].len(), 3 * BUF_SIZE);
        assert_eq!(got[2], (3, vec![b"z".to_vec()]));

        for runaway in [format!("h\n\"{}", "x".repeat(300_000)), format!("h\n{}", "x".repeat(300_000))] {
            let mut reader = RecordReader::new(Trickle(runaway.as_bytes(), 4096), 100_000);
            assert_eq!(reader.read().unwrap().map(|(line, _)| line), Some(1));
            let err = reader.read().unwrap_err();
            let decode = crate::read::input::decode_error(&err).expect("a decode error");
            assert!(decode.to_string().contains("starting at line 2"), "{decode}");
        }
    }

    /// Random short texts over the bytes the splitter cares about (alignment of every kind included): fields
    /// match the `csv` crate, UTF-8 verdicts match a field-by-field check, and line numbers are the same
    /// whatever the read sizes (their meaning is pinned by `records_and_lines_with_every_line_ending`).
    #[test]
    fn one_pass_splitter_matches_the_reference_on_random_text() {
        let alphabet: &[&[u8]] = &[
            b"a",
            b"bc",
            b",",
            b",",
            b"\n",
            b"\r",
            b"\r\n",
            b"\"",
            b",\"a,b\"",
            b",\"\"",
            b"\"x\"\"y\"",
            b"\xC3\xA9",
            b"\xC3",
            b"\xA9",
            b"\xFF",
            b" ",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        // Every delimiter in turn: the alphabet's commas become the delimiter, and the other delimiters'
        // bytes (a comma among them) are plain text.
        let delimiters = [Delimiter::COMMA, Delimiter::SEMICOLON, Delimiter::TAB, Delimiter::PIPE];
        let others: &[&[u8]] = &[b",", b";", b"\t", b"|", b"\"a;b|c,d\"", b"1,5"];
        for case in 0..6000 {
            let delimiter = delimiters[case % delimiters.len()];
            let mut input = Vec::new();
            for _ in 0..next(60) {
                let token = alphabet[next(alphabet.len())];
                if delimiter != Delimiter::COMMA && next(4) == 0 {
                    input.extend_from_slice(others[next(others.len())]);
                }
                input.extend(token.iter().map(|&b| if b == b',' { delimiter.byte() } else { b }));
            }
            if case % 2 == 0 {
                input.retain(|&b| b != b'"'); // mostly the unquoted path
            }
            let want = reference_with(&input, delimiter.byte());
            let mut lines_of_first_step = None;
            for step in [1, 7, 1000] {
                let mut reader = RecordReader::with_delimiter(Trickle(&input, step), 1 << 20, delimiter);
                let mut got = Vec::new();
                let mut lines = Vec::new();
                while let Some((line, record)) = reader.read().unwrap() {
                    lines.push(line);
                    let fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
                    let utf8 = fields.iter().all(|f| std::str::from_utf8(f).is_ok());
                    assert_eq!(record.is_utf8(), utf8, "UTF-8 verdict for {fields:?} in {input:?} (step {step})");
                    got.push(fields);
                }
                assert_eq!(got, want, "fields of {input:?} (step {step}, {delimiter:?})");
                assert_eq!(
                    *lines_of_first_step.get_or_insert(lines.clone()),
                    lines,
                    "lines of {input:?} (step {step})"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]
        /// The same property as above, searched by proptest (which shrinks a failure to a minimal text):
        /// fields and UTF-8 verdicts equal the `csv` crate's with the same delimiter, whatever the read size.
        /// In the tokens, `\x01` stands for the delimiter; the other delimiters' bytes are plain text.
        #[test]
        fn splitter_matches_the_csv_crate(
            tokens in proptest::collection::vec(proptest::sample::select(vec![
                &b"a"[..], b"bc", b"\x01", b"\n", b"\r", b"\r\n", b"\"", b"\x01\"a\x01b\"", b"\"x\"\"y\"",
                b"\xC3\xA9", b"\xC3", b"\xFF", b" ", b"\t", b"0", b",", b";", b"|", b"\"a,b;c|d\te\"",
            ]), 0..80),
            step in 1usize..300,
            delimiter in proptest::sample::select(vec![b',', b';', b'\t', b'|']),
        ) {
            let input: Vec<u8> = tokens.concat().into_iter().map(|b| if b == 1 { delimiter } else { b }).collect();
            let want = reference_with(&input, delimiter);
            let delimiter = Delimiter::new(delimiter).unwrap();
            let mut reader = RecordReader::with_delimiter(Trickle(&input, step), 1 << 20, delimiter);
            let mut got = Vec::new();
            while let Some((_, record)) = reader.read().unwrap() {
                let fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
                let utf8 = fields.iter().all(|f| std::str::from_utf8(f).is_ok());
                proptest::prop_assert_eq!(record.is_utf8(), utf8);
                got.push(fields);
            }
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// Records read from the prefetch thread's buffers (handed over, with the unread tail put in their
    /// headroom or, when longer, appended to) are the same as from a plain reader: short and long lines
    /// across buffer boundaries, quoted records longer than the headroom, non-ASCII text on both sides.
    #[test]
    fn prefetched_buffers_give_the_same_records() {
        struct Pieces(io::Cursor<Vec<u8>>, usize);
        impl Read for Pieces {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.1);
                self.0.read(&mut buf[..n])
            }
        }
        let mut text = b"h,x,y\n".to_vec();
        for i in 0..40_000 {
            let line = match i % 997 {
                0 => format!("{i},\"{}\",z\r\n", "q\nq".repeat(3000)), // quoted, 12 KB, line breaks inside
                1 if i % 3 == 0 => format!("{i},{},z\n", "x".repeat(BUF_SIZE + 9)), // longer than a buffer
                2 => format!("{i},café,ü\n"),
                _ if i % 7 == 0 => format!("{i},\"a,b\",é\r\n"),
                _ => format!("{i},plain,{}\n", "v".repeat(i % 40)),
            };
            text.extend_from_slice(line.as_bytes());
            if i % 11 == 1 {
                text.extend_from_slice(b"\xC3,\xFF\n"); // invalid UTF-8
            }
        }
        type Records = Vec<(u64, bool, Vec<Vec<u8>>)>;
        fn collect(mut reader: RecordReader<impl Refill>) -> Records {
            let mut out = Vec::new();
            while let Some((line, record)) = reader.read().unwrap() {
                out.push((line, record.is_utf8(), record.iter().map(<[u8]>::to_vec).collect()));
            }
            out
        }
        let want = collect(RecordReader::new(&text[..], 1 << 24));
        assert!(want.len() > 40_000);
        for step in [BUF_SIZE, 100_003, 4093] {
            let source = Pieces(io::Cursor::new(text.clone()), step);
            let got = collect(RecordReader::new(crate::read::input::prefetch(Box::new(source)).unwrap(), 1 << 24));
            assert!(got == want, "records differ with reads of {step} bytes");
        }
    }

    #[test]
    fn simple_quoted_fields_short_and_long() {
        for delimiter in [b',', b';', b'\t', b'|'] {
            simple_quoted_fields_with(delimiter);
        }
    }

    fn simple_quoted_fields_with(delimiter: u8) {
        // The reference: the first quote after the opening one, with no line break before it.
        let reference = |text: &[u8], q: usize| {
            let close = q + 1 + text[q + 1..].iter().position(|&b| b == b'"')?;
            if text[q + 1..close].iter().any(|&b| b == b'\n' || b == b'\r') {
                return None;
            }
            let next = text.get(close + 1);
            (next.is_none() || matches!(next, Some(b'\n' | b'\r')) || next == Some(&delimiter)).then_some(close)
        };
        // Commas stay in the alphabet: data when the delimiter is another byte.
        let alphabet = [b'a', b'b', delimiter, delimiter, b',', b' ', b'"', b'\n', b'\r', b'x', b'y', b'z'];
        let mut x = 7u64;
        for _ in 0..50_000 {
            crate::testing::xorshift(&mut x);
            let len = 1 + (x % 60) as usize;
            // Mostly plain bytes, so that quotes close both within and past the short search.
            let mut text: Vec<u8> = (0..len)
                .map(|i| {
                    let r = (x >> (i % 50)) as usize ^ i.wrapping_mul(31);
                    if r.is_multiple_of(16) {
                        alphabet[(r >> 4) % alphabet.len()]
                    } else {
                        b'x'
                    }
                })
                .collect();
            text[0] = b'"';
            assert_eq!(
                simple_quoted(&text, 0, delimiter),
                reference(&text, 0),
                "{:?} ({delimiter:#x})",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn scan_line_splits_to_the_first_break_and_leaves_hard_quotes_to_csv_core() {
        for delimiter in [b',', b';', b'\t', b'|'] {
            scan_line_splits_with(delimiter);
        }
        assert_eq!(ascii_prefix(&[b'a'; 200]), 200);
        let mut bytes = vec![b'a'; 200];
        bytes[130] = 0xC3;
        assert_eq!(ascii_prefix(&bytes), 130);
    }

    /// The cases written with commas, read with `delimiter` in their place.
    fn scan_line_splits_with(delimiter: u8) {
        let mut room = vec![(0, 0); 8];
        // The scan's result and the fields it wrote.
        let mut scan = |line: &str| {
            let line = line.replace(',', &char::from(delimiter).to_string());
            let (scan, n) = scan_line(line.as_bytes(), &mut room, delimiter);
            (scan, room[..n].to_vec())
        };
        for pad in 0..20 {
            let x = "x".repeat(pad);
            let line = format!("{x},b\n\"c,d");
            assert_eq!(scan(&line), (Scan::Plain(Some(pad + 2)), vec![(0, pad), (pad + 1, pad + 2)]), "{line:?}");
            let quoted = format!("{x}\",b\n");
            assert_eq!(scan(&quoted).0, Scan::Quoted, "{quoted:?}");
            assert_eq!(scan(&x), (Scan::Plain(None), vec![(0, pad)]));
            // Simple quoted fields are split here, without their quotes.
            let simple = format!("{x},\"a,b\",c,\"\"\r");
            assert_eq!(
                scan(&simple),
                (
                    Scan::Plain(Some(pad + 11)),
                    vec![(0, pad), (pad + 2, pad + 5), (pad + 7, pad + 8), (pad + 10, pad + 10)]
                ),
                "{simple:?}"
            );
            assert_eq!(scan(&format!("{x},\"a\"")), (Scan::Plain(None), vec![(0, pad), (pad + 2, pad + 3)]));
            // Escapes, line breaks inside, text after the closing quote: csv_core's.
            for other in
                [format!("{x},\"a\"\"b\"\n"), format!("{x},\"a\nb\"\n"), format!("{x},\"a\"b\n"), format!("{x},\"a")]
            {
                assert_eq!(scan(&other).0, Scan::Quoted, "{other:?}");
            }
        }
    }

    #[test]
    fn byte_class_masks_flag_exactly_the_class_bytes() {
        for delimiter in [b',', b';', b'\t', b'|'] {
            byte_class_masks_with(delimiter);
        }
    }

    fn byte_class_masks_with(delimiter: u8) {
        let class = |v: u8| (matches!(v, b'\n' | b'\r'), v == b'"', v == delimiter);
        for background in [b'x', b',', delimiter, 0x00, 0x80, 0xFF] {
            for pos in 0..classes::BLOCK {
                for value in 0..=255u8 {
                    let mut block = [background; 16];
                    block[pos] = value;
                    let (breaks, quotes, commas) = classes::masks(&block, delimiter);
                    let mut want = (0u64, 0u64, 0u64);
                    for (i, &b) in block[..classes::BLOCK].iter().enumerate() {
                        let bit = 1u64 << (i as u32 * classes::STRIDE);
                        let (is_break, is_quote, is_comma) = class(b);
                        want.0 |= if is_break { bit } else { 0 };
                        want.1 |= if is_quote { bit } else { 0 };
                        want.2 |= if is_comma { bit } else { 0 };
                    }
                    assert_eq!((breaks, quotes, commas), want, "byte {value:#x} at {pos} among {background:#x}");
                    assert_eq!(
                        classes::stops_and_commas(&block, delimiter),
                        (want.0 | want.1, want.2),
                        "byte {value:#x} at {pos}"
                    );
                }
            }
            // The portable SWAR test, on every byte value next to every background.
            for pos in 0..8 {
                for value in 0..=255u8 {
                    let mut word = [background; 8];
                    word[pos] = value;
                    let flags = classes::swar_equal(u64::from_le_bytes(word), delimiter);
                    let want: u64 =
                        word.iter().enumerate().map(|(i, &b)| if b == delimiter { 0x80 << (8 * i) } else { 0 }).sum();
                    assert_eq!(flags, want, "byte {value:#x} at {pos} among {background:#x}");
                }
            }
        }
    }
}
