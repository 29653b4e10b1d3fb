//! What a shop's export looks like and which tables to build from it: the input mapping, the dimensions
//! and the insight tables, as data. Without a config file every part has today's default
//! ([`Settings::default_ref`]); a TOML file ([`file`]) replaces the parts it names.
//!
//! A run reads its settings once (a cold start in Lambda) and keeps them for the life of the process, so
//! they are leaked into a `&'static Settings` ([`Settings::leak`]) that every stage borrows.

pub mod file;

use std::sync::OnceLock;

use crate::aggregate::tables::TableSpec;

/// How a dimension's value is normalised after trimming. An empty value is `unknown` in every case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    #[default]
    Lower,
    Upper,
    Keep,
}

/// How the event time is written in the export. Every form is taken as UTC unless it carries an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339 (`2026-11-22T13:05:09Z`, an offset, fractions), or `YYYY-MM-DD HH:MM:SS` without one.
    Rfc3339,
    /// Seconds since the Unix epoch.
    UnixSeconds,
    /// Milliseconds since the Unix epoch.
    UnixMillis,
    /// A strftime pattern such as `%d/%m/%Y %H:%M`.
    Pattern(String),
}

impl TimeFormat {
    /// The parser of this format (a pattern is checked when the config is read, so it compiles).
    pub fn parser(&self) -> Result<crate::contract::parse::TimeFormat, String> {
        crate::contract::parse::TimeFormat::from_name(self.name())
    }

    /// The name written in a config file.
    pub fn name(&self) -> &str {
        match self {
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::UnixSeconds => "unix_seconds",
            TimeFormat::UnixMillis => "unix_millis",
            TimeFormat::Pattern(p) => p,
        }
    }
}

/// The text encoding of the export (the decoder's own type: one list of encodings and their names).
pub use crate::read::decode::TextEncoding as Encoding;

/// Where the fields of the contract are in the export: the header names accepted for each (matched trimmed
/// and case-insensitively; the first one that is present is used), and how the file is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputMapping {
    pub delimiter: u8,
    /// `.` or `,`: the separator of a price's cents.
    pub decimal_separator: u8,
    pub encoding: Encoding,
    pub event_time: Vec<String>,
    pub time_format: TimeFormat,
    pub order_id: Vec<String>,
    pub sku: Vec<String>,
    pub quantity: Vec<String>,
    pub unit_price: Vec<String>,
    /// Optional in the export: a file without it has guests only.
    pub customer_id: Vec<String>,
}

/// A dimension of the tables: a name (its column in the output), the export columns it is read from
/// (optional: a missing column or an empty value is `unknown`) and how its values are normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimensionSpec {
    pub name: String,
    pub columns: Vec<String>,
    pub case: Case,
}

/// The dimension read from the `sku` field: always there, first, kept as written. `products` counts it.
pub const SKU: &str = "sku";

/// Everything a run needs to know about its export and its tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub input: InputMapping,
    /// Every dimension, [`SKU`] first (its columns are the mapping's `sku`).
    pub dimensions: Vec<DimensionSpec>,
    /// The insight tables, in output order.
    pub tables: Vec<TableSpec>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl InputMapping {
    /// Today's contract: a comma-separated UTF-8 file with the contract's own column names.
    pub fn default_mapping() -> Self {
        InputMapping {
            delimiter: b',',
            decimal_separator: b'.',
            encoding: Encoding::Utf8,
            event_time: names(&["event_time"]),
            time_format: TimeFormat::Rfc3339,
            order_id: names(&["order_id"]),
            sku: names(&["sku"]),
            quantity: names(&["quantity"]),
            unit_price: names(&["unit_price"]),
            customer_id: names(&["customer_id"]),
        }
    }
}

impl DimensionSpec {
    fn new(name: &str, case: Case) -> Self {
        DimensionSpec { name: name.to_string(), columns: vec![name.to_string()], case }
    }

    /// The dimensions besides `sku` when a config does not declare its own.
    pub fn default_dimensions() -> Vec<DimensionSpec> {
        vec![
            DimensionSpec::new("category", Case::Lower),
            DimensionSpec::new("channel", Case::Lower),
            DimensionSpec::new("campaign", Case::Lower),
            DimensionSpec::new("country", Case::Upper),
            DimensionSpec::new("device", Case::Lower),
        ]
    }

    /// The `sku` dimension of `mapping`.
    pub fn sku(mapping: &InputMapping) -> Self {
        DimensionSpec { name: SKU.to_string(), columns: mapping.sku.clone(), case: Case::Keep }
    }
}

impl Settings {
    /// Settings from their parts: `sku` is put first among the dimensions.
    pub fn new(input: InputMapping, dimensions: Vec<DimensionSpec>, tables: Vec<TableSpec>) -> Self {
        let sku = DimensionSpec::sku(&input);
        Settings { input, dimensions: std::iter::once(sku).chain(dimensions).collect(), tables }
    }

    /// Today's contract and tables.
    pub fn default_settings() -> Self {
        Settings::new(
            InputMapping::default_mapping(),
            DimensionSpec::default_dimensions(),
            crate::aggregate::tables::default_tables(),
        )
    }

    /// The default settings, built once.
    pub fn default_ref() -> &'static Settings {
        static DEFAULT: OnceLock<Settings> = OnceLock::new();
        DEFAULT.get_or_init(Settings::default_settings)
    }

    /// The settings for the rest of the process (read once per process, so leaking them costs one copy).
    pub fn leak(self) -> &'static Settings {
        Box::leak(Box::new(self))
    }

    /// The index of the dimension named `name`.
    pub fn dimension(&self, name: &str) -> Option<usize> {
        self.dimensions.iter().position(|d| d.name == name)
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Whether these are the default settings.
    pub fn is_default(&self) -> bool {
        self == Settings::default_ref()
    }
}
