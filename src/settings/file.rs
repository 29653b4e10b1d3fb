//! The TOML config file: reading it into [`super::Settings`], checking it, and writing settings back.
//!
//! [`parse`] checks the whole file and reports every problem it finds ([`ConfigErrors`]), each with its
//! place in the file, its line where the TOML parser knows it, and a hint for the fix. A section the file
//! leaves out keeps its default; `[input]` keys left out keep theirs; `[dimensions]` and `[[tables]]`, when
//! given, replace the default dimensions and tables as a whole. [`to_toml`] writes settings back with every
//! default spelled out, so that `parse(&to_toml(s)) == Ok(s)`. The format is described in docs/config.md.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Case, DimensionSpec, Encoding, InputMapping, Settings, TimeFormat, SKU};
use crate::aggregate::tables::{Metric, TableSpec};
use crate::aggregate::MAX_KEYS;
use crate::contract::Dim;

/// What is wrong with a config file, for programs that act on it (the text is in the [`ConfigError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is not valid TOML.
    Syntax,
    /// A key the format does not have.
    UnknownKey,
    /// A required key is missing (a table's `name` or `metrics`).
    MissingKey,
    /// A value of the wrong TOML type.
    WrongType,
    UnknownMetric,
    /// A table key that is not a declared dimension.
    UnknownDimension,
    /// Two tables with the same name, hourly or daily.
    DuplicateTable,
    /// A table without metrics, or an empty list of tables.
    Empty,
    /// The same metric or key twice in one table.
    Duplicate,
    /// More keys in one table than the engine groups by.
    TooManyKeys,
    /// One export column read by two fields or dimensions.
    ColumnMappedTwice,
    BadDimensionName,
    BadTableName,
    BadDelimiter,
    BadDecimalSeparator,
    UnknownEncoding,
    BadTimeFormat,
    /// A `case` other than lower, upper or keep.
    BadCase,
    /// A `top` that is not a positive integer.
    BadTop,
    /// An empty column name or an empty list of column names.
    EmptyColumn,
}

/// A place in the config file's text, both 1-based (the column counts characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    /// Where in the file's structure, e.g. `[input].delimiter` or `[[tables]] #2 (store_sales).keys[0]`;
    /// for a syntax error, the line and column.
    pub place: String,
    /// Where in the text, when the parser knows it.
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error at {}", self.place)?;
        if let (Some(l), false) = (self.location, self.kind == ErrorKind::Syntax) {
            write!(f, " (line {})", l.line)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

/// Every problem found in a config file, in the order of the file (the checks across sections last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why [`load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("config file {} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("config file {} has {} problem(s):\n{errors}", path.display(), errors.errors.len())]
    Invalid { path: PathBuf, errors: ConfigErrors },
}

/// Reads and checks the config file at `path`.
pub fn load(path: &Path) -> Result<Settings, LoadError> {
    let bytes = std::fs::read(path).map_err(|error| LoadError::Read { path: path.to_path_buf(), error })?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: path.to_path_buf() })?;
    // A byte order mark, as some Windows editors write it, is not part of the TOML.
    parse(text.strip_prefix('\u{feff}').unwrap_or(&text))
        .map_err(|errors| LoadError::Invalid { path: path.to_path_buf(), errors })
}

/// The keys of each part of the file.
const TOP_KEYS: &[&str] = &["input", "dimensions", "tables"];
const INPUT_KEYS: &[&str] = &[
    "delimiter",
    "decimal_separator",
    "encoding",
    "event_time",
    "order_id",
    "sku",
    "quantity",
    "unit_price",
    "customer_id",
];
const EVENT_TIME_KEYS: &[&str] = &["column", "format"];
const DIMENSION_KEYS: &[&str] = &["column", "case"];
const TABLE_KEYS: &[&str] = &["name", "keys", "metrics", "top", "description"];

/// Output columns besides the metrics, which a dimension may not be named after.
const OUTPUT_COLUMNS: &[&str] = &["hour_start", "day", "rank"];
/// Names a table may not have: the other folders of the output.
const RESERVED_TABLES: &[&str] = &["summaries", "rejects", "reports"];

const TIME_FORMATS_FIX: &str =
    "use rfc3339, unix_seconds, unix_millis, or a strftime pattern such as \"%d/%m/%Y %H:%M:%S\"";
const IDENTIFIER_RULE: &str = "a lowercase letter, then up to 62 lowercase letters, digits or _";

/// Parses and checks a config file's text. Every problem found is reported, not only the first.
pub fn parse(text: &str) -> Result<Settings, ConfigErrors> {
    let mut c = Checker { text, errors: Vec::new() };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            let location = e.span().and_then(|s| c.location(&s));
            let place = match location {
                Some(l) => format!("line {}, column {}", l.line, l.column),
                None => "the TOML syntax".to_string(),
            };
            let message = format!("invalid TOML: {}", e.message().trim_end());
            let fix = "write valid TOML (https://toml.io): key = value, strings in double quotes";
            c.errors.push(ConfigError { kind: ErrorKind::Syntax, place, location, message, fix: fix.into() });
        }
        return Err(ConfigErrors { errors: c.errors });
    }
    let doc = doc.into_inner();
    c.known_keys(None, &doc, TOP_KEYS);

    let (input, given) = c.input(doc.get("input"));
    let file_dims = doc.get("dimensions").and_then(|v| c.dimensions(v).map(|d| (d, v.span())));
    let dims: Vec<FileDimension> = match &file_dims {
        Some((d, _)) => d.clone(),
        None => DimensionSpec::default_dimensions()
            .into_iter()
            .map(|spec| FileDimension { place: format!("[dimensions].{} (default)", spec.name), span: None, spec })
            .collect(),
    };
    let mut names: Vec<&str> = vec![SKU];
    names.extend(dims.iter().map(|d| d.spec.name.as_str()));
    let tables = match doc.get("tables") {
        Some(v) => c.tables(v, &names),
        None => {
            if let Some((_, span)) = &file_dims {
                c.default_tables_have_dimensions(&names, span.clone());
            }
            None
        }
    };
    c.columns_mapped_once(&input, &given, &dims);

    if !c.errors.is_empty() {
        return Err(ConfigErrors { errors: c.errors });
    }
    let dim_names: Vec<&'static str> = names.iter().map(|n| leak_str(n)).collect();
    let dim = |name: &str| {
        let index = dim_names.iter().position(|n| *n == name).expect("table keys are checked against the dimensions");
        Dim { index, name: dim_names[index] }
    };
    let tables = match tables {
        Some(tables) => tables
            .into_iter()
            .map(|t| TableSpec {
                name: leak_str(&t.name),
                keys: Box::leak(t.keys.iter().map(|k| dim(k)).collect()),
                metrics: Box::leak(t.metrics.into_boxed_slice()),
                top: t.top,
                description: leak_str(&t.description),
            })
            .collect(),
        // The default tables, with their keys' indexes in these dimensions (the same as the defaults' when
        // the dimensions are the defaults).
        None if file_dims.is_none() => crate::aggregate::tables::default_tables(),
        None => crate::aggregate::tables::default_tables()
            .into_iter()
            .map(|t| TableSpec { keys: Box::leak(t.keys.iter().map(|k| dim(k.name)).collect()), ..t })
            .collect(),
    };
    Ok(Settings::new(input, dims.into_iter().map(|d| d.spec).collect(), tables))
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// A dimension as read, with its place for the checks across sections.
#[derive(Clone)]
struct FileDimension {
    spec: DimensionSpec,
    /// `[dimensions].<name>`, or `[dimensions].<name> (default)` for a default dimension.
    place: String,
    span: Option<Range<usize>>,
}

/// A `[[tables]]` entry as read.
struct FileTable {
    name: String,
    keys: Vec<String>,
    metrics: Vec<Metric>,
    top: Option<usize>,
    description: String,
}

/// The places of the `[input]` keys the file gives (for the checks across keys and sections).
type Given = HashMap<&'static str, Range<usize>>;

type Entry<'a, 'i> = (&'a Spanned<Cow<'i, str>>, &'a Spanned<DeValue<'i>>);

/// The entries of a table in the order they are written.
fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<Entry<'a, 'i>> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The daily table of the table `name`, as [`TableSpec::table_name`] names it for [`Period::Day`].
fn daily_name(name: &str) -> String {
    format!("daily_{}", name.strip_prefix("hourly_").unwrap_or(name))
}

/// `name` as a key in a place: bare when it can be, quoted otherwise.
fn key_text(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// Whether `name` is `^[a-z][a-z0-9_]{0,62}$`.
fn is_identifier(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

fn metric_names() -> String {
    Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

fn case_name(case: Case) -> &'static str {
    match case {
        Case::Lower => "lower",
        Case::Upper => "upper",
        Case::Keep => "keep",
    }
}

/// Checks a strftime pattern for the event time: the parser's own compile step, so a config that passes
/// the check always runs.
pub fn check_time_pattern(pattern: &str) -> Result<(), String> {
    crate::contract::parse::TimePattern::compile(pattern).map(drop)
}

struct Checker<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn location(&self, span: &Range<usize>) -> Option<Location> {
        let before = self.text.get(..span.start)?;
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Some(Location { line, column })
    }

    fn error(
        &mut self,
        kind: ErrorKind,
        place: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let location = span.and_then(|s| self.location(&s));
        self.errors.push(ConfigError { kind, place: place.into(), location, message: message.into(), fix: fix.into() });
    }

    fn wrong_type(&mut self, place: &str, v: &Spanned<DeValue>, expected: &str) {
        let found = v.get_ref().type_str();
        self.error(ErrorKind::WrongType, place, Some(v.span()), format!("expected {expected}, found {found}"), "")
    }

    /// Reports the keys of `table` not in `known`; `prefix` is the table's place (none at the top level).
    fn known_keys(&mut self, prefix: Option<&str>, table: &DeTable, known: &[&str]) {
        for (k, _) in entries(table) {
            if !known.contains(&k.get_ref().as_ref()) {
                let place = match prefix {
                    Some(p) => format!("{p}.{}", key_text(k.get_ref())),
                    None => key_text(k.get_ref()),
                };
                let message = format!("unknown key {:?}", k.get_ref().as_ref());
                self.error(
                    ErrorKind::UnknownKey,
                    place,
                    Some(k.span()),
                    message,
                    format!("use one of {}", list(known)),
                );
            }
        }
    }

    fn table<'a, 'i>(&mut self, place: &str, v: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
        let table = v.get_ref().as_table();
        if table.is_none() {
            self.wrong_type(place, v, "a table");
        }
        table
    }

    fn string<'a>(&mut self, place: &str, v: &'a Spanned<DeValue>) -> Option<&'a str> {
        let s = v.get_ref().as_str();
        if s.is_none() {
            self.wrong_type(place, v, "a string");
        }
        s
    }

    /// A column name or a non-empty list of them.
    fn columns(&mut self, place: &str, v: &Spanned<DeValue>) -> Option<Vec<String>> {
        let fix = "give a column name, or a list of accepted names such as [\"order_id\", \"Order ID\"]";
        let mut names = Vec::new();
        let mut ok = true;
        let mut one = |c: &mut Self, place: &str, v: &Spanned<DeValue>| match v.get_ref().as_str() {
            Some(s) if s.trim().is_empty() => {
                c.error(ErrorKind::EmptyColumn, place, Some(v.span()), "empty column name", fix);
                ok = false;
            }
            Some(s) => names.push(s.to_string()),
            None => {
                c.wrong_type(place, v, "a column name (string)");
                ok = false;
            }
        };
        match v.get_ref() {
            DeValue::Array(items) if items.is_empty() => {
                self.error(ErrorKind::EmptyColumn, place, Some(v.span()), "empty list of column names", fix);
                return None;
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    one(self, &format!("{place}[{i}]"), item);
                }
            }
            DeValue::String(_) => one(self, place, v),
            _ => {
                self.wrong_type(place, v, "a column name or a list of them");
                return None;
            }
        }
        ok.then_some(names)
    }

    fn time_format(&mut self, place: &str, v: &Spanned<DeValue>) -> Option<TimeFormat> {
        let s = self.string(place, v)?;
        match s {
            "rfc3339" => Some(TimeFormat::Rfc3339),
            "unix_seconds" => Some(TimeFormat::UnixSeconds),
            "unix_millis" => Some(TimeFormat::UnixMillis),
            p if p.contains('%') => match check_time_pattern(p) {
                Ok(()) => Some(TimeFormat::Pattern(p.to_string())),
                Err(e) => {
                    let message = format!("bad time pattern {p:?}: {e}");
                    let fix = "fix the pattern, or use rfc3339, unix_seconds or unix_millis";
                    self.error(ErrorKind::BadTimeFormat, place, Some(v.span()), message, fix);
                    None
                }
            },
            other => {
                let message = format!("unknown time format {other:?}");
                self.error(ErrorKind::BadTimeFormat, place, Some(v.span()), message, TIME_FORMATS_FIX);
                None
            }
        }
    }

    /// The `[input]` section over the default mapping, and the keys it gives.
    fn input(&mut self, v: Option<&Spanned<DeValue>>) -> (InputMapping, Given) {
        let mut m = InputMapping::default_mapping();
        let mut given = Given::new();
        let Some(table) = v.and_then(|v| self.table("[input]", v)) else { return (m, given) };
        self.known_keys(Some("[input]"), table, INPUT_KEYS);
        for (k, v) in entries(table) {
            let Some(&key) = INPUT_KEYS.iter().find(|n| **n == k.get_ref().as_ref()) else { continue };
            given.insert(key, k.span());
            let place = format!("[input].{key}");
            match key {
                "delimiter" => {
                    if let Some(b) = self.delimiter(&place, v) {
                        m.delimiter = b;
                    }
                }
                "decimal_separator" => {
                    if let Some(s) = self.string(&place, v) {
                        match s {
                            "." | "," => m.decimal_separator = s.as_bytes()[0],
                            _ => self.error(
                                ErrorKind::BadDecimalSeparator,
                                &place,
                                Some(v.span()),
                                format!("bad decimal separator {s:?}"),
                                "use \".\" or \",\"",
                            ),
                        }
                    }
                }
                "encoding" => {
                    if let Some(s) = self.string(&place, v) {
                        match Encoding::ALL.into_iter().find(|e| e.name().eq_ignore_ascii_case(s)) {
                            Some(e) => m.encoding = e,
                            None => {
                                let names: Vec<_> = Encoding::ALL.iter().map(|e| e.name()).collect();
                                self.error(
                                    ErrorKind::UnknownEncoding,
                                    &place,
                                    Some(v.span()),
                                    format!("unknown encoding {s:?}"),
                                    format!("use one of {}", list(&names)),
                                )
                            }
                        }
                    }
                }
                "event_time" => match v.get_ref() {
                    DeValue::Table(t) => {
                        self.known_keys(Some(&place), t, EVENT_TIME_KEYS);
                        if let Some(c) = t.get("column") {
                            if let Some(cols) = self.columns(&format!("{place}.column"), c) {
                                m.event_time = cols;
                            }
                        }
                        if let Some(f) = t.get("format") {
                            if let Some(format) = self.time_format(&format!("{place}.format"), f) {
                                m.time_format = format;
                            }
                        }
                    }
                    DeValue::String(_) | DeValue::Array(_) => {
                        if let Some(cols) = self.columns(&place, v) {
                            m.event_time = cols;
                        }
                    }
                    _ => self.wrong_type(&place, v, "a column name, a list of them, or { column, format }"),
                },
                field => {
                    if let Some(cols) = self.columns(&place, v) {
                        *match field {
                            "order_id" => &mut m.order_id,
                            "sku" => &mut m.sku,
                            "quantity" => &mut m.quantity,
                            "unit_price" => &mut m.unit_price,
                            _ => &mut m.customer_id,
                        } = cols;
                    }
                }
            }
        }
        if m.delimiter == m.decimal_separator {
            let (place, other) = if given.contains_key("delimiter") {
                ("[input].delimiter", "the decimal separator")
            } else {
                ("[input].decimal_separator", "the delimiter (the default)")
            };
            let span = given.get(&place["[input].".len()..]).cloned();
            let sep = format!("\"{}\"", m.delimiter as char);
            self.error(
                ErrorKind::BadDelimiter,
                place,
                span,
                format!("{sep} is both the delimiter and the decimal separator"),
                format!("{other} is {sep}: use delimiter = \";\" with decimal_separator = \",\""),
            );
        }
        (m, given)
    }

    fn delimiter(&mut self, place: &str, v: &Spanned<DeValue>) -> Option<u8> {
        let s = self.string(place, v)?;
        let fix = "use one character: \",\", \";\", \"|\", \"\\t\" (tab) or another ASCII punctuation mark";
        let problem = match s.as_bytes() {
            [b'"'] => "the quote character \" cannot be the delimiter",
            [b'\r'] | [b'\n'] => "a line break cannot be the delimiter",
            [b] if crate::read::records::Delimiter::new(*b).is_ok() => return Some(*b),
            [] => "the delimiter is empty",
            [_] => "the delimiter must be a tab or an ASCII punctuation mark",
            _ => "the delimiter must be a single character",
        };
        self.error(ErrorKind::BadDelimiter, place, Some(v.span()), format!("bad delimiter {s:?}: {problem}"), fix);
        None
    }

    /// The `[dimensions]` section, `None` when it is not a table. A dimension with errors is kept (with the
    /// columns read), so that the checks across sections do not report it again as missing.
    fn dimensions(&mut self, v: &Spanned<DeValue>) -> Option<Vec<FileDimension>> {
        let table = self.table("[dimensions]", v)?;
        let mut dims = Vec::new();
        for (k, v) in entries(table) {
            let name: &str = k.get_ref();
            let place = format!("[dimensions].{}", key_text(name));
            self.dimension_name(&place, name, k.span());
            let mut spec = DimensionSpec { name: name.to_string(), columns: vec![name.to_string()], case: Case::Lower };
            match v.get_ref() {
                DeValue::Table(t) => {
                    self.known_keys(Some(&place), t, DIMENSION_KEYS);
                    if let Some(c) = t.get("column") {
                        spec.columns = self.columns(&format!("{place}.column"), c).unwrap_or_default();
                    }
                    if let Some(c) = t.get("case") {
                        let case_place = format!("{place}.case");
                        match self.string(&case_place, c) {
                            Some("lower") => spec.case = Case::Lower,
                            Some("upper") => spec.case = Case::Upper,
                            Some("keep") => spec.case = Case::Keep,
                            Some(other) => {
                                self.error(
                                    ErrorKind::BadCase,
                                    case_place,
                                    Some(c.span()),
                                    format!("unknown case {other:?}"),
                                    "use one of lower, upper, keep",
                                );
                            }
                            None => {}
                        }
                    }
                }
                DeValue::String(_) | DeValue::Array(_) => spec.columns = self.columns(&place, v).unwrap_or_default(),
                _ => {
                    self.wrong_type(&place, v, "{ column = ..., case = ... }, or a column name or a list of them");
                    spec.columns.clear();
                }
            }
            if name != SKU {
                dims.push(FileDimension { spec, place, span: Some(k.span()) });
            }
        }
        Some(dims)
    }

    /// Reports a name a dimension may not have.
    fn dimension_name(&mut self, place: &str, name: &str, span: Range<usize>) {
        let (message, fix) = if name == SKU {
            (
                "\"sku\" is always the first dimension, read from [input].sku".to_string(),
                "remove it from [dimensions]; map its column with [input].sku".to_string(),
            )
        } else if !is_identifier(name) {
            (format!("dimension name {name:?} is not a safe identifier"), format!("use {IDENTIFIER_RULE}"))
        } else if OUTPUT_COLUMNS.contains(&name) || Metric::from_name(name).is_some() {
            (
                format!("dimension name {name:?} clashes with an output column"),
                format!("rename it: {}, {} are output columns", list(OUTPUT_COLUMNS), metric_names()),
            )
        } else {
            return;
        };
        self.error(ErrorKind::BadDimensionName, place, Some(span), message, fix);
    }

    /// The `[[tables]]` entries, `None` when `tables` is not an array of tables. `dims`: the dimension names.
    fn tables(&mut self, v: &Spanned<DeValue>, dims: &[&str]) -> Option<Vec<FileTable>> {
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type("[[tables]]", v, "an array of tables ([[tables]])");
            return None;
        };
        if items.is_empty() {
            self.error(
                ErrorKind::Empty,
                "[[tables]]",
                Some(v.span()),
                "the list of tables is empty",
                "declare at least one [[tables]], or leave tables out for the default tables",
            );
            return None;
        }
        let mut tables = Vec::new();
        // Every hourly and daily name taken so far, with the place of the table that has it.
        let mut taken: HashMap<String, String> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Some(t) = self.table(&format!("[[tables]] #{}", i + 1), item) else { continue };
            let name = t.get("name").and_then(|n| n.get_ref().as_str());
            let place = match name {
                Some(n) => format!("[[tables]] #{} ({n})", i + 1),
                None => format!("[[tables]] #{}", i + 1),
            };
            let entry = self.table_entry(&place, item.span(), t, dims);
            // Names are checked for clashes even when the table has other problems, so that every problem
            // of the file is reported at once.
            if let Some(name) = name {
                let names = [name.to_string(), daily_name(name)];
                // The first clash only: the hourly name's, or the daily one's.
                for n in &names {
                    if let Some(other) = taken.get(n.as_str()) {
                        let message = if n == name {
                            format!("the table name {n:?} is also the name of {other}")
                        } else {
                            format!("the daily table {n:?} is also a name of {other}")
                        };
                        let span = t.get("name").map(|v| v.span());
                        let fix = "give each table its own name (table x is also published as daily_x, and \
                                   hourly_x as daily_x)";
                        self.error(ErrorKind::DuplicateTable, format!("{place}.name"), span, message, fix);
                        break;
                    }
                }
                for n in names {
                    taken.entry(n).or_insert_with(|| place.clone());
                }
            }
            if let Some(table) = entry {
                tables.push(table);
            }
        }
        Some(tables)
    }

    /// One `[[tables]]` entry, `None` when it has errors.
    fn table_entry(&mut self, place: &str, span: Range<usize>, t: &DeTable, dims: &[&str]) -> Option<FileTable> {
        let errors = self.errors.len();
        self.known_keys(Some(place), t, TABLE_KEYS);
        let mut table = FileTable {
            name: String::new(),
            keys: Vec::new(),
            metrics: Vec::new(),
            top: None,
            description: String::new(),
        };
        match t.get("name") {
            Some(v) => {
                if let Some(name) = self.string(&format!("{place}.name"), v) {
                    self.table_name(&format!("{place}.name"), name, v.span());
                    table.name = name.to_string();
                }
            }
            None => self.error(
                ErrorKind::MissingKey,
                place,
                Some(span.clone()),
                "the table has no name",
                "add name = \"...\"",
            ),
        }
        if let Some(v) = t.get("keys") {
            let kplace = format!("{place}.keys");
            match v.get_ref().as_array() {
                None => self.wrong_type(&kplace, v, "a list of dimension names"),
                Some(items) => {
                    if items.len() > MAX_KEYS {
                        self.error(
                            ErrorKind::TooManyKeys,
                            &kplace,
                            Some(v.span()),
                            format!("{} keys, more than the {MAX_KEYS} a table may have", items.len()),
                            format!("group by at most {MAX_KEYS} dimensions"),
                        );
                    }
                    for (i, item) in items.iter().enumerate() {
                        let iplace = format!("{kplace}[{i}]");
                        let Some(key) = self.string(&iplace, item) else { continue };
                        if !dims.contains(&key) {
                            self.error(
                                ErrorKind::UnknownDimension,
                                &iplace,
                                Some(item.span()),
                                format!("key {key:?} is not a dimension (the dimensions are {})", list(dims)),
                                "declare it under [dimensions]",
                            );
                        } else if table.keys.iter().any(|k| k == key) {
                            let message = format!("key {key:?} is listed twice");
                            self.error(ErrorKind::Duplicate, &iplace, Some(item.span()), message, "list each key once");
                        }
                        table.keys.push(key.to_string());
                    }
                }
            }
        }
        match t.get("metrics") {
            None => self.error(
                ErrorKind::MissingKey,
                place,
                Some(span),
                "the table has no metrics",
                format!("add metrics = [...] with some of {}", metric_names()),
            ),
            Some(v) => {
                let mplace = format!("{place}.metrics");
                match v.get_ref().as_array() {
                    None => self.wrong_type(&mplace, v, "a list of metric names"),
                    Some(items) if items.is_empty() => self.error(
                        ErrorKind::Empty,
                        &mplace,
                        Some(v.span()),
                        "the table has no metrics",
                        format!("list some of {}", metric_names()),
                    ),
                    Some(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let iplace = format!("{mplace}[{i}]");
                            let Some(name) = self.string(&iplace, item) else { continue };
                            match Metric::from_name(name) {
                                None => self.error(
                                    ErrorKind::UnknownMetric,
                                    &iplace,
                                    Some(item.span()),
                                    format!("unknown metric {name:?}"),
                                    format!("use one of {}", metric_names()),
                                ),
                                Some(m) if table.metrics.contains(&m) => self.error(
                                    ErrorKind::Duplicate,
                                    &iplace,
                                    Some(item.span()),
                                    format!("metric {name:?} is listed twice"),
                                    "list each metric once",
                                ),
                                Some(m) => table.metrics.push(m),
                            }
                        }
                    }
                }
            }
        }
        if let Some(v) = t.get("top") {
            let tplace = format!("{place}.top");
            match v.get_ref().as_integer() {
                None => self.wrong_type(&tplace, v, "an integer"),
                Some(n) => match i64::from_str_radix(n.as_str(), n.radix()).ok().filter(|n| *n > 0) {
                    Some(n) => table.top = Some(n as usize),
                    None => self.error(
                        ErrorKind::BadTop,
                        &tplace,
                        Some(v.span()),
                        format!("top = {} keeps no groups", n.as_str()),
                        "use a positive number of groups per hour, or leave top out to keep them all",
                    ),
                },
            }
        }
        if let Some(v) = t.get("description") {
            if let Some(d) = self.string(&format!("{place}.description"), v) {
                table.description = d.to_string();
            }
        }
        (self.errors.len() == errors).then_some(table)
    }

    /// Reports a table name that is not a safe identifier or is reserved.
    fn table_name(&mut self, place: &str, name: &str, span: Range<usize>) {
        let (message, fix) = if !is_identifier(name) {
            (
                format!("table name {name:?} is not a safe identifier (it names a folder and a Glue table)"),
                format!("use {IDENTIFIER_RULE}"),
            )
        } else if RESERVED_TABLES.contains(&name) {
            (
                format!("table name {name:?} is the name of another output folder"),
                format!("use another name than {}", list(RESERVED_TABLES)),
            )
        } else {
            return;
        };
        self.error(ErrorKind::BadTableName, place, Some(span), message, fix);
    }

    /// With `[dimensions]` given and no `[[tables]]`: the default tables' keys must be among `dims`.
    fn default_tables_have_dimensions(&mut self, dims: &[&str], span: Range<usize>) {
        let mut missing: Vec<(&str, Vec<&str>)> = Vec::new();
        for t in crate::aggregate::tables::DEFAULT_TABLES {
            for k in t.keys.iter().filter(|k| !dims.contains(&k.name)) {
                match missing.iter_mut().find(|(name, _)| *name == k.name) {
                    Some((_, tables)) => tables.push(t.name),
                    None => missing.push((k.name, vec![t.name])),
                }
            }
        }
        for (name, tables) in missing {
            self.error(
                ErrorKind::UnknownDimension,
                "[dimensions]",
                Some(span.clone()),
                format!(
                    "the default tables ({}) group by {name:?}, which [dimensions] does not declare",
                    list(&tables)
                ),
                "declare it, or give your own [[tables]]",
            );
        }
    }

    /// Reports an export column (trimmed, case-insensitive) read by two fields or dimensions, at the one
    /// the file names (defaults first, so a clash with a default is reported where the file is).
    fn columns_mapped_once(&mut self, m: &InputMapping, given: &Given, dims: &[FileDimension]) {
        struct Owner<'a> {
            place: String,
            span: Option<Range<usize>>,
            columns: &'a [String],
            from_file: bool,
        }
        let fields: [(&'static str, &[String]); 6] = [
            ("event_time", &m.event_time),
            ("order_id", &m.order_id),
            ("sku", &m.sku),
            ("quantity", &m.quantity),
            ("unit_price", &m.unit_price),
            ("customer_id", &m.customer_id),
        ];
        let mut owners: Vec<Owner> = fields
            .into_iter()
            .map(|(key, columns)| Owner {
                place: match given.contains_key(key) {
                    true => format!("[input].{key}"),
                    false => format!("[input].{key} (default)"),
                },
                span: given.get(key).cloned(),
                columns,
                from_file: given.contains_key(key),
            })
            .collect();
        owners.extend(dims.iter().map(|d| Owner {
            place: d.place.clone(),
            span: d.span.clone(),
            columns: &d.spec.columns,
            from_file: d.span.is_some(),
        }));
        owners.sort_by_key(|o| o.from_file);
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, o) in owners.iter().enumerate() {
            for column in o.columns {
                let key = column.trim().to_lowercase();
                match seen.get(&key) {
                    Some(&j) => {
                        let message = match i == j {
                            true => format!("column {column:?} is listed twice"),
                            false => format!("column {column:?} is also read by {}", owners[j].place),
                        };
                        let (place, span) = (o.place.clone(), o.span.clone());
                        let fix =
                            "read each export column (compared trimmed, ignoring case) into one field or dimension";
                        self.error(ErrorKind::ColumnMappedTwice, place, span, message, fix);
                    }
                    None => {
                        seen.insert(key, i);
                    }
                }
            }
        }
    }
}

/// `s` as a TOML string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Column names as written in a config: one name as a string, several as a list.
fn columns_toml(columns: &[String]) -> String {
    match columns {
        [one] => quote(one),
        many => format!("[{}]", many.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")),
    }
}

fn names_toml<'a>(names: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", names.map(quote).collect::<Vec<_>>().join(", "))
}

/// The settings as a config file, every default written out; [`parse`] reads it back to `settings`.
pub fn to_toml(settings: &Settings) -> String {
    let m = &settings.input;
    let mut out = String::new();
    out.push_str(
        "# hourly-insights settings: how the export is written, its dimensions and the insight tables.\n\
         # Every value is written out, defaults included. Reference: docs/config.md.\n\
         # `sku` is always the first dimension, read from [input].sku.\n\n",
    );
    let _ = writeln!(out, "[input]");
    let _ = writeln!(out, "delimiter = {}", quote(&(m.delimiter as char).to_string()));
    let _ = writeln!(out, "decimal_separator = {}", quote(&(m.decimal_separator as char).to_string()));
    let _ = writeln!(out, "encoding = {}", quote(m.encoding.name()));
    let _ = writeln!(
        out,
        "event_time = {{ column = {}, format = {} }}",
        columns_toml(&m.event_time),
        quote(m.time_format.name())
    );
    for (key, columns) in [
        ("order_id", &m.order_id),
        ("sku", &m.sku),
        ("quantity", &m.quantity),
        ("unit_price", &m.unit_price),
        ("customer_id", &m.customer_id),
    ] {
        let _ = writeln!(out, "{key} = {}", columns_toml(columns));
    }
    let _ = writeln!(out, "\n[dimensions]");
    for d in settings.dimensions.iter().filter(|d| d.name != SKU) {
        let _ = writeln!(
            out,
            "{} = {{ column = {}, case = {} }}",
            key_text(&d.name),
            columns_toml(&d.columns),
            quote(case_name(d.case))
        );
    }
    for t in &settings.tables {
        let _ = writeln!(out, "\n[[tables]]");
        let _ = writeln!(out, "name = {}", quote(t.name));
        let _ = writeln!(out, "keys = {}", names_toml(t.keys.iter().map(|k| k.name)));
        let _ = writeln!(out, "metrics = {}", names_toml(t.metrics.iter().map(|m| m.name())));
        if let Some(n) = t.top {
            let _ = writeln!(out, "top = {n}");
        }
        let _ = writeln!(out, "description = {}", quote(t.description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of `text`, which must have some.
    fn errors(text: &str) -> Vec<ConfigError> {
        match parse(text) {
            Ok(s) => panic!("expected errors, parsed {s:?}"),
            Err(e) => e.errors,
        }
    }

    /// The one problem of `text`.
    fn error(text: &str) -> ConfigError {
        let errors = errors(text);
        assert_eq!(errors.len(), 1, "{}", ConfigErrors { errors: errors.clone() });
        errors.into_iter().next().unwrap()
    }

    fn assert_error(e: &ConfigError, kind: ErrorKind, place: &str, message: &str) {
        assert_eq!(e.kind, kind, "{e}");
        assert_eq!(e.place, place, "{e}");
        assert!(e.message.contains(message), "{e}\nexpected the message to contain {message:?}");
    }

    const TABLE: &str = "[[tables]]\nname = \"t\"\nmetrics = [\"orders\"]\n";

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_empty_file_is_the_default_settings() {
        assert_eq!(parse("").unwrap(), Settings::default_settings());
        assert!(parse("# nothing\n").unwrap().is_default());
    }

    const ISSUE_EXAMPLE: &str = r#"
[input]
delimiter = ";"
decimal_separator = ","
encoding = "windows-1252"
event_time = { column = "created_at", format = "rfc3339" }
order_id = "order_number"
sku = "product_sku"
quantity = "qty"
unit_price = "price"
customer_id = "email"

[dimensions]
channel = { column = "utm_source", case = "lower" }
campaign = { column = ["utm_campaign", "campaign"] }
country = { column = "billing_country", case = "upper" }
store = { column = "store_id", case = "keep" }

[[tables]]
name = "store_sales"
keys = ["store"]
metrics = ["orders", "order_lines", "units", "revenue", "customers"]
top = 10
description = "per store"
"#;

    #[test]
    fn the_issue_example_parses() {
        let s = parse(ISSUE_EXAMPLE).unwrap();
        let input = InputMapping {
            delimiter: b';',
            decimal_separator: b',',
            encoding: Encoding::Windows1252,
            event_time: names(&["created_at"]),
            time_format: TimeFormat::Rfc3339,
            order_id: names(&["order_number"]),
            sku: names(&["product_sku"]),
            quantity: names(&["qty"]),
            unit_price: names(&["price"]),
            customer_id: names(&["email"]),
        };
        let dim =
            |name: &str, columns: &[&str], case| DimensionSpec { name: name.into(), columns: names(columns), case };
        let dims = vec![
            dim("channel", &["utm_source"], Case::Lower),
            dim("campaign", &["utm_campaign", "campaign"], Case::Lower),
            dim("country", &["billing_country"], Case::Upper),
            dim("store", &["store_id"], Case::Keep),
        ];
        let table = TableSpec {
            name: "store_sales",
            keys: &[Dim { index: 4, name: "store" }],
            metrics: &[Metric::Orders, Metric::OrderLines, Metric::Units, Metric::Revenue, Metric::Customers],
            top: Some(10),
            description: "per store",
        };
        assert_eq!(s, Settings::new(input, dims, vec![table]));
        assert_eq!(
            s.dimensions[0],
            DimensionSpec { name: "sku".into(), columns: names(&["product_sku"]), case: Case::Keep }
        );
    }

    #[test]
    fn input_keys_left_out_keep_their_defaults() {
        let s = parse("[input]\nquantity = [\"qty\", \"Quantity\"]\nevent_time = \"created_at\"\n").unwrap();
        let mut expected = Settings::default_settings();
        expected.input.quantity = names(&["qty", "Quantity"]);
        expected.input.event_time = names(&["created_at"]);
        assert_eq!(s, expected);
        let s = parse("[input]\nevent_time = { format = \"unix_millis\" }\n").unwrap();
        assert_eq!(s.input.event_time, names(&["event_time"]));
        assert_eq!(s.input.time_format, TimeFormat::UnixMillis);
        let s = parse("[input]\nevent_time = { column = \"ts\", format = \"%d/%m/%Y %H:%M\" }\n").unwrap();
        assert_eq!(s.input.time_format, TimeFormat::Pattern("%d/%m/%Y %H:%M".into()));
        assert_eq!(parse("[input]\ndelimiter = \"\\t\"\n").unwrap().input.delimiter, b'\t');
        assert_eq!(parse("[input]\nencoding = \"UTF-16\"\n").unwrap().input.encoding, Encoding::Utf16);
    }

    #[test]
    fn dimensions_replace_the_defaults_in_the_order_written_and_default_tables_follow_them() {
        // The default tables' keys, re-indexed into the declared dimensions.
        let text = "[dimensions]\ndevice = {}\ncountry = { case = \"upper\" }\ncampaign = {}\nchannel = {}\ncategory = {}\nzone = \"region\"\n";
        let s = parse(text).unwrap();
        let order: Vec<&str> = s.dimensions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(order, ["sku", "device", "country", "campaign", "channel", "category", "zone"]);
        assert_eq!(s.dimensions[6].columns, names(&["region"]));
        assert_eq!(s.dimensions[2].case, Case::Upper);
        for t in &s.tables {
            for k in t.keys {
                assert_eq!(s.dimensions[k.index].name, k.name, "{}", t.name);
            }
        }
        assert_eq!(
            s.table("channel_performance").unwrap().keys,
            &[Dim { index: 4, name: "channel" }, Dim { index: 3, name: "campaign" }]
        );
    }

    #[test]
    fn round_trips() {
        for s in [Settings::default_settings(), parse(ISSUE_EXAMPLE).unwrap()] {
            let text = to_toml(&s);
            assert_eq!(parse(&text), Ok(s.clone()), "{text}");
        }
        // A pattern, a tab, several names for one field, sku as a key, no dimensions besides sku.
        let text = "[input]\ndelimiter = \"\\t\"\nevent_time = { column = [\"ts\", \"Time\"], format = \"%Y-%m-%d %H:%M:%S.%f\" }\n\
                    [dimensions]\n[[tables]]\nname = \"hourly_sku\"\nkeys = [\"sku\"]\nmetrics = [\"avg_order_value\"]\n";
        let s = parse(text).unwrap();
        assert_eq!(s.dimensions.len(), 1);
        assert_eq!(parse(&to_toml(&s)), Ok(s.clone()), "{}", to_toml(&s));
    }

    #[test]
    fn to_toml_writes_every_default() {
        let text = to_toml(&Settings::default_settings());
        for line in [
            "delimiter = \",\"",
            "decimal_separator = \".\"",
            "encoding = \"utf-8\"",
            "event_time = { column = \"event_time\", format = \"rfc3339\" }",
            "customer_id = \"customer_id\"",
            "country = { column = \"country\", case = \"upper\" }",
            "name = \"top_products\"",
            "top = 10",
            "keys = []",
            "description = \"one row per hour: the headline numbers\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        assert!(text.starts_with("# "));
        assert!(!text.contains("sku = {"), "sku is not written as a dimension:\n{text}");
    }

    #[test]
    fn syntax_errors_have_their_line_and_column() {
        let e = error("[input]\ndelimiter = ;\n");
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(e.location, Some(Location { line: 2, column: 13 }));
        assert_eq!(e.place, "line 2, column 13");
        assert!(e.to_string().starts_with("error at line 2, column 13: invalid TOML"), "{e}");
        let e = &errors("[input]\nsku = \"a\"\nsku = \"b\"\n")[0];
        assert_eq!((e.kind, e.location.map(|l| l.line)), (ErrorKind::Syntax, Some(3)), "{e}");
    }

    #[test]
    fn unknown_keys_everywhere() {
        let text = "inptu = 1\n[input]\ndelimeter = \";\"\nevent_time = { colum = \"t\" }\n[dimensions]\nstore = { columns = \"s\" }\n\
                    [[tables]]\nname = \"t\"\nmetrics = [\"orders\"]\nkey = []\n";
        let e = errors(text);
        let places: Vec<&str> = e.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "inptu",
                "[input].delimeter",
                "[input].event_time.colum",
                "[dimensions].store.columns",
                "[[tables]] #1 (t).key"
            ]
        );
        assert!(e.iter().all(|e| e.kind == ErrorKind::UnknownKey));
        assert_eq!(
            e[0].to_string(),
            "error at inptu (line 1): unknown key \"inptu\"; use one of input, dimensions, tables"
        );
        assert!(e[1].fix.contains("delimiter, decimal_separator, encoding"), "{}", e[1]);
        assert_eq!(e[1].location, Some(Location { line: 3, column: 1 }));
        assert!(e[4].fix.ends_with("name, keys, metrics, top, description"), "{}", e[4]);
    }

    #[test]
    fn wrong_types() {
        let e = errors("input = 3\n");
        assert_error(&e[0], ErrorKind::WrongType, "[input]", "expected a table, found integer");
        let e = errors("[input]\nsku = 5\n[dimensions]\nstore = { case = 1 }\n[[tables]]\nname = \"t\"\nmetrics = \"orders\"\ntop = \"ten\"\n");
        assert_eq!(e.len(), 4, "{}", ConfigErrors { errors: e.clone() });
        assert_error(
            &e[0],
            ErrorKind::WrongType,
            "[input].sku",
            "expected a column name or a list of them, found integer",
        );
        assert_error(&e[1], ErrorKind::WrongType, "[dimensions].store.case", "expected a string, found integer");
        assert_error(
            &e[2],
            ErrorKind::WrongType,
            "[[tables]] #1 (t).metrics",
            "expected a list of metric names, found string",
        );
        assert_error(&e[3], ErrorKind::WrongType, "[[tables]] #1 (t).top", "expected an integer, found string");
        let e = error("tables = { name = \"t\" }\n");
        assert_error(&e, ErrorKind::WrongType, "[[tables]]", "expected an array of tables");
        let e = error("[input]\nquantity = [\"qty\", 2]\n");
        assert_error(&e, ErrorKind::WrongType, "[input].quantity[1]", "found integer");
    }

    #[test]
    fn unknown_metric() {
        let text =
            "[[tables]]\nname = \"store_sales\"\nkeys = [\"channel\"]\nmetrics = [\"orders\", \"units\", \"revenu\"]\n";
        let e = error(text);
        assert_eq!(
            e.to_string(),
            "error at [[tables]] #1 (store_sales).metrics[2] (line 4): unknown metric \"revenu\"; use one of orders, \
             order_lines, units, revenue, customers, products, avg_order_value"
        );
        assert_eq!(e.kind, ErrorKind::UnknownMetric);
    }

    #[test]
    fn table_keys_must_be_dimensions() {
        let text = format!("{TABLE}[[tables]]\nname = \"store_sales\"\nkeys = [\"store\"]\nmetrics = [\"orders\"]\n");
        let e = error(&text);
        assert_error(
            &e,
            ErrorKind::UnknownDimension,
            "[[tables]] #2 (store_sales).keys[0]",
            "key \"store\" is not a dimension",
        );
        assert_eq!(e.fix, "declare it under [dimensions]");
        // Dimensions given, default tables kept: each dimension they need and miss is reported.
        let e = errors("[dimensions]\nchannel = {}\nstore = {}\n");
        let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "the default tables (channel_performance) group by \"campaign\", which [dimensions] does not declare",
                "the default tables (category_sales) group by \"category\", which [dimensions] does not declare",
                "the default tables (geo_device) group by \"country\", which [dimensions] does not declare",
                "the default tables (geo_device) group by \"device\", which [dimensions] does not declare",
            ]
        );
        assert!(e.iter().all(|e| e.kind == ErrorKind::UnknownDimension && e.place == "[dimensions]"));
        assert_eq!(e[0].fix, "declare it, or give your own [[tables]]");
        assert!(parse(
            "[dimensions]\nstore = {}\n[[tables]]\nname = \"s\"\nkeys = [\"store\", \"sku\"]\nmetrics = [\"units\"]\n"
        )
        .is_ok());
    }

    #[test]
    fn duplicate_table_names_hourly_and_daily() {
        let e = error(&format!("{TABLE}{TABLE}"));
        assert_error(
            &e,
            ErrorKind::DuplicateTable,
            "[[tables]] #2 (t).name",
            "the table name \"t\" is also the name of [[tables]] #1 (t)",
        );
        assert_eq!(e.location.map(|l| l.line), Some(5));
        let table = |name: &str| format!("[[tables]]\nname = \"{name}\"\nmetrics = [\"orders\"]\n");
        let e = error(&format!("{}{}", table("kpis"), table("hourly_kpis")));
        assert_error(
            &e,
            ErrorKind::DuplicateTable,
            "[[tables]] #2 (hourly_kpis).name",
            "the daily table \"daily_kpis\" is also a name of [[tables]] #1 (kpis)",
        );
        let e = error(&format!("{}{}", table("x"), table("daily_x")));
        assert_error(
            &e,
            ErrorKind::DuplicateTable,
            "[[tables]] #2 (daily_x).name",
            "the table name \"daily_x\" is also the name of [[tables]] #1 (x)",
        );
    }

    #[test]
    fn daily_name_is_the_engines() {
        for t in crate::aggregate::tables::DEFAULT_TABLES {
            assert_eq!(daily_name(t.name), t.table_name(crate::aggregate::tables::Period::Day));
        }
    }

    #[test]
    fn empty_and_duplicate_metrics_and_keys() {
        let e = error("[[tables]]\nname = \"t\"\nmetrics = []\n");
        assert_error(&e, ErrorKind::Empty, "[[tables]] #1 (t).metrics", "the table has no metrics");
        let e = error("[[tables]]\nname = \"t\"\n");
        assert_error(&e, ErrorKind::MissingKey, "[[tables]] #1 (t)", "the table has no metrics");
        let e = error("[[tables]]\nmetrics = [\"orders\"]\n");
        assert_error(&e, ErrorKind::MissingKey, "[[tables]] #1", "the table has no name");
        let e = error("tables = []\n");
        assert_error(&e, ErrorKind::Empty, "[[tables]]", "the list of tables is empty");
        let e = errors("[[tables]]\nname = \"t\"\nkeys = [\"channel\", \"channel\"]\nmetrics = [\"orders\", \"units\", \"orders\"]\n");
        assert_eq!(e.len(), 2);
        assert_error(&e[0], ErrorKind::Duplicate, "[[tables]] #1 (t).keys[1]", "key \"channel\" is listed twice");
        assert_error(&e[1], ErrorKind::Duplicate, "[[tables]] #1 (t).metrics[2]", "metric \"orders\" is listed twice");
    }

    #[test]
    fn at_most_max_keys() {
        let text = "[[tables]]\nname = \"t\"\nkeys = [\"sku\", \"category\", \"channel\", \"campaign\", \"country\"]\nmetrics = [\"orders\"]\n";
        let e = error(text);
        assert_error(&e, ErrorKind::TooManyKeys, "[[tables]] #1 (t).keys", "5 keys, more than the 4 a table may have");
    }

    #[test]
    fn a_column_is_read_once() {
        let e = error("[input]\norder_id = \"id\"\n[dimensions]\nstore = { column = \" ID \" }\n[[tables]]\nname = \"t\"\nmetrics = [\"orders\"]\n");
        assert_error(
            &e,
            ErrorKind::ColumnMappedTwice,
            "[dimensions].store",
            "column \" ID \" is also read by [input].order_id",
        );
        assert_eq!(e.location.map(|l| l.line), Some(4));
        // A clash with a default is reported where the file is.
        let e = error("[input]\nsku = \"Channel\"\n");
        assert_error(
            &e,
            ErrorKind::ColumnMappedTwice,
            "[input].sku",
            "column \"Channel\" is also read by [dimensions].channel (default)",
        );
        let e = error("[input]\nquantity = [\"qty\", \"QTY\"]\n");
        assert_error(&e, ErrorKind::ColumnMappedTwice, "[input].quantity", "column \"QTY\" is listed twice");
    }

    #[test]
    fn dimension_names() {
        let text =
            "[dimensions]\nsku = {}\nrank = {}\nrevenue = {}\nhour_start = {}\nStore = {}\n\"my dim\" = {}\nok = {}\n\
                    [[tables]]\nname = \"t\"\nkeys = [\"ok\"]\nmetrics = [\"orders\"]\n";
        let e = errors(text);
        let places: Vec<&str> = e.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "[dimensions].sku",
                "[dimensions].rank",
                "[dimensions].revenue",
                "[dimensions].hour_start",
                "[dimensions].Store",
                "[dimensions].\"my dim\""
            ]
        );
        assert!(e.iter().all(|e| e.kind == ErrorKind::BadDimensionName));
        assert!(e[0].message.contains("always the first dimension"), "{}", e[0]);
        assert!(e[1].message.contains("clashes with an output column"), "{}", e[1]);
        assert!(e[2].message.contains("clashes with an output column"), "{}", e[2]);
        assert!(e[4].message.contains("is not a safe identifier"), "{}", e[4]);
        let e = error("[dimensions]\nstore = { case = \"title\" }\n[[tables]]\nname = \"t\"\nmetrics = [\"orders\"]\n");
        assert_error(&e, ErrorKind::BadCase, "[dimensions].store.case", "unknown case \"title\"");
    }

    #[test]
    fn table_names() {
        let table = |name: &str| format!("[[tables]]\nname = {name:?}\nmetrics = [\"orders\"]\n");
        for bad in ["../x", "a/b", "my table", "_private", "Sales", "", "1st"] {
            let e = error(&table(bad));
            assert_error(
                &e,
                ErrorKind::BadTableName,
                &format!("[[tables]] #1 ({bad}).name"),
                "is not a safe identifier",
            );
        }
        for reserved in ["summaries", "rejects", "reports"] {
            let e = error(&table(reserved));
            assert_error(
                &e,
                ErrorKind::BadTableName,
                &format!("[[tables]] #1 ({reserved}).name"),
                "is the name of another output folder",
            );
        }
    }

    #[test]
    fn delimiters_and_decimal_separators() {
        for (bad, message) in [
            ("\";;\"", "must be a single character"),
            ("'\"'", "the quote character"),
            ("\"\\n\"", "a line break"),
            ("\"\\r\"", "a line break"),
            ("\"a\"", "a tab or an ASCII punctuation mark"),
            ("\"\"", "is empty"),
        ] {
            let e = error(&format!("[input]\ndelimiter = {bad}\n"));
            assert_error(&e, ErrorKind::BadDelimiter, "[input].delimiter", message);
        }
        let e = error("[input]\ndelimiter = \",\"\ndecimal_separator = \",\"\n");
        assert_error(
            &e,
            ErrorKind::BadDelimiter,
            "[input].delimiter",
            "\",\" is both the delimiter and the decimal separator",
        );
        let e = error("[input]\ndecimal_separator = \",\"\n");
        assert_error(
            &e,
            ErrorKind::BadDelimiter,
            "[input].decimal_separator",
            "is both the delimiter and the decimal separator",
        );
        assert!(e.fix.contains("delimiter = \";\""), "{e}");
        let e = error("[input]\ndecimal_separator = \"'\"\n");
        assert_error(&e, ErrorKind::BadDecimalSeparator, "[input].decimal_separator", "bad decimal separator \"'\"");
    }

    #[test]
    fn encodings() {
        let e = error("[input]\nencoding = \"latin1\"\n");
        assert_error(&e, ErrorKind::UnknownEncoding, "[input].encoding", "unknown encoding \"latin1\"");
        assert_eq!(e.fix, "use one of utf-8, windows-1252, utf-16");
    }

    #[test]
    fn time_formats() {
        let e = error("[input]\nevent_time = { column = \"t\", format = \"iso\" }\n");
        assert_error(&e, ErrorKind::BadTimeFormat, "[input].event_time.format", "unknown time format \"iso\"");
        let e = error("[input]\nevent_time = { format = \"%Y-%m-%d %H:%Q\" }\n");
        assert_error(&e, ErrorKind::BadTimeFormat, "[input].event_time.format", "unknown directive %Q at position 13");
        for ok in ["%d/%m/%Y %H:%M:%S", "%b %d %y %I:%M %p", "%Y-%m-%dT%H:%M:%S.%f 100%%", "%B %d %y %Hh", "é%Y%m%d%H"]
        {
            assert_eq!(check_time_pattern(ok), Ok(()), "{ok}");
        }
        for (pattern, want) in [
            ("%Y-%Q", "unknown directive %Q at position 4; supported: %Y %y %m %b %B %d %H %I %p %M %S %f %%"),
            ("%Y-%m-%d %H:%M:%S %z", "unknown directive %z at position 19"),
            ("é%Y-%m-%d %H%Q", "unknown directive %Q at position 13"),
            ("%Y-%m-%d %H%", "a lone % at position 12 ends the pattern"),
            ("%Y-%m-%d %H:%M:%M", "%M at position 16 repeats the field of %M at position 13"),
            ("%Y-%m-%d %b %H", "%b at position 10 repeats the field of %m at position 4"),
            ("%m/%d %H", "the pattern lacks a year (%Y or %y)"),
            ("%Y %d %H", "the pattern lacks a month (%m, %b or %B)"),
            ("%Y %m %H", "the pattern lacks a day (%d)"),
            ("%Y-%m-%d", "the pattern lacks an hour (%H, or %I with %p)"),
            ("", "the pattern lacks a year (%Y or %y), a month (%m, %b or %B), a day (%d), an hour"),
            ("%Y-%m-%d %I:%M", "%I at position 10 needs %p (AM/PM)"),
            ("%Y-%m-%d %H:%M %p", "%p at position 16 goes with %I"),
            ("%Y-%m-%d %H:%M.%f", "%f at position 16 needs the seconds (%S)"),
        ] {
            let err = check_time_pattern(pattern).unwrap_err();
            assert!(err.contains(want.strip_prefix("the pattern ").unwrap_or(want)), "{pattern:?}: {err}");
        }
    }

    #[test]
    fn top_must_be_positive() {
        let e = error("[[tables]]\nname = \"t\"\nkeys = [\"sku\"]\nmetrics = [\"revenue\"]\ntop = 0\n");
        assert_error(&e, ErrorKind::BadTop, "[[tables]] #1 (t).top", "top = 0 keeps no groups");
        let e = error("[[tables]]\nname = \"t\"\nmetrics = [\"revenue\"]\ntop = -3\n");
        assert_error(&e, ErrorKind::BadTop, "[[tables]] #1 (t).top", "top = -3");
    }

    #[test]
    fn empty_columns() {
        let e = error("[input]\nsku = \"  \"\n");
        assert_error(&e, ErrorKind::EmptyColumn, "[input].sku", "empty column name");
        let e = error("[input]\nsku = []\n");
        assert_error(&e, ErrorKind::EmptyColumn, "[input].sku", "empty list of column names");
        let e = error(
            "[dimensions]\nstore = { column = [\"s\", \"\"] }\n[[tables]]\nname = \"t\"\nmetrics = [\"orders\"]\n",
        );
        assert_error(&e, ErrorKind::EmptyColumn, "[dimensions].store.column[1]", "empty column name");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "[input]\ndelimiter = \"ab\"\nencoding = \"ebcdic\"\n[[tables]]\nname = \"a b\"\nmetrics = [\"x\"]\ntop = 0\n";
        let e = errors(text);
        let kinds: Vec<ErrorKind> = e.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                ErrorKind::BadDelimiter,
                ErrorKind::UnknownEncoding,
                ErrorKind::BadTableName,
                ErrorKind::UnknownMetric,
                ErrorKind::BadTop
            ]
        );
        assert_eq!(ConfigErrors { errors: e }.to_string().lines().count(), 5);
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, ISSUE_EXAMPLE).unwrap();
        assert_eq!(load(&path).unwrap(), parse(ISSUE_EXAMPLE).unwrap());
        std::fs::write(&path, "[input]\nencoding = \"x\"\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "config file {} has 1 problem(s):\nerror at [input].encoding (line 2)",
                path.display()
            )),
            "{e}"
        );
        let missing = dir.path().join("missing.toml");
        let e = load(&missing).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot read config file {}: ", missing.display())), "{e}");
        std::fs::write(&path, format!("\u{feff}{ISSUE_EXAMPLE}")).unwrap();
        assert_eq!(load(&path).unwrap(), parse(ISSUE_EXAMPLE).unwrap());
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(load(&path), Err(LoadError::NotUtf8 { .. })));
    }

    #[test]
    fn a_dimension_with_errors_is_reported_once() {
        let text =
            "[input]\norder_id = \"id\"\n[dimensions]\nstore = { column = \"ID\", case = \"title\" }\nrank = 3\n\
                    [[tables]]\nname = \"t\"\nkeys = [\"store\", \"rank\"]\nmetrics = [\"orders\"]\n";
        let e = errors(text);
        let places: Vec<&str> = e.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(
            places,
            ["[dimensions].store.case", "[dimensions].rank", "[dimensions].rank", "[dimensions].store"],
            "{}",
            ConfigErrors { errors: e.clone() }
        );
        let kinds: Vec<ErrorKind> = e.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [ErrorKind::BadCase, ErrorKind::BadDimensionName, ErrorKind::WrongType, ErrorKind::ColumnMappedTwice]
        );
    }

    #[test]
    fn the_docs_examples_parse() {
        let doc = include_str!("../../docs/config.md");
        let blocks: Vec<&str> = doc.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
        assert!(blocks.len() >= 5);
        for block in blocks.iter().filter(|b| !b.starts_with("# part of a file")) {
            if let Err(e) = parse(block) {
                panic!("{e}\nin\n{block}");
            }
        }
        let defaults = blocks.last().unwrap();
        assert_eq!(to_toml(&Settings::default_settings()).split_once("\n\n").unwrap().1, *defaults);
        assert_eq!(parse(blocks[blocks.len() - 2]), parse(ISSUE_EXAMPLE));
    }

    #[test]
    fn dimensions_keep_their_order_in_any_toml_form() {
        let text = "[dimensions.zeta]\ncolumn = \"z\"\n[dimensions.alpha]\ncase = \"keep\"\n[dimensions]\nmid.column = \"m\"\n\
                    [[tables]]\nname = \"t\"\nkeys = [\"alpha\"]\nmetrics = [\"orders\"]\n";
        let s = parse(text).unwrap();
        let order: Vec<&str> = s.dimensions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(order, ["sku", "zeta", "alpha", "mid"]);
        assert_eq!(s.tables[0].keys, &[Dim { index: 2, name: "alpha" }]);
        assert_eq!(parse(&to_toml(&s)), Ok(s));
    }

    #[test]
    fn odd_column_names_round_trip() {
        let text = "[input]\nunit_price = [\"Preis (€)\", \"a\\\"b\\\\c\", \"it's\"]\ndelimiter = \"|\"\n";
        let s = parse(text).unwrap();
        assert_eq!(s.input.unit_price, names(&["Preis (€)", "a\"b\\c", "it's"]));
        assert_eq!(parse(&to_toml(&s)), Ok(s));
    }
}
