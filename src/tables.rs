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
            ColumnType::Int64 => "bigint",
            ColumnType::String => "string",
            ColumnType::Decimal => "decimal(18,2)",
        }
    }
}

/// One insight table.
#[derive(Debug)]
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

impl TableSpec {
    /// The output columns, in order, with their types.
    pub fn columns(&self) -> Vec<(&'static str, ColumnType)> {
        let mut cols = vec![("hour_start", ColumnType::Timestamp)];
        if self.top.is_some() {
            cols.push(("rank", ColumnType::Int64));
        }
        cols.extend(self.keys.iter().map(|k| (k.name(), ColumnType::String)));
        cols.extend(self.metrics.iter().map(|m| (m.name(), m.column_type())));
        cols
    }
}

/// The five insight tables, in output order.
pub const TABLES: &[TableSpec] = &[
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
        keys: &[Dim::Channel, Dim::Campaign],
        metrics: &[Metric::Orders, Metric::OrderLines, Metric::Units, Metric::Revenue, Metric::Customers],
        top: None,
        description: "per marketing channel and campaign",
    },
    TableSpec {
        name: "category_sales",
        keys: &[Dim::Category],
        metrics: &[Metric::Orders, Metric::Units, Metric::Revenue, Metric::Products],
        top: None,
        description: "per product category",
    },
    TableSpec {
        name: "geo_device",
        keys: &[Dim::Country, Dim::Device],
        metrics: &[Metric::Orders, Metric::Customers, Metric::Revenue],
        top: None,
        description: "per country and device",
    },
    TableSpec {
        name: "top_products",
        keys: &[Dim::Sku],
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
            TABLES.iter().find(|t| t.name == name).unwrap().columns().iter().map(|c| c.0).collect()
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
    }
}
