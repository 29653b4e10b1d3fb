//! The insight tables, declared as data.
//!
//! Each [`TableSpec`] names its group keys and metrics; the aggregation engine, the Parquet schema, the
//! README's column docs and (later) the Glue catalog are all derived from this one list. A new table is a
//! new entry here.

use crate::contract::Dim;

/// A measure computed per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Distinct `order_id`.
    Orders,
    /// Number of valid rows.
    OrderLines,
    /// Sum of `quantity`.
    Units,
    /// Sum of `quantity * unit_price`, exact.
    Revenue,
    /// Distinct non-empty `customer_id`.
    Customers,
    /// Distinct `sku`.
    Products,
    /// `revenue / orders`, rounded half away from zero to cents.
    AvgOrderValue,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Orders,
        Metric::OrderLines,
        Metric::Units,
        Metric::Revenue,
        Metric::Customers,
        Metric::Products,
        Metric::AvgOrderValue,
    ];

    /// The metric named `name` (as in [`Metric::name`]).
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Orders => "orders",
            Metric::OrderLines => "order_lines",
            Metric::Units => "units",
            Metric::Revenue => "revenue",
            Metric::Customers => "customers",
            Metric::Products => "products",
            Metric::AvgOrderValue => "avg_order_value",
        }
    }

    /// The column type of the metric in the output.
    pub fn column_type(self) -> ColumnType {
        match self {
            Metric::Revenue | Metric::AvgOrderValue => ColumnType::Decimal,
            _ => ColumnType::Int64,
        }
    }

    /// What the metric means, for the docs.
    pub fn description(self) -> &'static str {
        match self {
            Metric::Orders => "distinct order_id",
            Metric::OrderLines => "valid rows (order lines)",
            Metric::Units => "sum of quantity",
            Metric::Revenue => "sum of quantity * unit_price, exact",
            Metric::Customers => "distinct non-empty customer_id (guests not counted)",
            Metric::Products => "distinct sku",
            Metric::AvgOrderValue => "revenue / orders, rounded half away from zero to cents",
        }
    }
}

/// The type of an output column, mapped to Parquet/Arrow by the writer and to SQL by the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Timestamp with microsecond precision, UTC.
    Timestamp,
    /// A calendar date (the UTC day).
    Date,
    Int64,
    String,
    /// decimal(18,2).
    Decimal,
}

impl ColumnType {
    /// The SQL (Athena/Glue) spelling of the type.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Int64 => "bigint",
            ColumnType::String => "string",
            ColumnType::Decimal => "decimal(18,2)",
        }
    }
}

/// One insight table. A table from a config file has its names and lists leaked for the life of the
/// process, as the settings are (see [`crate::settings::Settings::leak`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub name: &'static str,
    /// Group keys after `hour_start`.
    pub keys: &'static [Dim],
    pub metrics: &'static [Metric],
    /// Keep only the top N groups per hour by revenue (ties by keys ascending), with a `rank` column 1..N
    /// after `hour_start`.
    pub top: Option<usize>,
    pub description: &'static str,
}

/// The period a table's rows are per: every table is published per UTC hour and, as `daily_<name>`, per
/// UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub const ALL: [Period; 2] = [Period::Hour, Period::Day];

    /// The first column: `hour_start` (timestamp) or `day` (date).
    pub fn column(self) -> (&'static str, ColumnType) {
        match self {
            Period::Hour => ("hour_start", ColumnType::Timestamp),
            Period::Day => ("day", ColumnType::Date),
        }
    }
}

impl TableSpec {
    /// Whether `other` gives the same rows (name, keys, metrics and cut; the description aside).
    pub fn same_rows_as(&self, other: &TableSpec) -> bool {
        (self.name, self.keys, self.metrics, self.top) == (other.name, other.keys, other.metrics, other.top)
    }

    /// The name of the table for `period`: `name` per hour, `daily_<name>` per day (`hourly_kpis` becomes
    /// `daily_kpis`).
    pub fn table_name(&self, period: Period) -> String {
        match period {
            Period::Hour => self.name.to_string(),
            Period::Day => format!("daily_{}", self.name.strip_prefix("hourly_").unwrap_or(self.name)),
        }
    }

    /// The output columns of the hourly table, in order, with their types.
    pub fn columns(&self) -> Vec<(&'static str, ColumnType)> {
        self.columns_of(Period::Hour)
    }

    /// The output columns of the table for `period`, in order, with their types.
    pub fn columns_of(&self, period: Period) -> Vec<(&'static str, ColumnType)> {
        let mut cols = vec![period.column()];
        if self.top.is_some() {
            cols.push(("rank", ColumnType::Int64));
        }
        cols.extend(self.keys.iter().map(|k| (k.name(), ColumnType::String)));
        cols.extend(self.metrics.iter().map(|m| (m.name(), m.column_type())));
        cols
    }
}

/// The insight tables without a config file (the default of [`crate::settings::Settings`]).
pub fn default_tables() -> Vec<TableSpec> {
    DEFAULT_TABLES.to_vec()
}

/// The five default insight tables, in output order.
pub const DEFAULT_TABLES: &[TableSpec] = &[
    TableSpec {
        name: "hourly_kpis",
        keys: &[],
        metrics: &[
            Metric::Orders,
            Metric::OrderLines,
            Metric::Units,
            Metric::Revenue,
            Metric::Customers,
            Metric::AvgOrderValue,
        ],
        top: None,
        description: "one row per hour: the headline numbers",
    },
    TableSpec {
        name: "channel_performance",
        keys: &[Dim::CHANNEL, Dim::CAMPAIGN],
        metrics: &[Metric::Orders, Metric::OrderLines, Metric::Units, Metric::Revenue, Metric::Customers],
        top: None,
        description: "per marketing channel and campaign",
    },
    TableSpec {
        name: "category_sales",
        keys: &[Dim::CATEGORY],
        metrics: &[Metric::Orders, Metric::Units, Metric::Revenue, Metric::Products],
        top: None,
        description: "per product category",
    },
    TableSpec {
        name: "geo_device",
        keys: &[Dim::COUNTRY, Dim::DEVICE],
        metrics: &[Metric::Orders, Metric::Customers, Metric::Revenue],
        top: None,
        description: "per country and device",
    },
    TableSpec {
        name: "top_products",
        keys: &[Dim::SKU],
        metrics: &[Metric::Orders, Metric::Units, Metric::Revenue],
        top: Some(10),
        description: "the 10 best-selling SKUs of each hour by revenue (ties by sku)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_match_the_contract() {
        let cols = |name: &str| -> Vec<&str> {
            DEFAULT_TABLES.iter().find(|t| t.name == name).unwrap().columns().iter().map(|c| c.0).collect()
        };
        assert_eq!(
            cols("hourly_kpis"),
            ["hour_start", "orders", "order_lines", "units", "revenue", "customers", "avg_order_value"]
        );
        assert_eq!(
            cols("channel_performance"),
            ["hour_start", "channel", "campaign", "orders", "order_lines", "units", "revenue", "customers"]
        );
        assert_eq!(cols("category_sales"), ["hour_start", "category", "orders", "units", "revenue", "products"]);
        assert_eq!(cols("geo_device"), ["hour_start", "country", "device", "orders", "customers", "revenue"]);
        assert_eq!(cols("top_products"), ["hour_start", "rank", "sku", "orders", "units", "revenue"]);
        let top = DEFAULT_TABLES.iter().find(|t| t.name == "top_products").unwrap();
        assert_eq!(top.table_name(Period::Day), "daily_top_products");
        assert_eq!(DEFAULT_TABLES[0].table_name(Period::Day), "daily_kpis");
        let daily: Vec<_> = top.columns_of(Period::Day).iter().map(|c| c.0).collect();
        assert_eq!(daily, ["day", "rank", "sku", "orders", "units", "revenue"]);
    }
}
