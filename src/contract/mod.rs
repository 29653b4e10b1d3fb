//! The input contract: which columns an orders export has, how a header is resolved, and how one data row is
//! validated and normalised (or rejected with a reason).
//!
//! Validation writes accepted rows straight into a columnar [`Chunk`] of integer codes: dimension values are
//! normalised once and interned by [`Dictionaries`], so the aggregation engine only ever groups integers.

mod dictionary;
pub mod parse;

pub(crate) use dictionary::pack;
pub use dictionary::Dictionaries;
use dictionary::PairDictionary;

use std::fmt;

use crate::error::InputError;
use crate::read::records::Record;
use crate::settings::{Case, InputMapping, Settings};

/// A field of the contract, read from the export column(s) the settings map to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    EventTime,
    OrderId,
    Sku,
    Quantity,
    UnitPrice,
    CustomerId,
}

impl Field {
    /// Every field, required ones first.
    pub const ALL: [Field; 6] =
        [Field::EventTime, Field::OrderId, Field::Sku, Field::Quantity, Field::UnitPrice, Field::CustomerId];

    /// The field's name in the contract (and in a config file's `[input]`).
    pub fn name(self) -> &'static str {
        match self {
            Field::EventTime => "event_time",
            Field::OrderId => "order_id",
            Field::Sku => "sku",
            Field::Quantity => "quantity",
            Field::UnitPrice => "unit_price",
            Field::CustomerId => "customer_id",
        }
    }

    /// Whether a file without this field fails as a whole.
    pub fn required(self) -> bool {
        self != Field::CustomerId
    }

    /// The header names the settings accept for this field.
    pub fn accepted(self, input: &InputMapping) -> &[String] {
        match self {
            Field::EventTime => &input.event_time,
            Field::OrderId => &input.order_id,
            Field::Sku => &input.sku,
            Field::Quantity => &input.quantity,
            Field::UnitPrice => &input.unit_price,
            Field::CustomerId => &input.customer_id,
        }
    }
}

/// Why a data row was rejected. The order of the variants is the order the checks run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    FieldCount,
    InvalidUtf8,
    EventTimeInvalid,
    OrderIdMissing,
    SkuMissing,
    QuantityInvalid,
    UnitPriceInvalid,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        RejectReason::FieldCount,
        RejectReason::InvalidUtf8,
        RejectReason::EventTimeInvalid,
        RejectReason::OrderIdMissing,
        RejectReason::SkuMissing,
        RejectReason::QuantityInvalid,
        RejectReason::UnitPriceInvalid,
    ];

    /// The reason as written in the rejects file and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::FieldCount => "field_count",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::EventTimeInvalid => "event_time_invalid",
            RejectReason::OrderIdMissing => "order_id_missing",
            RejectReason::SkuMissing => "sku_missing",
            RejectReason::QuantityInvalid => "quantity_invalid",
            RejectReason::UnitPriceInvalid => "unit_price_invalid",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolved header: where each field and dimension sits in a record.
#[derive(Clone, Debug)]
pub struct Header {
    /// The field of each of [`Field::ALL`], `width` for a missing one: a record of `width` fields has no
    /// such field, so [`Record::span`] gives an empty span for it, and validation takes no branch on
    /// whether the column is there (an `Option` per column would be an outlined `map_or` call each).
    fields: [usize; 6],
    /// The field of each dimension (`width` for a missing one), by dimension index.
    dims: Vec<usize>,
    /// How the dimensions of a row are looked up: two whose columns stand side by side in the header (as
    /// `sku,category` or `channel,campaign` usually do) as one value of a [`PairDictionary`], the others
    /// one by one. Found from the header, so that any config's dimensions pair up where the export allows.
    pairs: Vec<(usize, usize)>,
    singles: Vec<usize>,
    /// Number of fields every data row must have.
    pub width: usize,
    /// Columns the contract does not know, trimmed, in file order.
    pub ignored: Vec<String>,
}

impl Header {
    /// Resolves the header record against the default settings.
    pub fn resolve(record: &csv::ByteRecord) -> Result<Header, InputError> {
        Header::resolve_with(record, Settings::default_ref())
    }

    /// Resolves the header record: names are trimmed and matched case-insensitively against the names the
    /// settings accept, in any order.
    pub fn resolve_with(record: &csv::ByteRecord, settings: &Settings) -> Result<Header, InputError> {
        let mut names = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| InputError::InvalidHeader {
                message: format!("header field {} is not valid UTF-8", i + 1),
            })?;
            names.push(name.trim().to_string());
        }
        let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        let mut used = vec![false; names.len()];
        // The position of the one header column among `accepted`, if any; two of them is ambiguous.
        let mut find = |what: &str, accepted: &[String]| -> Result<Option<usize>, InputError> {
            let mut found: Option<usize> = None;
            for want in accepted {
                let want = want.to_lowercase();
                for (i, _) in lower.iter().enumerate().filter(|(_, n)| **n == want) {
                    if let Some(before) = found {
                        return Err(InputError::DuplicateColumn {
                            column: if names[before].to_lowercase() == lower[i] {
                                lower[i].clone()
                            } else {
                                format!("{} ({} and {})", what, names[before], names[i])
                            },
                        });
                    }
                    found = Some(i);
                    used[i] = true;
                }
            }
            Ok(found)
        };
        let mut positions = [None; 6];
        for (k, field) in Field::ALL.into_iter().enumerate() {
            positions[k] = find(field.name(), field.accepted(&settings.input))?;
        }
        let mut dims = vec![positions[Field::Sku as usize]];
        for spec in &settings.dimensions[1..] {
            dims.push(find(&spec.name, &spec.columns)?);
        }
        let missing: Vec<String> = Field::ALL
            .iter()
            .zip(&positions)
            .filter(|(f, p)| f.required() && p.is_none())
            .map(|(f, _)| {
                let accepted = f.accepted(&settings.input);
                match accepted {
                    [one] if one == f.name() => one.clone(),
                    [one] => format!("{} (column {one})", f.name()),
                    more => format!("{} (one of the columns {})", f.name(), more.join(", ")),
                }
            })
            .collect();
        if !missing.is_empty() {
            return Err(InputError::MissingColumns { missing });
        }
        let ignored =
            names.iter().zip(&used).filter(|(n, used)| !**used && !n.is_empty()).map(|(n, _)| n.clone()).collect();
        let width = record.len();
        let (pairs, singles) = lookups(&dims);
        Ok(Header {
            fields: positions.map(|p| p.unwrap_or(width)),
            pairs,
            singles,
            dims: dims.into_iter().map(|p| p.unwrap_or(width)).collect(),
            width,
            ignored,
        })
    }

    #[cfg(test)]
    fn position(&self, field: Field) -> Option<usize> {
        let at = self.fields[field as usize];
        (at < self.width).then_some(at)
    }
}

/// Pairs the dimensions at `positions` (by index) whose columns stand side by side, from left to right:
/// the pairs, and the dimensions looked up alone (those without a column too: all `unknown`).
fn lookups(positions: &[Option<usize>]) -> (Vec<(usize, usize)>, Vec<usize>) {
    let mut present: Vec<(usize, usize)> =
        positions.iter().enumerate().filter_map(|(d, p)| p.map(|p| (p, d))).collect();
    present.sort_unstable();
    let (mut pairs, mut singles) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < present.len() {
        match present.get(i + 1) {
            Some(&(next, d)) if next == present[i].0 + 1 => {
                pairs.push((present[i].1, d));
                i += 2;
            }
            _ => {
                singles.push(present[i].1);
                i += 1;
            }
        }
    }
    singles.extend(positions.iter().enumerate().filter(|(_, p)| p.is_none()).map(|(d, _)| d));
    (pairs, singles)
}

/// A dimension of the insight tables: its index in the settings' dimensions and its name (the column in the
/// chunk frames and the output tables). Its values are normalised strings, interned to codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dim {
    pub index: usize,
    pub name: &'static str,
}

impl Dim {
    /// The `sku` dimension, first in every settings.
    pub const SKU: Dim = Dim { index: 0, name: "sku" };
    /// The default dimensions (without a config file), in the order of the default settings.
    pub const CATEGORY: Dim = Dim { index: 1, name: "category" };
    pub const CHANNEL: Dim = Dim { index: 2, name: "channel" };
    pub const CAMPAIGN: Dim = Dim { index: 3, name: "campaign" };
    pub const COUNTRY: Dim = Dim { index: 4, name: "country" };
    pub const DEVICE: Dim = Dim { index: 5, name: "device" };
    pub const DEFAULTS: [Dim; 6] = [Dim::SKU, Dim::CATEGORY, Dim::CHANNEL, Dim::CAMPAIGN, Dim::COUNTRY, Dim::DEVICE];

    /// The column name in the chunk frames and in the output tables.
    pub fn name(self) -> &'static str {
        self.name
    }
}

/// The normalised value of a trimmed field: an empty value becomes `unknown`, others take `case`.
fn normalise(case: Case, raw: &str) -> String {
    match case {
        _ if raw.is_empty() => "unknown".to_string(),
        Case::Upper => raw.to_uppercase(),
        Case::Lower => raw.to_lowercase(),
        Case::Keep => raw.to_string(),
    }
}

/// The code of a guest (empty `customer_id`) in the customer column.
pub const GUEST: u32 = 0;

/// Raw id bytes a chunk may hold before it is handed on regardless of its row count (keeps `id_ends`
/// within `u32` and memory bounded for files with very long ids).
pub const CHUNK_ID_BYTES: usize = 64 << 20;

/// Accepted rows of one chunk, column by column.
#[derive(Default, Debug, Clone)]
pub struct Chunk {
    pub hour: Vec<i64>,
    /// The trimmed order_id and customer_id of every row, back to back (filled by validation)...
    pub ids: Vec<u8>,
    /// ...and where each ends in `ids`: two entries per row (order end, customer end).
    pub id_ends: Vec<u32>,
    /// Order and customer codes (filled from `ids` by [`crate::aggregate::intern::IdInterners::intern_chunk`]).
    pub order: Vec<u32>,
    pub customer: Vec<u32>,
    /// The codes of each dimension, by index (as many vectors as the run has dimensions, from the first row).
    pub dims: Vec<Vec<u32>>,
    pub quantity: Vec<i64>,
    /// quantity * unit_price, in cents.
    pub revenue: Vec<i128>,
}

impl Chunk {
    /// An empty chunk with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        Chunk {
            hour: Vec::with_capacity(rows),
            ids: Vec::with_capacity(rows * 32),
            id_ends: Vec::with_capacity(rows * 2),
            order: Vec::new(),
            customer: Vec::new(),
            dims: Vec::new(),
            quantity: Vec::with_capacity(rows),
            revenue: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.hour.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hour.is_empty()
    }

    /// Whether the chunk should be handed on: `rows` rows, or [`CHUNK_ID_BYTES`] of raw ids.
    pub fn is_full(&self, rows: usize) -> bool {
        self.len() >= rows || self.ids.len() >= CHUNK_ID_BYTES
    }

    /// Appends a row's order and customer ids to `ids`, and their ends to `id_ends`. Ids of up to 32 bytes
    /// are written into the vector's spare room by a few fixed-size moves each, where an
    /// `extend_from_slice` per id is an outlined call, a capacity check and a `memcpy` call.
    #[inline(always)]
    pub fn push_ids(&mut self, order: &[u8], customer: &[u8]) {
        let (at, o, c) = (self.ids.len(), order.len(), customer.len());
        let room = self.ids.spare_capacity_mut();
        if o <= 32 && c <= 32 && room.len() >= 64 {
            copy_short(&mut room[..32], order);
            copy_short(&mut room[o..o + 32], customer);
            // SAFETY: `copy_short` wrote all `o` bytes of the order id and then all `c` of the customer id,
            // so the first `o + c` bytes of the spare room (within the capacity) are initialized.
            unsafe { self.ids.set_len(at + o + c) };
        } else {
            self.ids.reserve(o + c + 64);
            self.ids.extend_from_slice(order);
            self.ids.extend_from_slice(customer);
        }
        self.id_ends.push((at + o) as u32);
        self.id_ends.push((at + o + c) as u32);
    }
}

/// Writes `src` (at most 32 bytes) to the start of `dst` (at least 32 bytes) by two overlapping moves of a
/// fixed size chosen by the length (a per-column branch, so always predicted); every byte of `src` is written.
#[inline(always)]
fn copy_short(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8]) {
    /// `N` bytes of `src` from `at` to the same place in `dst`, as one fixed-size move.
    #[inline(always)]
    fn copy<const N: usize>(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8], at: usize) {
        let bytes: [u8; N] = src[at..at + N].try_into().expect("N bytes");
        let slot: &mut [std::mem::MaybeUninit<u8>; N] = (&mut dst[at..at + N]).try_into().expect("N bytes");
        *slot = bytes.map(std::mem::MaybeUninit::new);
    }
    let n = src.len();
    match n {
        16..=32 => {
            copy::<16>(dst, src, 0);
            copy::<16>(dst, src, n - 16);
        }
        8..=15 => {
            copy::<8>(dst, src, 0);
            copy::<8>(dst, src, n - 8);
        }
        4..=7 => {
            copy::<4>(dst, src, 0);
            copy::<4>(dst, src, n - 4);
        }
        1..=3 => {
            copy::<1>(dst, src, 0);
            copy::<1>(dst, src, n / 2);
            copy::<1>(dst, src, n - 1);
        }
        _ => {}
    }
}

/// Trims whitespace (as `str::trim`: Unicode White_Space) from both ends of a UTF-8 field.
#[inline(always)]
pub fn trim(field: &[u8]) -> &[u8] {
    let (from, to) = trim_span(field, (0, field.len()));
    &field[from..to]
}

/// [`trim`] of the field `text[from..to]`, as a span of `text`. A field that is empty or starts and ends
/// with a visible ASCII character (nearly all) is one test, inlined into the row check.
#[inline(always)]
fn trim_span(text: &[u8], (from, to): (usize, usize)) -> (usize, usize) {
    let visible = |at: usize| text[at].wrapping_sub(0x21) < 0x5E;
    if from == to || (visible(from) & visible(to - 1)) {
        return (from, to);
    }
    trim_edges(text, (from, to))
}

#[cold]
#[inline(never)]
fn trim_edges(text: &[u8], (from, to): (usize, usize)) -> (usize, usize) {
    let field = &text[from..to];
    let ascii = field.trim_ascii();
    let trimmed = match (ascii.first(), ascii.last()) {
        (Some(&a), Some(&b)) if a >= 0x80 || b >= 0x80 => {
            std::str::from_utf8(ascii).map_or(ascii, |s| s.trim().as_bytes())
        }
        _ => ascii,
    };
    // `trimmed` lies within `field`: its offset there gives the span.
    let start = from + (trimmed.as_ptr() as usize - field.as_ptr() as usize);
    (start, start + trimmed.len())
}

/// Validates one data record against the header. An accepted row is appended to `chunk` (interning its
/// dimension values in `dicts`, copying its ids); a rejected one leaves both untouched and returns the first failing check.
pub fn accept_row(
    header: &Header,
    record: &Record<'_>,
    dicts: &mut Dictionaries,
    chunk: &mut Chunk,
) -> Result<(), RejectReason> {
    if record.len() != header.width {
        return Err(RejectReason::FieldCount);
    }
    if !record.is_utf8() {
        return Err(RejectReason::InvalidUtf8);
    }
    let text = record.text();
    /// The trimmed field of a column, as a span of `text` (empty when the header has no such column).
    #[inline(always)]
    fn span_of(header: &Header, record: &Record<'_>, c: Field) -> (usize, usize) {
        trim_span(record.text(), record.span(header.fields[c as usize]))
    }
    #[inline(always)]
    fn field_of<'r>(header: &Header, record: &Record<'r>, c: Field) -> &'r [u8] {
        let (from, to) = span_of(header, record, c);
        &record.text()[from..to]
    }
    /// The field as it stands, untrimmed.
    #[inline(always)]
    fn raw_of<'r>(header: &Header, record: &Record<'r>, c: Field) -> &'r [u8] {
        let (from, to) = record.span(header.fields[c as usize]);
        &record.text()[from..to]
    }
    // A time, quantity or price is parsed untrimmed first: what parses there starts and ends with a digit (or
    // a time's `Z`), so trimming would not have changed it. Only a field that does not parse is trimmed
    // and parsed again.
    #[inline(always)]
    fn parsed<'r, T>(
        header: &Header,
        record: &Record<'r>,
        c: Field,
        mut parse: impl FnMut(&'r [u8]) -> Option<T>,
    ) -> Option<T> {
        parse(raw_of(header, record, c)).or_else(|| retrimmed(header, record, c, parse))
    }
    #[cold]
    #[inline(never)]
    fn retrimmed<'r, T>(
        header: &Header,
        record: &Record<'r>,
        c: Field,
        mut parse: impl FnMut(&'r [u8]) -> Option<T>,
    ) -> Option<T> {
        let (raw, trimmed) = (raw_of(header, record, c), field_of(header, record, c));
        if trimmed.len() == raw.len() {
            return None;
        }
        parse(trimmed)
    }
    let time = match &dicts.time_format {
        parse::TimeFormat::Rfc3339 => {
            parsed(header, record, Field::EventTime, |t| parse::event_time_micros_with(t, &mut dicts.dates))
        }
        other => parsed(header, record, Field::EventTime, |t| other.parse(t, &mut dicts.dates)),
    }
    .ok_or(RejectReason::EventTimeInvalid)?;
    let order_id = field_of(header, record, Field::OrderId);
    if order_id.is_empty() {
        return Err(RejectReason::OrderIdMissing);
    }
    if field_of(header, record, Field::Sku).is_empty() {
        return Err(RejectReason::SkuMissing);
    }
    let quantity = parsed(header, record, Field::Quantity, parse::quantity).ok_or(RejectReason::QuantityInvalid)?;
    let price = match dicts.decimal {
        parse::DecimalSeparator::Point => parsed(header, record, Field::UnitPrice, parse::price_cents),
        comma => parsed(header, record, Field::UnitPrice, |p| parse::price_cents_with(p, comma)),
    }
    .ok_or(RejectReason::UnitPriceInvalid)?;

    chunk.hour.push(parse::hour_start(time));
    chunk.push_ids(order_id, field_of(header, record, Field::CustomerId));
    if chunk.dims.len() != dicts.dims.len() || dicts.pairs.len() != header.pairs.len() {
        size_for(header, dicts, chunk);
    }
    // Dimension values are looked up untrimmed ([`DimDictionary::code_slow`] trims a value it has not seen).
    for (l, &(a, b)) in header.pairs.iter().enumerate() {
        let spans = (record.span(header.dims[a]), record.span(header.dims[b]));
        let (code_a, code_b) = dicts.pair_codes(l, (a, b), text, spans.0, spans.1);
        chunk.dims[a].push(code_a);
        chunk.dims[b].push(code_b);
    }
    for &a in &header.singles {
        let code = dicts.code(a, text, record.span(header.dims[a]));
        chunk.dims[a].push(code);
    }
    chunk.quantity.push(quantity);
    chunk.revenue.push(i128::from(quantity) * price);
    Ok(())
}

/// Gives a new chunk its dimension columns, and the dictionaries one pair cache per pair of the header.
#[cold]
#[inline(never)]
fn size_for(header: &Header, dicts: &mut Dictionaries, chunk: &mut Chunk) {
    chunk.dims.resize_with(dicts.dims.len(), || Vec::with_capacity(chunk.hour.capacity()));
    dicts.pairs.resize_with(header.pairs.len(), PairDictionary::default);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &[&[u8]]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    fn header(names: &[&str]) -> Result<Header, InputError> {
        Header::resolve(&rec(&names.iter().map(|s| s.as_bytes()).collect::<Vec<_>>()))
    }

    #[test]
    fn header_resolution() {
        let h = header(&[" SKU", "Quantity ", "unit_price", "EVENT_TIME", "order_id", "Notes"]).unwrap();
        assert_eq!(h.width, 6);
        assert_eq!(h.position(Field::Sku), Some(0));
        assert_eq!(h.position(Field::EventTime), Some(3));
        assert_eq!(h.position(Field::CustomerId), None);
        assert_eq!(h.ignored, vec!["Notes".to_string()]);
        let h = header(&["event_time", "order_id", "sku", "quantity", "unit_price", "", " "]).unwrap();
        assert!(h.ignored.is_empty(), "empty names are not listed: {:?}", h.ignored);
        assert_eq!(trim("\u{a0} de\u{3000}".as_bytes()), b"de");
        assert_eq!(trim(b" \t x y \r"), b"x y");

        match header(&["event_time", "order_id", "sku"]) {
            Err(InputError::MissingColumns { missing }) => assert_eq!(missing, vec!["quantity", "unit_price"]),
            other => panic!("expected missing columns, got {other:?}"),
        }
        match header(&["event_time", "order_id", "sku", "quantity", "unit_price", "Sku "]) {
            Err(InputError::DuplicateColumn { column }) => assert_eq!(column, "sku"),
            other => panic!("expected duplicate column, got {other:?}"),
        }
        let bad = Header::resolve(&rec(&[b"event_time", b"\xff\xfe"]));
        assert!(matches!(bad, Err(InputError::InvalidHeader { .. })), "{bad:?}");
    }

    #[test]
    fn reject_order_and_normalisation() {
        let h =
            header(&["event_time", "order_id", "sku", "quantity", "unit_price", "customer_id", "country", "channel"])
                .unwrap();
        let mut dicts = Dictionaries::default();
        let mut chunk = Chunk::default();
        type Case<'a> = (&'a [&'a [u8]], Result<(), RejectReason>);
        let cases: &[Case] = &[
            (&[b"2026-11-22T13:00:00Z", b"o1", b"s1", b"2", b"1.50", b"c1", b" de ", b"Email"], Ok(())),
            (&[b"2026-11-22T13:00:00Z", b"o1", b"s1", b"2", b"1.50", b"", b"DE", b"email "], Ok(())),
            (&[b"2026-11-22T13:00:00Z", b"o1"], Err(RejectReason::FieldCount)),
            (&[b"bad", b"", b"", b"x", b"y", b"", b"\xff", b""], Err(RejectReason::InvalidUtf8)),
            (&[b"bad", b"", b"", b"x", b"y", b"", b"", b""], Err(RejectReason::EventTimeInvalid)),
            (&[b"2026-11-22T13:00:00Z", b" ", b"", b"x", b"y", b"", b"", b""], Err(RejectReason::OrderIdMissing)),
            (&[b"2026-11-22T13:00:00Z", b"o", b"", b"x", b"y", b"", b"", b""], Err(RejectReason::SkuMissing)),
            (&[b"2026-11-22T13:00:00Z", b"o", b"s", b"x", b"y", b"", b"", b""], Err(RejectReason::QuantityInvalid)),
            (&[b"2026-11-22T13:00:00Z", b"o", b"s", b"1", b"y", b"", b"", b""], Err(RejectReason::UnitPriceInvalid)),
        ];
        for (fields, want) in cases {
            let record = crate::read::records::OwnedRecord::from_fields(fields);
            assert_eq!(accept_row(&h, &record.view(), &mut dicts, &mut chunk), *want, "case {fields:?}");
        }
        crate::aggregate::intern::IdInterners::default().intern_chunk(&mut chunk);
        assert_eq!(chunk.order, vec![0, 0]);
        assert_eq!(chunk.len(), 2);
        assert_eq!(chunk.revenue, vec![300, 300]);
        assert_eq!(chunk.customer[1], GUEST);
        let country = chunk.dims[Dim::COUNTRY.index].clone();
        assert_eq!(country[0], country[1], "' de ' and 'DE' normalise to one code");
        assert_eq!(dicts.value(Dim::COUNTRY, country[0]), "DE");
        assert_eq!(dicts.value(Dim::CHANNEL, chunk.dims[Dim::CHANNEL.index][0]), "email");
        assert_eq!(dicts.value(Dim::DEVICE, chunk.dims[Dim::DEVICE.index][0]), "unknown");
    }

    /// Fields are looked up and parsed untrimmed where that cannot change the answer: every field padded with
    /// whitespace (ASCII and Unicode, one or both sides, side by side with its pair or quoted apart) must
    /// give the same reject reason, or the same row with the same dimension values, as the bare field.
    #[test]
    fn padded_fields_give_the_same_rows_as_bare_ones() {
        let names = "event_time,order_id,customer_id,sku,category,quantity,unit_price,channel,campaign,country,device";
        let h = header(&names.split(',').collect::<Vec<_>>()).unwrap();
        let bare: &[[&str; 11]] = &[
            ["2026-11-22T13:05:09Z", "o1", "c1", "SKU-1", "toys", "2", "1.50", "Email", "winback", "de", "mobile"],
            ["2026-11-22 14:05:09", "o2", "", "SKU-2", "home garden", "1", "12", "web", "", "US", ""],
            ["2026-11-22T14:05:09+01:00", "o3", "c3", "SKU-3", "", "0", "0.5", "", "x", "", "tablet"],
            [
                "2026-11-22T13:05:09.25Z",
                "o4",
                "c4",
                "a-rather-long-sku-value",
                "electronics",
                "7",
                "9.99",
                "affiliate",
                "partner_42",
                "FR",
                "desktop",
            ],
            ["bad", "o5", "c5", "s", "c", "1", "1", "a", "b", "c", "d"],
            ["2026-11-22T13:05:09Z", "", "c6", "s", "c", "1", "1", "a", "b", "c", "d"],
            ["2026-11-22T13:05:09Z", "o7", "c7", "", "c", "1", "1", "a", "b", "c", "d"],
            ["2026-11-22T13:05:09Z", "o8", "c8", "s", "c", "x", "1", "a", "b", "c", "d"],
            ["2026-11-22T13:05:09Z", "o9", "c9", "s", "c", "1", "1.234", "a", "b", "c", "d"],
        ];
        let pads = ["", " ", "\t", "  ", "\u{a0}", "\u{3000}"];
        let mut text = format!("{names}\n");
        let mut x = 5u64;
        for row in bare {
            text.push_str(&row.join(","));
            text.push('\n');
            for round in 0..40 {
                let fields: Vec<String> = row
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        crate::testing::xorshift(&mut x);
                        let (before, after) = (pads[x as usize % pads.len()], pads[(x >> 8) as usize % pads.len()]);
                        let padded = format!("{before}{f}{after}");
                        // Some fields quoted, so that a pair's values are not one byte apart.
                        if round % 5 == 4 && i % 3 == 0 {
                            format!("\"{padded}\"")
                        } else {
                            padded
                        }
                    })
                    .collect();
                text.push_str(&fields.join(","));
                text.push('\n');
            }
        }
        let mut reader = crate::read::records::RecordReader::new(text.as_bytes(), 1 << 20);
        reader.next_record().unwrap().expect("the header");
        let mut dicts = Dictionaries::default();
        let mut results = Vec::new();
        while reader.next_record().unwrap().is_some() {
            let mut chunk = Chunk::default();
            let result = accept_row(&h, &reader.record(), &mut dicts, &mut chunk);
            let values: Vec<String> = Dim::DEFAULTS
                .iter()
                .flat_map(|&d| chunk.dims.get(d.index).and_then(|c| c.first()).map(|&c| dicts.value(d, c).to_string()))
                .collect();
            results.push((result, chunk.hour, chunk.ids, chunk.id_ends, values, chunk.quantity, chunk.revenue));
        }
        assert_eq!(results.len(), bare.len() * 41);
        for (i, group) in results.chunks(41).enumerate() {
            for (j, padded) in group.iter().enumerate().skip(1) {
                assert_eq!(padded, &group[0], "row {i} ({:?}), padding {j}", bare[i]);
            }
        }
        assert!(results.chunks(41).filter(|g| g[0].0.is_ok()).count() == 4, "four bare rows are valid");
    }

    #[test]
    fn ids_of_every_length_are_pushed_whole() {
        for mut chunk in [Chunk::default(), Chunk::with_capacity(4)] {
            let mut want = Vec::new();
            for o in 0..=40usize {
                for c in (0..=40usize).rev() {
                    let order: Vec<u8> = (0..o).map(|i| b'a' + (i % 26) as u8).collect();
                    let customer: Vec<u8> = (0..c).map(|i| b'A' + ((i + o) % 26) as u8).collect();
                    chunk.push_ids(&order, &customer);
                    want.push(order);
                    want.push(customer);
                }
            }
            assert_eq!(chunk.ids, want.concat(), "the ids back to back, nothing else");
            let mut start = 0;
            for (i, &end) in chunk.id_ends.iter().enumerate() {
                assert_eq!(&chunk.ids[start..end as usize], &want[i][..], "id {i}");
                start = end as usize;
            }
        }
    }

    #[test]
    fn pair_lookups_give_every_value_its_own_code() {
        // Dimension columns side by side, with the text between fields as the one-pass scan leaves it: a
        // comma (pair keys), or the quotes and comma of quoted fields, or nothing (csv_core's fields back
        // to back), which take the lookups value by value.
        let names = ["event_time", "order_id", "sku", "category", "quantity", "unit_price", "channel", "campaign"];
        let h = header(&[&names[..], &["country", "device"]].concat()).unwrap();
        let (mut dicts, mut chunk) = (Dictionaries::default(), Chunk::default());
        let mut x = 99u64;
        let mut next = |n: usize| {
            crate::testing::xorshift(&mut x);
            (x % n as u64) as usize
        };
        // `a` and `a\0` differ only in the length the key holds.
        let categories = ["toys", " Toys", "TOYS ", "", "garden-and-outdoor-living", "a,b", "a", "\0", "a\0"];
        // `a,b` then `c`, and `a` then `b,c`: the same bytes from the first value's start to the second's end.
        let channels = ["Email", "email", " web", "a,b", "a", ""];
        let campaigns = ["c", "b,c", "Winback", "spring-sale-2026", "c "];
        let (countries, devices) = (["de", "DE ", "us", "\u{a0}fr"], ["mobile", "Desktop", "", "tv"]);
        let mut expected = Vec::new();
        for _ in 0..20_000 {
            // More SKU and category pairs than a pair cache takes, so that pair stops being cached midway.
            let sku = format!("S{}", next(1500));
            let row = [
                sku.as_str(),
                categories[next(categories.len())],
                channels[next(channels.len())],
                campaigns[next(campaigns.len())],
                countries[next(countries.len())],
                devices[next(devices.len())],
            ];
            let fields: [&str; 10] =
                ["2026-11-22T13:00:00Z", "o1", row[0], row[1], "1", "1.00", row[2], row[3], row[4], row[5]];
            let (mut text, mut spans) = (Vec::new(), Vec::new());
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    text.extend_from_slice([&b","[..], b"\",\"", b""][next(3)]);
                }
                spans.push((text.len(), text.len() + field.len()));
                text.extend_from_slice(field.as_bytes());
            }
            accept_row(&h, &Record::new(&text, &spans), &mut dicts, &mut chunk).unwrap();
            let cases = [Case::Keep, Case::Lower, Case::Lower, Case::Lower, Case::Upper, Case::Lower];
            let normal = |dim: Dim, raw: &str| normalise(cases[dim.index], raw.trim());
            expected.push(std::array::from_fn::<_, 6, _>(|d| normal(Dim::DEFAULTS[d], row[d])));
        }
        for (i, want) in expected.iter().enumerate() {
            for dim in Dim::DEFAULTS {
                assert_eq!(dicts.value(dim, chunk.dims[dim.index][i]), want[dim.index], "row {i} {dim:?}");
            }
        }
        assert!(dicts.pairs[0].full, "SKU and category pairs outgrew their cache");
        assert!(!dicts.pairs[1].full && dicts.pairs[1].seen.len() > 10, "channel and campaign pairs are cached");
        assert_eq!(dicts.value(Dim::COUNTRY, chunk.dims[Dim::COUNTRY.index][0]), expected[0][4]);
        assert_eq!((h.pairs.clone(), h.singles.clone()), (vec![(0, 1), (2, 3), (4, 5)], vec![]), "side by side");
    }

    /// Settings with renamed fields, a list of accepted names, and dimensions of their own.
    fn custom() -> Settings {
        use crate::settings::{DimensionSpec, InputMapping};
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let input = InputMapping {
            event_time: names(&["created_at"]),
            order_id: names(&["order_number", "order_no"]),
            sku: names(&["product_sku"]),
            quantity: names(&["qty"]),
            unit_price: names(&["price"]),
            customer_id: names(&["email"]),
            ..InputMapping::default_mapping()
        };
        let dim = |name: &str, column: &str, case| DimensionSpec { name: name.into(), columns: names(&[column]), case };
        let dims = vec![dim("store", "Store_ID", Case::Keep), dim("channel", "utm_source", Case::Lower)];
        Settings::new(input, dims, Vec::new())
    }

    #[test]
    fn a_mapped_header_resolves_its_names_and_pairs_neighbouring_dimensions() {
        let s = custom();
        let resolve =
            |names: &[&str]| Header::resolve_with(&rec(&names.iter().map(|n| n.as_bytes()).collect::<Vec<_>>()), &s);
        // store_id and utm_source side by side: one pair; the sku alone.
        let h =
            resolve(&["created_at", "ORDER_NO", "product_sku", "qty", "price", "store_id", "utm_source", "x"]).unwrap();
        assert_eq!(h.position(Field::OrderId), Some(1), "the second accepted name");
        assert_eq!(h.position(Field::CustomerId), None);
        assert_eq!((h.pairs.clone(), h.singles.clone()), (vec![(1, 2)], vec![0]));
        assert_eq!(h.ignored, vec!["x".to_string()]);
        // Apart, and one dimension missing: each alone.
        let h = resolve(&["utm_source", "created_at", "order_number", "product_sku", "qty", "price"]).unwrap();
        assert_eq!((h.pairs.clone(), h.singles.clone()), (Vec::<(usize, usize)>::new(), vec![2, 0, 1]));
        // The contract's own names are not accepted once a field is mapped.
        match resolve(&["event_time", "order_id", "sku", "quantity", "unit_price"]) {
            Err(InputError::MissingColumns { missing }) => assert_eq!(
                missing,
                vec![
                    "event_time (column created_at)",
                    "order_id (one of the columns order_number, order_no)",
                    "sku (column product_sku)",
                    "quantity (column qty)",
                    "unit_price (column price)"
                ]
            ),
            other => panic!("expected missing columns, got {other:?}"),
        }
        // Two accepted names of one field both present: ambiguous.
        match resolve(&["created_at", "order_number", "order_no", "product_sku", "qty", "price"]) {
            Err(InputError::DuplicateColumn { column }) => assert_eq!(column, "order_id (order_number and order_no)"),
            other => panic!("expected a duplicate column, got {other:?}"),
        }
        // Values take their dimension's case: the store keeps it, the channel is lowercased.
        let h =
            resolve(&["created_at", "order_number", "product_sku", "qty", "price", "store_id", "utm_source"]).unwrap();
        let (mut dicts, mut chunk) = (Dictionaries::new(&s), Chunk::default());
        let row: [&[u8]; 7] = [b"2026-11-22T13:00:00Z", b"o1", b"S1", b"1", b"2.00", b"Berlin-01", b"NewsLetter"];
        accept_row(&h, &crate::read::records::OwnedRecord::from_fields(&row).view(), &mut dicts, &mut chunk).unwrap();
        let store = Dim { index: 1, name: "store" };
        let channel = Dim { index: 2, name: "channel" };
        assert_eq!(dicts.value(store, chunk.dims[1][0]), "Berlin-01");
        assert_eq!(dicts.value(channel, chunk.dims[2][0]), "newsletter");
        assert_eq!(dicts.value(Dim::SKU, chunk.dims[0][0]), "S1");
    }
}
