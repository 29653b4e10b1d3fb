//! Allocation-free parsers for the values of the input contract: timestamps, quantities and prices.
//!
//! Every parser takes the already-trimmed bytes of one field and returns `None` when the value breaks the
//! contract. They run once per row on the hot path, so none of them allocates.

/// Microseconds in one hour.
pub const MICROS_PER_HOUR: i64 = 3_600_000_000;
/// The largest accepted quantity.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// The largest accepted unit price, in cents (1e12 currency units).
pub const MAX_PRICE_CENTS: i128 = 1_000_000_000_000 * 100;

/// Parses an event time into microseconds since the Unix epoch, UTC.
///
/// Accepted: RFC 3339 (`2026-11-22T13:05:09Z`, `…+01:00`, fractional seconds allowed) and
/// `YYYY-MM-DD HH:MM:SS[.fraction]` / `YYYY-MM-DDTHH:MM:SS[.fraction]` without offset, taken as UTC.
/// Fractions beyond microseconds are truncated.
pub fn event_time_micros(s: &[u8]) -> Option<i64> {
    event_time_micros_with(s, &mut DateMemo::default())
}

/// The last valid date (`YYYY-MM-DD`, the first 10 bytes of a time) [`event_time_micros_with`] parsed, and
/// its day number. The rows of an hourly export share one or two dates, so most rows skip parsing and
/// checking the date.
#[derive(Clone, Copy, Debug, Default)]
pub struct DateMemo {
    /// The date's 10 bytes (8 + 2); none before the first valid date.
    date: Option<(u64, u16)>,
    days: i64,
    /// For a [`TimePattern`]: the last valid date as year, month and day packed; `days` is then its day
    /// number. Only one of `date` and `civil` is set at a time.
    civil: Option<u64>,
}

/// [`event_time_micros`], reusing the date of the previous call through `memo`.
pub fn event_time_micros_with(s: &[u8], memo: &mut DateMemo) -> Option<i64> {
    if s.len() < 19 {
        return None;
    }
    let date = (
        u64::from_le_bytes(s[0..8].try_into().expect("8 bytes")),
        u16::from_le_bytes(s[8..10].try_into().expect("2 bytes")),
    );
    if Some(date) != memo.date {
        let year = digits(&s[0..4])? as i64;
        if s[4] != b'-' || s[7] != b'-' {
            return None;
        }
        let month = digits(&s[5..7])? as u32;
        let day = digits(&s[8..10])? as u32;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        *memo = DateMemo { date: Some(date), days: days_from_civil(year, month, day), civil: None };
    }
    if !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute, second) = time_of_day(u64::from_le_bytes(s[11..19].try_into().expect("8 bytes")))?;
    let mut rest = &s[19..];
    let mut micros: i64 = 0;
    if let Some((&b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, &b) in frac[..n].iter().enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(b - b'0');
            }
        }
        for _ in n..6 {
            micros *= 10;
        }
        rest = &frac[n..];
    }
    let offset_secs: i64 = match rest {
        [] => 0,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])? as i64;
            let om = digits(&[*m1, *m2])? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let secs = memo.days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    // The UTC instant must stay within years 0000..=9999, so hours and partitions stay well-formed.
    (MIN_SECS..=MAX_SECS).contains(&secs).then_some(secs * 1_000_000 + micros)
}

/// `HH:MM:SS` (the 8 bytes as a little-endian word) as hours, minutes and seconds, each in range: every
/// byte checked and the three numbers read at once.
#[inline(always)]
fn time_of_day(word: u64) -> Option<(i64, i64, i64)> {
    /// The bytes of `HH:MM:SS` that are colons; the others must be digits.
    const COLONS: u64 = 0x0000_FF00_00FF_0000;
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    // A digit has the high nibble 3 and a low nibble that does not reach 16 with 6 added (no byte carries).
    let not_digit =
        ((word & !LOW) ^ 0x3030_3030_3030_3030) | (((word & LOW) + 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010);
    if not_digit & !COLONS != 0 || word & COLONS != 0x0000_3A00_003A_0000 {
        return None;
    }
    let d = (word & !COLONS) - 0x3030_0030_3000_3030; // each digit's value in its byte, colons 0
    let pairs = d * 10 + (d >> 8); // bytes 0, 3 and 6 hold the two-digit numbers (at most 99: no carries)
    let (hour, minute, second) = (pairs & 0xFF, (pairs >> 24) & 0xFF, (pairs >> 48) & 0xFF);
    (hour <= 23 && minute <= 59 && second <= 59).then_some((hour as i64, minute as i64, second as i64))
}

/// How the event times of an export are written, ready to parse ([`TimeFormat::parse`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339 and its forms without offset, as [`event_time_micros`] reads them (the default).
    #[default]
    Rfc3339,
    /// Seconds since the Unix epoch: `[-]digits[.digits]`. Fraction digits past microseconds are truncated
    /// (toward the past).
    UnixSeconds,
    /// Milliseconds since the Unix epoch: `[-]digits`.
    UnixMillis,
    /// A strftime-like pattern, taken as UTC ([`TimePattern`]).
    Pattern(TimePattern),
}

impl TimeFormat {
    /// A format as written in a config: `rfc3339`, `unix_seconds`, `unix_millis`, or a pattern with `%`
    /// directives ([`TimePattern::compile`]).
    pub fn from_name(name: &str) -> Result<Self, String> {
        match name {
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "unix_seconds" => Ok(TimeFormat::UnixSeconds),
            "unix_millis" => Ok(TimeFormat::UnixMillis),
            _ if name.contains('%') => TimePattern::compile(name).map(TimeFormat::Pattern),
            _ => Err(format!(
                "unknown time format {name:?}: use rfc3339, unix_seconds, unix_millis or a pattern such as \
                 \"%d/%m/%Y %H:%M\""
            )),
        }
    }

    /// Parses the trimmed bytes of one field into microseconds since the epoch, UTC; `None` when the value
    /// does not fit the format, names an impossible date or time (`31/02`, `24:00`), or falls outside the
    /// years 0000..=9999. `memo` keeps the last date's day number between calls (one memo per stream).
    #[inline]
    pub fn parse(&self, field: &[u8], memo: &mut DateMemo) -> Option<i64> {
        match self {
            TimeFormat::Rfc3339 => event_time_micros_with(field, memo),
            TimeFormat::UnixSeconds => unix_seconds_micros(field),
            TimeFormat::UnixMillis => unix_millis_micros(field),
            TimeFormat::Pattern(pattern) => pattern.parse(field, memo),
        }
    }
}

/// Microseconds of `[-]digits[.digits]` seconds since the epoch, within years 0000..=9999.
fn unix_seconds_micros(s: &[u8]) -> Option<i64> {
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let int = strip_leading_zeros(int);
    if int.len() > 12 {
        return None;
    }
    let secs = if int.is_empty() { 0 } else { digits(int)? as i64 };
    let (mut micros, mut dropped) = (0i64, false);
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for (i, &b) in frac.iter().enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(b - b'0');
            } else {
                dropped |= b != b'0';
            }
        }
        for _ in frac.len()..6 {
            micros *= 10;
        }
    }
    let value = secs * 1_000_000 + micros;
    let value = if negative { -value - i64::from(dropped) } else { value };
    in_years(value)
}

/// Microseconds of `[-]digits` milliseconds since the epoch, within years 0000..=9999.
fn unix_millis_micros(s: &[u8]) -> Option<i64> {
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s = strip_leading_zeros(s);
    if s.len() > 15 {
        return None;
    }
    let millis = if s.is_empty() { 0 } else { digits(s)? as i64 };
    in_years(if negative { -millis } else { millis } * 1000)
}

/// `micros` when its second lies in years 0000..=9999 (as for [`event_time_micros`]).
fn in_years(micros: i64) -> Option<i64> {
    (MIN_SECS..=MAX_SECS).contains(&micros.div_euclid(1_000_000)).then_some(micros)
}

/// A compiled strftime-like pattern for event times without offset, taken as UTC, such as
/// `%d/%m/%Y %H:%M` or `%m/%d/%Y %I:%M %p`.
///
/// Directives: `%Y` four-digit year; `%y` two-digit year (69–99 → 1969–1999, 00–68 → 2000–2068); `%m`
/// month; `%b` English month abbreviation (`Jan`), `%B` full month name (`January`), either case; `%d`
/// day; `%H` hour 0–23; `%I` hour 1–12 with `%p` (`AM`/`PM`, either case); `%M` minute; `%S` second;
/// `%f` fraction of the second (one or more digits, truncated to microseconds); `%%` a percent sign.
/// `%m %d %H %I %M %S` take two digits, or one when no digit follows it (`1/2/2026 9:05`). Any other
/// character must appear as written. A pattern needs a year, a month, a day and an hour; minutes and
/// seconds default to 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimePattern {
    items: Vec<Item>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Literal(u8),
    Year4,
    Year2,
    Month,
    MonthName { full: bool },
    Day,
    Hour24,
    Hour12,
    AmPm,
    Minute,
    Second,
    Fraction,
}

const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const SUPPORTED_DIRECTIVES: &str = "%Y %y %m %b %B %d %H %I %p %M %S %f %%";

impl TimePattern {
    /// Compiles `pattern`; the error says what is wrong and where (positions count characters from 1).
    pub fn compile(pattern: &str) -> Result<TimePattern, String> {
        let mut items = Vec::new();
        // For each field (year, month, day, hour, minute, second, fraction, AM/PM): where it was given.
        let mut given: [Option<(usize, char)>; 8] = [None; 8];
        let mut chars = pattern.char_indices().enumerate().peekable();
        while let Some((n, (at, c))) = chars.next() {
            let position = n + 1;
            if c != '%' {
                items.extend(pattern[at..at + c.len_utf8()].bytes().map(Item::Literal));
                continue;
            }
            let Some((_, (_, directive))) = chars.next() else {
                return Err(format!("a lone % at position {position} ends the pattern; write %% for a percent sign"));
            };
            let (item, field) = match directive {
                '%' => {
                    items.push(Item::Literal(b'%'));
                    continue;
                }
                'Y' => (Item::Year4, 0),
                'y' => (Item::Year2, 0),
                'm' => (Item::Month, 1),
                'b' => (Item::MonthName { full: false }, 1),
                'B' => (Item::MonthName { full: true }, 1),
                'd' => (Item::Day, 2),
                'H' => (Item::Hour24, 3),
                'I' => (Item::Hour12, 3),
                'M' => (Item::Minute, 4),
                'S' => (Item::Second, 5),
                'f' => (Item::Fraction, 6),
                'p' => (Item::AmPm, 7),
                other => {
                    return Err(format!(
                        "unknown directive %{other} at position {position}; supported: {SUPPORTED_DIRECTIVES}"
                    ))
                }
            };
            if let Some((earlier, first)) = given[field] {
                return Err(format!(
                    "%{directive} at position {position} repeats the field of %{first} at position {earlier}"
                ));
            }
            given[field] = Some((position, directive));
            items.push(item);
        }
        let missing: Vec<&str> = [
            (0, "a year (%Y or %y)"),
            (1, "a month (%m, %b or %B)"),
            (2, "a day (%d)"),
            (3, "an hour (%H, or %I with %p)"),
        ]
        .iter()
        .filter(|(field, _)| given[*field].is_none())
        .map(|(_, what)| *what)
        .collect();
        if !missing.is_empty() {
            return Err(format!("the pattern {pattern:?} lacks {}", missing.join(", ")));
        }
        match (given[3], given[7]) {
            (Some((at, 'I')), None) => Err(format!("%I at position {at} needs %p (AM/PM)")),
            (Some((at, 'H')), Some((p, _))) => {
                Err(format!("%p at position {p} goes with %I, not with the 24-hour %H at position {at}"))
            }
            _ => match (given[5], given[6]) {
                (None, Some((at, _))) => Err(format!("%f at position {at} needs the seconds (%S)")),
                _ => Ok(TimePattern { items }),
            },
        }
    }

    /// [`TimeFormat::parse`] with this pattern.
    pub fn parse(&self, s: &[u8], memo: &mut DateMemo) -> Option<i64> {
        let mut at = 0;
        let (mut year, mut month, mut day) = (0i64, 0u32, 0u32);
        let (mut hour, mut minute, mut second, mut micros) = (0i64, 0i64, 0i64, 0i64);
        let mut pm = None;
        for item in &self.items {
            match *item {
                Item::Literal(b) => {
                    if s.get(at) != Some(&b) {
                        return None;
                    }
                    at += 1;
                }
                Item::Year4 => {
                    year = digits(s.get(at..at + 4)?)? as i64;
                    at += 4;
                }
                Item::Year2 => {
                    let y = digits(s.get(at..at + 2)?)? as i64;
                    year = if y < 69 { 2000 + y } else { 1900 + y };
                    at += 2;
                }
                Item::Month => month = one_or_two_digits(s, &mut at)? as u32,
                Item::MonthName { full } => month = month_name(s, &mut at, full)?,
                Item::Day => day = one_or_two_digits(s, &mut at)? as u32,
                Item::Hour24 => hour = one_or_two_digits(s, &mut at)?,
                Item::Hour12 => {
                    hour = one_or_two_digits(s, &mut at)?;
                    if !(1..=12).contains(&hour) {
                        return None;
                    }
                }
                Item::AmPm => {
                    let word = s.get(at..at + 2)?;
                    pm = Some(match [word[0].to_ascii_uppercase(), word[1].to_ascii_uppercase()] {
                        [b'A', b'M'] => false,
                        [b'P', b'M'] => true,
                        _ => return None,
                    });
                    at += 2;
                }
                Item::Minute => minute = one_or_two_digits(s, &mut at)?,
                Item::Second => second = one_or_two_digits(s, &mut at)?,
                Item::Fraction => {
                    let n = s[at..].iter().take_while(|b| b.is_ascii_digit()).count();
                    if n == 0 {
                        return None;
                    }
                    for (i, &b) in s[at..at + n].iter().take(6).enumerate() {
                        micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
                    }
                    at += n;
                }
            }
        }
        if at != s.len() {
            return None;
        }
        if let Some(pm) = pm {
            hour = hour % 12 + if pm { 12 } else { 0 };
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let key = ((year as u64) << 16) | (u64::from(month) << 8) | u64::from(day);
        if memo.civil != Some(key) {
            if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
                return None;
            }
            *memo = DateMemo { date: None, days: days_from_civil(year, month, day), civil: Some(key) };
        }
        let secs = memo.days * 86_400 + hour * 3600 + minute * 60 + second;
        (MIN_SECS..=MAX_SECS).contains(&secs).then_some(secs * 1_000_000 + micros)
    }
}

/// The number of two digits at `s[*at]`, or of one when no digit follows it; moves `at` past them.
#[inline]
fn one_or_two_digits(s: &[u8], at: &mut usize) -> Option<i64> {
    let first = *s.get(*at)?;
    if !first.is_ascii_digit() {
        return None;
    }
    let value = i64::from(first - b'0');
    match s.get(*at + 1) {
        Some(&second) if second.is_ascii_digit() => {
            *at += 2;
            Some(value * 10 + i64::from(second - b'0'))
        }
        _ => {
            *at += 1;
            Some(value)
        }
    }
}

/// The month (1..=12) whose English name (`full`) or three-letter abbreviation is at `s[*at]`, in any
/// case; moves `at` past it.
fn month_name(s: &[u8], at: &mut usize, full: bool) -> Option<u32> {
    let rest = s.get(*at..)?;
    for (i, name) in MONTH_NAMES.iter().enumerate() {
        let name = if full { name.as_bytes() } else { &name.as_bytes()[..3] };
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
            *at += name.len();
            return Some(i as u32 + 1);
        }
    }
    None
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in seconds since the epoch.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

/// Truncates a timestamp in microseconds to the start of its UTC hour.
pub fn hour_start(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_HOUR) * MICROS_PER_HOUR
}

/// Parses a quantity: base-10 digits only, 0..=1,000,000.
pub fn quantity(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s = strip_leading_zeros(s);
    if s.len() > 7 {
        return None;
    }
    let v = if s.is_empty() { 0 } else { digits(s)? as i64 };
    (v <= MAX_QUANTITY).then_some(v)
}

/// Parses a unit price into cents: `digits[.digits]`, at most two fraction digits once trailing zeros are
/// dropped, at most 1e12. No sign, exponent, currency symbol or thousands separator.
pub fn price_cents(s: &[u8]) -> Option<i128> {
    plain_price_cents(s).or_else(|| price_cents_checked(s))
}

/// The character between the units and the fraction of a price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecimalSeparator {
    /// `19.99` (the default).
    #[default]
    Point,
    /// `19,99`.
    Comma,
}

impl DecimalSeparator {
    /// The separator's byte.
    pub fn byte(self) -> u8 {
        match self {
            DecimalSeparator::Point => b'.',
            DecimalSeparator::Comma => b',',
        }
    }
}

/// [`price_cents`] with the given decimal separator: with [`DecimalSeparator::Comma`], `19,99` is 1999
/// cents and a point is not accepted anywhere (`19.99` and `1.000,50` are rejected, as a comma is with
/// the point: neither separator doubles as a thousands separator). The other rules are the same.
#[inline]
pub fn price_cents_with(s: &[u8], separator: DecimalSeparator) -> Option<i128> {
    match separator {
        DecimalSeparator::Point => price_cents(s),
        DecimalSeparator::Comma => plain_price_cents_by(s, b',').or_else(|| price_cents_checked_by(s, b',')),
    }
}

/// [`price_cents`] of the common shapes (`487.74`, `318.750`, `12`: up to 16 bytes, at most three fraction
/// digits) in one pass over the bytes; `None` for anything else, which [`price_cents_checked`] then decides.
/// Every price it accepts, the checked parser accepts with the same value (a test compares the two).
#[inline(always)]
fn plain_price_cents(s: &[u8]) -> Option<i128> {
    plain_price_cents_by(s, b'.')
}

/// [`plain_price_cents`] with the decimal separator `point`.
#[inline(always)]
fn plain_price_cents_by(s: &[u8], point_byte: u8) -> Option<i128> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    // Every digit in one number (at most 16 digits: no overflow), and where the point is.
    let (mut value, mut point) = (0u64, s.len());
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'0'..=b'9' => value = value * 10 + u64::from(b - b'0'),
            b if b == point_byte && point == s.len() && i > 0 => point = i,
            _ => return None,
        }
    }
    let cents = match s.len() - point {
        0 => value * 100, // no point
        2 => value * 10,  // one fraction digit
        3 => value,
        4 if value % 10 == 0 => value / 10,
        _ => return None, // a point at the end, a third significant fraction digit, or more digits
    };
    let cents = i128::from(cents);
    (cents <= MAX_PRICE_CENTS).then_some(cents)
}

/// [`price_cents`] of any input: each rule checked on its own.
fn price_cents_checked(s: &[u8]) -> Option<i128> {
    price_cents_checked_by(s, b'.')
}

/// [`price_cents_checked`] with the decimal separator `point`.
fn price_cents_checked_by(s: &[u8], point: u8) -> Option<i128> {
    let (int, frac) = match s.iter().position(|&b| b == point) {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    if int.is_empty() {
        return None;
    }
    let int = strip_leading_zeros(int);
    if int.len() > 13 {
        return None;
    }
    let units = if int.is_empty() { 0 } else { digits(int)? } as i128;
    let mut cents = 0i128;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let significant = &frac[..frac.len() - frac.iter().rev().take_while(|&&b| b == b'0').count()];
        if significant.len() > 2 {
            return None;
        }
        for i in 0..2 {
            cents = cents * 10 + significant.get(i).map_or(0, |b| i128::from(b - b'0'));
        }
    }
    let total = units * 100 + cents;
    (total <= MAX_PRICE_CENTS).then_some(total)
}

/// Formats an amount in cents as a decimal string with two fraction digits (`1234` -> `"12.34"`).
pub fn format_cents(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Formats microseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (sub-second part dropped).
pub fn format_rfc3339(micros: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(micros);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The Hive partition values of an hour start: (`YYYY-MM-DD`, `HH`).
pub fn partition_values(hour_start_micros: i64) -> (String, String) {
    let (y, mo, d, h, _, _) = civil(hour_start_micros);
    (format!("{y:04}-{mo:02}-{d:02}"), format!("{h:02}"))
}

fn civil(micros: i64) -> (i64, u32, u32, i64, i64, i64) {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

/// All-digit bytes to a number (up to 18 digits), or `None` on any other byte.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn strip_leading_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b'0').count();
    &s[n..]
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_795_352_400_000_000; // 2026-11-22T13:00:00Z

    #[test]
    fn time_of_day_checks_every_byte() {
        // The reference: each field parsed and range-checked byte by byte.
        let reference = |t: &[u8; 8]| -> Option<(i64, i64, i64)> {
            if t[2] != b':' || t[5] != b':' {
                return None;
            }
            let two = |i: usize| {
                (t[i].is_ascii_digit() && t[i + 1].is_ascii_digit())
                    .then(|| i64::from((t[i] - b'0') * 10 + t[i + 1] - b'0'))
            };
            let (h, m, s) = (two(0)?, two(3)?, two(6)?);
            (h <= 23 && m <= 59 && s <= 59).then_some((h, m, s))
        };
        for h in 0..100 {
            for m in 0..100 {
                let text = format!("{h:02}:{m:02}:{:02}", (h * 7 + m) % 100);
                let t: [u8; 8] = text.as_bytes().try_into().unwrap();
                assert_eq!(time_of_day(u64::from_le_bytes(t)), reference(&t), "{text}");
            }
        }
        for (h, m, s) in [(0, 0, 0), (23, 59, 59), (13, 5, 9), (24, 0, 0), (9, 60, 1), (1, 2, 60), (99, 99, 99)] {
            let text = format!("{h:02}:{m:02}:{s:02}");
            let t: [u8; 8] = text.as_bytes().try_into().unwrap();
            // Every byte replaced by every value.
            for at in 0..8 {
                for value in 0..=255u8 {
                    let mut t = t;
                    t[at] = value;
                    assert_eq!(time_of_day(u64::from_le_bytes(t)), reference(&t), "{:?}", String::from_utf8_lossy(&t));
                }
            }
        }
    }

    #[test]
    fn event_times() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2026-11-22T13:00:00Z", Some(BASE)),
            ("2026-11-22T13:05:09Z", Some(BASE + 309_000_000)),
            ("2026-11-22t13:05:09z", Some(BASE + 309_000_000)),
            ("2026-11-22 13:05:09", Some(BASE + 309_000_000)),
            ("2026-11-22T13:05:09", Some(BASE + 309_000_000)),
            ("2026-11-22T14:05:09+01:00", Some(BASE + 309_000_000)),
            ("2026-11-22T08:05:09-05:00", Some(BASE + 309_000_000)),
            ("2026-11-22T13:05:09.5Z", Some(BASE + 309_500_000)),
            ("2026-11-22T13:05:09.123456789Z", Some(BASE + 309_123_456)),
            ("2026-11-22 13:05:09.25", Some(BASE + 309_250_000)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-31T00:00:00Z", None),
            ("2026-11-22T24:00:00Z", None),
            ("2026-11-22T13:60:00Z", None),
            ("2026-11-22T13:00:60Z", None),
            ("2026-11-22T13:05:09.Z", None),
            ("2026-11-22T13:05:09+0100", None),
            ("2026-11-22T13:05:09 Z", None),
            ("2026-11-22T13:05", None),
            ("2026/11/22 13:05:09", None),
            ("22-11-2026 13:05:09", None),
            ("yesterday", None),
            ("", None),
            ("2026-11-22X13:05:09Z", None),
            ("+026-11-22T13:05:09Z", None),
            ("0000-01-01T00:00:00Z", Some(-62_167_219_200_000_000)),
            ("0000-01-01T00:30:00+01:00", None),
            ("9999-12-31T23:59:59Z", Some(253_402_300_799_000_000)),
            ("9999-12-31T23:59:59-23:59", None),
        ];
        for (input, want) in cases {
            assert_eq!(event_time_micros(input.as_bytes()), *want, "case {input:?}");
        }
        // With the date memo, in any order and repeated: the same answers (a date remembered from a valid
        // time never lets an invalid one through, nor a zero-filled date through an empty memo).
        let mut memo = DateMemo::default();
        assert_eq!(event_time_micros_with(b"\0\0\0\0\0\0\0\0\0\0T00:00:00Z", &mut memo), None);
        for (input, want) in cases.iter().chain(cases.iter().rev()).flat_map(|c| [c, c]) {
            assert_eq!(event_time_micros_with(input.as_bytes(), &mut memo), *want, "memo, case {input:?}");
        }
    }

    #[test]
    fn hours_truncate_and_format() {
        let t = event_time_micros(b"2026-11-22T13:59:59.999999Z").unwrap();
        assert_eq!(hour_start(t), BASE);
        assert_eq!(format_rfc3339(BASE), "2026-11-22T13:00:00Z");
        assert_eq!(partition_values(BASE), ("2026-11-22".to_string(), "13".to_string()));
        assert_eq!(hour_start(-1), -MICROS_PER_HOUR);
        assert_eq!(format_rfc3339(-MICROS_PER_HOUR), "1969-12-31T23:00:00Z");
    }

    #[test]
    fn quantities() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1", Some(1)),
            ("007", Some(7)),
            ("1000000", Some(1_000_000)),
            ("1000001", None),
            ("-1", None),
            ("+1", None),
            ("1.0", None),
            ("1e3", None),
            ("", None),
            ("12345678901234567890", None),
            ("00000000000000001", Some(1)),
            ("000", Some(0)),
            ("1 000", None),
        ];
        for (input, want) in cases {
            assert_eq!(quantity(input.as_bytes()), *want, "case {input:?}");
        }
    }

    #[test]
    fn the_one_pass_price_parser_agrees_with_the_checked_one() {
        // Random short strings of digits, points and other bytes, zeros often: whatever the one-pass parser
        // accepts, the checked parser accepts with the same value.
        let mut x = 5u64;
        let mut accepted = 0;
        for _ in 0..200_000 {
            crate::testing::xorshift(&mut x);
            let len = (x % 19) as usize;
            let s: Vec<u8> = (0..len).map(|i| b"0000123456789..x-"[((x >> (3 * i + 5)) % 17) as usize]).collect();
            if let Some(cents) = plain_price_cents(&s) {
                accepted += 1;
                assert_eq!(price_cents_checked(&s), Some(cents), "{:?}", String::from_utf8_lossy(&s));
            }
        }
        assert!(accepted > 10_000, "{accepted}");
        // The shapes the one-pass parser is for do take it.
        for (s, want) in
            [("487.74", 48774), ("318.750", 31875), ("12", 1200), ("0.5", 50), ("1000000000000", MAX_PRICE_CENTS)]
        {
            assert_eq!(plain_price_cents(s.as_bytes()), Some(want), "{s}");
        }
    }

    #[test]
    fn prices() {
        let cases: &[(&str, Option<i128>)] = &[
            ("0", Some(0)),
            ("19.99", Some(1999)),
            ("19.990", Some(1999)),
            ("19.9", Some(1990)),
            ("19", Some(1900)),
            ("19.000000", Some(1900)),
            ("0.01", Some(1)),
            ("00012.50", Some(1250)),
            ("1000000000000", Some(MAX_PRICE_CENTS)),
            ("1000000000000.00", Some(MAX_PRICE_CENTS)),
            ("1000000000000.01", None),
            ("99999999999999", None),
            ("19.999", None),
            ("19.", None),
            (".99", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("$5", None),
            ("1,000", None),
            ("1.2.3", None),
            ("", None),
            ("abc", None),
        ];
        for (input, want) in cases {
            assert_eq!(price_cents(input.as_bytes()), *want, "case {input:?}");
        }
    }

    #[test]
    fn prices_with_a_decimal_comma() {
        let comma = DecimalSeparator::Comma;
        let cases: &[(&str, Option<i128>)] = &[
            ("19,99", Some(1999)),
            ("19,990", Some(1999)),
            ("19,9", Some(1990)),
            ("19", Some(1900)),
            ("0,01", Some(1)),
            ("00012,50", Some(1250)),
            ("19,000000", Some(1900)),
            ("1000000000000,00", Some(MAX_PRICE_CENTS)),
            ("1000000000000,01", None),
            ("19,999", None),
            ("19,", None),
            (",99", None),
            ("19.99", None),
            ("1.000,50", None),
            ("1.000", None),
            ("1,000,50", None),
            ("1 000,50", None),
            ("-1,5", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(price_cents_with(input.as_bytes(), comma), *want, "case {input:?}");
        }
        // The point separator is `price_cents`, and a comma is no decimal there.
        assert_eq!(price_cents_with(b"19.99", DecimalSeparator::Point), Some(1999));
        assert_eq!(price_cents_with(b"19,99", DecimalSeparator::Point), None);
        assert_eq!(DecimalSeparator::default(), DecimalSeparator::Point);
        assert_eq!((comma.byte(), DecimalSeparator::Point.byte()), (b',', b'.'));

        // Random strings: with the comma, the value of the same text with a point instead; the one-pass and
        // checked parsers agree.
        let mut x = 11u64;
        for _ in 0..100_000 {
            crate::testing::xorshift(&mut x);
            let len = (x % 19) as usize;
            let s: Vec<u8> = (0..len).map(|i| b"0000123456789,,x-."[((x >> (3 * i + 5)) % 18) as usize]).collect();
            let pointed: Vec<u8> = s.iter().map(|&b| if b == b',' { b'.' } else { b }).collect();
            let want = if s.contains(&b'.') { None } else { price_cents(&pointed) };
            assert_eq!(price_cents_with(&s, comma), want, "{:?}", String::from_utf8_lossy(&s));
            if let Some(cents) = plain_price_cents_by(&s, b',') {
                assert_eq!(price_cents_checked_by(&s, b','), Some(cents), "{:?}", String::from_utf8_lossy(&s));
            }
        }
    }

    #[test]
    fn unix_times() {
        let seconds: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1795352400", Some(BASE)),
            ("1795352709", Some(BASE + 309_000_000)),
            ("1795352709.5", Some(BASE + 309_500_000)),
            ("1795352709.123456789", Some(BASE + 309_123_456)),
            ("0001795352709.000", Some(BASE + 309_000_000)),
            ("-1", Some(-1_000_000)),
            ("-1.5", Some(-1_500_000)),
            ("-0.0000001", Some(-1)),
            ("-62167219200", Some(-62_167_219_200_000_000)),
            ("-62167219201", None),
            ("253402300799.999999", Some(253_402_300_799_999_999)),
            ("253402300800", None),
            ("99999999999999999999", None),
            ("1795352709.", None),
            (".5", None),
            ("+1795352709", None),
            ("1e9", None),
            ("1 795 352 709", None),
            ("-", None),
            ("--1", None),
            ("", None),
            ("1795352709,5", None),
        ];
        let mut memo = DateMemo::default();
        for (input, want) in seconds {
            assert_eq!(TimeFormat::UnixSeconds.parse(input.as_bytes(), &mut memo), *want, "seconds {input:?}");
        }
        let millis: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1795352709123", Some(BASE + 309_123_000)),
            ("-1", Some(-1000)),
            ("-62167219200000", Some(-62_167_219_200_000_000)),
            ("-62167219200001", None),
            ("253402300799999", Some(253_402_300_799_999_000)),
            ("253402300800000", None),
            ("1795352709123.5", None),
            ("+1", None),
            ("", None),
            ("12a", None),
            ("9999999999999999999999", None),
        ];
        for (input, want) in millis {
            assert_eq!(TimeFormat::UnixMillis.parse(input.as_bytes(), &mut memo), *want, "millis {input:?}");
        }
    }

    #[test]
    fn time_patterns_compile_or_say_what_is_wrong() {
        for ok in [
            "%d/%m/%Y %H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%m/%d/%Y %I:%M %p",
            "%Y%m%d%H%M%S",
            "%d %b %Y, %H:%M:%S.%f",
            "%B %d %y %Hh",
            "%Y-%m-%dT%H:%M:%S%%",
            "le %d/%m/%Y à %H:%M",
        ] {
            assert!(TimePattern::compile(ok).is_ok(), "{ok}: {:?}", TimePattern::compile(ok));
        }
        let errors: &[(&str, &str)] = &[
            ("%Y-%Q", "unknown directive %Q at position 4; supported: %Y %y %m %b %B %d %H %I %p %M %S %f %%"),
            ("%Y-%m-%d %H%", "a lone % at position 12"),
            ("%Y-%m-%d %H:%M:%S %z", "unknown directive %z at position 19"),
            ("%Y-%m-%d %H:%M:%M", "%M at position 16 repeats the field of %M at position 13"),
            ("%Y-%m-%d %b %H", "%b at position 10 repeats the field of %m at position 4"),
            ("%Y %y %m %d %H", "%y at position 4 repeats"),
            ("%m/%d %H:%M", "lacks a year (%Y or %y)"),
            ("%Y %d %H", "lacks a month (%m, %b or %B)"),
            ("%Y-%m %H", "lacks a day (%d)"),
            ("%Y-%m-%d", "lacks an hour (%H, or %I with %p)"),
            ("", "lacks a year (%Y or %y), a month (%m, %b or %B), a day (%d), an hour"),
            ("%Y-%m-%d %I:%M", "%I at position 10 needs %p"),
            ("%Y-%m-%d %H:%M %p", "%p at position 16 goes with %I"),
            ("%Y-%m-%d %H:%M.%f", "%f at position 16 needs the seconds (%S)"),
            ("é%Y-%m-%d %H%Q", "unknown directive %Q at position 13"),
        ];
        for (pattern, want) in errors {
            let err = TimePattern::compile(pattern).unwrap_err();
            assert!(err.contains(want), "{pattern:?}: {err}");
        }
        assert_eq!(TimeFormat::from_name("rfc3339"), Ok(TimeFormat::Rfc3339));
        assert_eq!(TimeFormat::from_name("unix_seconds"), Ok(TimeFormat::UnixSeconds));
        assert_eq!(TimeFormat::from_name("unix_millis"), Ok(TimeFormat::UnixMillis));
        assert!(matches!(TimeFormat::from_name("%d/%m/%Y %H:%M"), Ok(TimeFormat::Pattern(_))));
        assert!(TimeFormat::from_name("%d/%m/%Y").unwrap_err().contains("lacks an hour"));
        assert!(TimeFormat::from_name("iso").unwrap_err().contains("unknown time format"));
        assert_eq!(TimeFormat::default(), TimeFormat::Rfc3339);
    }

    #[test]
    fn time_patterns_parse() {
        let t = BASE + 309_000_000; // 2026-11-22T13:05:09Z
        let cases: &[(&str, &str, Option<i64>)] = &[
            ("%d/%m/%Y %H:%M", "22/11/2026 13:05", Some(BASE + 300_000_000)),
            ("%d/%m/%Y %H:%M", "22/11/2026 13:05:09", None),
            ("%d/%m/%Y %H:%M", "2/1/2026 9:05", Some(1_767_344_700_000_000)),
            ("%d/%m/%Y %H:%M", "02/01/2026 09:05", Some(1_767_344_700_000_000)),
            ("%d/%m/%Y %H:%M", "31/02/2026 13:05", None),
            ("%d/%m/%Y %H:%M", "29/02/2024 00:00", Some(1_709_164_800_000_000)),
            ("%d/%m/%Y %H:%M", "29/02/2026 00:00", None),
            ("%d/%m/%Y %H:%M", "00/11/2026 13:05", None),
            ("%d/%m/%Y %H:%M", "22/13/2026 13:05", None),
            ("%d/%m/%Y %H:%M", "22/11/2026 24:00", None),
            ("%d/%m/%Y %H:%M", "22/11/2026 13:60", None),
            ("%d/%m/%Y %H:%M", "22/11/26 13:05", None),
            ("%d/%m/%Y %H:%M", "22-11-2026 13:05", None),
            ("%d/%m/%Y %H:%M", "22/11/2026 13:05 ", None),
            ("%d/%m/%Y %H:%M", "22/11/2026 13:", None),
            ("%d/%m/%Y %H:%M", "", None),
            ("%d/%m/%Y %H:%M", "x2/11/2026 13:05", None),
            ("%d/%m/%Y %H:%M", "22/11/+026 13:05", None),
            ("%Y-%m-%d %H:%M:%S", "2026-11-22 13:05:09", Some(t)),
            ("%Y-%m-%d %H:%M:%S", "2026-11-22 13:05:60", None),
            ("%Y-%m-%d %H:%M:%S.%f", "2026-11-22 13:05:09.5", Some(t + 500_000)),
            ("%Y-%m-%d %H:%M:%S.%f", "2026-11-22 13:05:09.123456789", Some(t + 123_456)),
            ("%Y-%m-%d %H:%M:%S.%f", "2026-11-22 13:05:09.", None),
            ("%Y-%m-%d %H:%M:%S.%f", "2026-11-22 13:05:09", None),
            ("%Y%m%d%H%M%S", "20261122130509", Some(t)),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 1:05 PM", Some(BASE + 300_000_000)),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 01:05 pm", Some(BASE + 300_000_000)),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 12:05 AM", Some(BASE - 13 * MICROS_PER_HOUR + 300_000_000)),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 12:05 PM", Some(BASE - MICROS_PER_HOUR + 300_000_000)),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 0:05 AM", None),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 13:05 PM", None),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 1:05 XM", None),
            ("%m/%d/%Y %I:%M %p", "11/22/2026 1:05 P", None),
            ("%d %b %Y %H:%M:%S", "22 Nov 2026 13:05:09", Some(t)),
            ("%d %b %Y %H:%M:%S", "22 NOV 2026 13:05:09", Some(t)),
            ("%d %b %Y %H:%M:%S", "22 November 2026 13:05:09", None),
            ("%d %B %Y %H:%M:%S", "22 november 2026 13:05:09", Some(t)),
            ("%d %B %Y %H:%M:%S", "22 Nov 2026 13:05:09", None),
            ("%d.%m.%y %H:%M", "22.11.26 13:05", Some(BASE + 300_000_000)),
            ("%d.%m.%y %H:%M", "01.01.69 00:00", Some(-31_536_000_000_000)),
            ("%d.%m.%y %H:%M", "31.12.68 00:00", Some(3_124_137_600_000_000)),
            ("%Y-%m-%dT%H:%M:%S%%", "2026-11-22T13:05:09%", Some(t)),
            ("le %d/%m/%Y à %Hh", "le 22/11/2026 à 13h", Some(BASE)),
            ("%Y-%m-%d %H", "0000-01-01 00", Some(-62_167_219_200_000_000)),
            ("%Y-%m-%d %H", "9999-12-31 23", Some(253_402_297_200_000_000)),
        ];
        for (pattern, input, want) in cases {
            let format = TimeFormat::from_name(pattern).unwrap();
            assert_eq!(format.parse(input.as_bytes(), &mut DateMemo::default()), *want, "{pattern:?} on {input:?}");
        }
        // Every day number of a month in turn through one memo (a date remembered from the day before must
        // not be taken for this one, nor let an impossible day through), against a fresh memo and RFC 3339.
        let format = TimeFormat::from_name("%d/%m/%Y %H:%M").unwrap();
        let mut memo = DateMemo::default();
        for (month, year) in [(11, 2026), (2, 2026), (2, 2024), (12, 9999)] {
            for day in (0..=32).chain((0..=32).rev()) {
                let text = format!("{day:02}/{month:02}/{year} 13:05");
                let rfc = format!("{year}-{month:02}-{day:02}T13:05:00Z");
                let want = event_time_micros(rfc.as_bytes());
                assert_eq!(format.parse(text.as_bytes(), &mut memo), want, "{text}");
                assert_eq!(format.parse(text.as_bytes(), &mut DateMemo::default()), want, "{text}");
            }
        }
        // With one memo for every case, in any order and repeated: the same answers (a remembered date never
        // lets an invalid one through).
        let compiled: Vec<(TimeFormat, &str, Option<i64>)> =
            cases.iter().map(|(p, i, w)| (TimeFormat::from_name(p).unwrap(), *i, *w)).collect();
        let mut memo = DateMemo::default();
        for (format, input, want) in compiled.iter().chain(compiled.iter().rev()).flat_map(|c| [c, c]) {
            assert_eq!(format.parse(input.as_bytes(), &mut memo), *want, "memo, {input:?}");
            // Interleaved with the RFC 3339 parser on the same memo.
            assert_eq!(TimeFormat::Rfc3339.parse(b"2026-02-29T00:00:00Z", &mut memo), None);
            assert_eq!(TimeFormat::Rfc3339.parse(b"2026-11-22T13:05:09Z", &mut memo), Some(t));
        }
    }

    /// Random instants over the years 0000..=9999, written in each format, parse to what the RFC 3339
    /// parser makes of the same instant.
    #[test]
    fn every_time_format_agrees_with_rfc3339() {
        let patterns: Vec<(TimeFormat, bool)> = [
            ("%Y-%m-%d %H:%M:%S", false),
            ("%d/%m/%Y %H:%M:%S", false),
            ("%m/%d/%Y %I:%M:%S %p", false),
            ("%Y%m%d%H%M%S.%f", false),
            ("%d %b %Y %H:%M:%S.%f", false),
            ("%B %d, %y %H:%M:%S", true),
        ]
        .iter()
        .map(|(p, two_digit_year)| (TimeFormat::from_name(p).unwrap(), *two_digit_year))
        .collect();
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let mut x = 3u64;
        let mut memo = DateMemo::default();
        for round in 0..20_000 {
            crate::testing::xorshift(&mut x);
            // Often near the bounds and near 1970, else anywhere.
            let secs = match round % 4 {
                0 => MIN_SECS + (x % 100_000_000) as i64,
                1 => MAX_SECS - (x % 100_000_000) as i64,
                2 => (x % 200_000_000) as i64 - 100_000_000,
                _ => MIN_SECS + (x % (MAX_SECS - MIN_SECS + 1) as u64) as i64,
            };
            let micros = ((x >> 40) % 1_000_000) as i64;
            let (y, mo, d, h, mi, s) = civil(secs * 1_000_000);
            let rfc = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z");
            let want = event_time_micros(rfc.as_bytes());
            assert_eq!(want, Some(secs * 1_000_000 + micros), "{rfc}");
            let whole = want.map(|t| t - micros);
            let check = |format: &TimeFormat, text: String, want: Option<i64>, memo: &mut DateMemo| {
                assert_eq!(format.parse(text.as_bytes(), memo), want, "{format:?} on {text:?} ({rfc})");
            };
            check(&TimeFormat::UnixSeconds, format!("{secs}"), whole, &mut memo);
            let fraction = if secs < 0 && micros > 0 {
                format!("-{}.{:06}", -(secs + 1), 1_000_000 - micros)
            } else {
                format!("{secs}.{micros:06}")
            };
            check(&TimeFormat::UnixSeconds, fraction, want, &mut memo);
            let millis = (secs * 1_000_000 + micros).div_euclid(1000);
            check(&TimeFormat::UnixMillis, format!("{millis}"), Some(millis * 1000), &mut memo);
            let twelve = if h % 12 == 0 { 12 } else { h % 12 };
            let ampm = if h < 12 { "AM" } else { "PM" };
            let (month, full) = (months[mo as usize - 1], MONTH_NAMES[mo as usize - 1]);
            let unpadded = micros * 10i64.pow(6 - micros.to_string().len() as u32);
            let texts = [
                (format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"), whole),
                (format!("{d}/{mo}/{y:04} {h}:{mi}:{s}"), whole),
                (format!("{mo:02}/{d:02}/{y:04} {twelve}:{mi:02}:{s:02} {ampm}"), whole),
                (format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}.{micros:06}"), want),
                // `%f` digits without zero padding: `.25` is a quarter second, whatever `micros` was.
                (format!("{d:02} {month} {y:04} {h:02}:{mi:02}:{s:02}.{micros}"), whole.map(|t| t + unpadded)),
                (format!("{} {d:02}, {:02} {h:02}:{mi:02}:{s:02}", full.to_uppercase(), y % 100), whole),
            ];
            for ((format, two_digit_year), (text, want)) in patterns.iter().zip(texts) {
                if *two_digit_year && !(1969..=2068).contains(&y) {
                    continue;
                }
                check(format, text, want, &mut memo);
            }
        }
    }

    #[test]
    fn cents_format() {
        assert_eq!(format_cents(0), "0.00");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(123_456), "1234.56");
        assert_eq!(format_cents(-5), "-0.05");
    }
}
