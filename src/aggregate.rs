//! The aggregation engine: turns validated chunks into the insight tables declared in [`crate::tables`].
//!
//! Memory is bounded by the number of distinct keys, not by the file. Each chunk becomes a polars
//! DataFrame of integer codes, and every table reduces it with one polars `group_by` to *mergeable partial
//! results*: per group (`hour` + the table's keys) the additive sums (`order_lines`, `units`, `revenue`) and
//! the chunk's unique ids of each distinct-count metric. Those partials are merged into a map of
//! [`GroupState`]s: sums are added, ids are OR-ed into Roaring bitmaps. Ids are dense codes assigned in
//! order of first appearance ([`crate::contract::Interner`]), so the bitmaps stay small: about one bit
//! per id for large groups and two bytes per id for sparse ones. The chunk is then dropped.
//!
//! At the end the small per-group result is labelled (codes -> strings), ranked and sorted in Rust.

use std::collections::HashMap;

use polars::prelude::*;
use roaring::RoaringBitmap;

use crate::contract::{Chunk, Dictionaries, Dim, GUEST};
use crate::error::{InputError, Result};
use crate::tables::{Metric, TableSpec};

/// Largest revenue that fits decimal(18,2), in cents.
const MAX_DECIMAL_18_2: i128 = 999_999_999_999_999_999;

/// What a distinct-count metric counts, and the chunk column holding its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Distinct {
    Orders,
    Customers,
    Products,
}

impl Distinct {
    const ALL: [Distinct; 3] = [Distinct::Orders, Distinct::Customers, Distinct::Products];

    /// Whether a table has a metric counting these ids.
    fn counted_by(self, spec: &TableSpec) -> bool {
        spec.metrics.iter().any(|&m| Distinct::of(m) == Some(self))
    }

    fn of(metric: Metric) -> Option<Distinct> {
        match metric {
            Metric::Orders => Some(Distinct::Orders),
            Metric::Customers => Some(Distinct::Customers),
            Metric::Products => Some(Distinct::Products),
            _ => None,
        }
    }

    fn id_column(self) -> &'static str {
        match self {
            Distinct::Orders => "order",
            Distinct::Customers => "customer",
            Distinct::Products => Dim::Sku.name(),
        }
    }

    /// The per-chunk expression: the unique ids of the group. Guests are dropped when merging (a filter
    /// inside the aggregation costs more than the whole unique).
    fn expr(self) -> Expr {
        col(self.id_column()).unique().alias(self.id_column())
    }

    /// Whether `id` counts (guests are not customers).
    fn counts(self, id: u32) -> bool {
        self != Distinct::Customers || id != GUEST
    }
}

/// Group key: hour start (µs) and up to two dimension codes.
type GroupKey = (i64, [u32; 2]);

/// The merged state of one group.
#[derive(Default)]
struct GroupState {
    lines: i64,
    units: i64,
    revenue: i128,
    ids: [RoaringBitmap; 3],
}

struct TableState {
    spec: &'static TableSpec,
    group: Vec<Expr>,
    aggs: Vec<Expr>,
    distinct: Vec<Distinct>,
    groups: HashMap<GroupKey, GroupState, foldhash::fast::FixedState>,
}

impl TableState {
    /// A table whose per-chunk aggregation counts the ids of `distinct` (the others it derives).
    fn new(spec: &'static TableSpec, distinct: Vec<Distinct>) -> Self {
        assert!(spec.keys.len() <= 2, "table {} has more than two keys", spec.name);
        let group = std::iter::once(col("hour")).chain(spec.keys.iter().map(|k| col(k.name()))).collect();
        let mut aggs = vec![
            len().cast(DataType::Int64).alias("order_lines"),
            col("quantity").sum().alias("units"),
            col("revenue").sum().alias("revenue"),
        ];
        aggs.extend(distinct.iter().map(|d| d.expr()));
        TableState { spec, group, aggs, distinct, groups: HashMap::default() }
    }

    /// Reduces a chunk with polars and merges the partial result into the group states.
    fn push(&mut self, chunk: &DataFrame) -> Result<()> {
        let partial = chunk.clone().lazy().group_by(&self.group).agg(&self.aggs).collect()?;
        let hours = partial.column("hour")?.i64()?;
        let keys: Vec<&UInt32Chunked> = self
            .spec
            .keys
            .iter()
            .map(|k| partial.column(k.name()).and_then(|c| c.u32()))
            .collect::<PolarsResult<_>>()?;
        let lines = partial.column("order_lines")?.i64()?;
        let units = partial.column("units")?.i64()?;
        let revenue = partial.column("revenue")?.decimal()?.physical();
        let lists: Vec<(Distinct, &ListChunked)> = self
            .distinct
            .iter()
            .map(|d| Ok((*d, partial.column(d.id_column())?.list()?)))
            .collect::<PolarsResult<_>>()?;
        let mut ids: Vec<u32> = Vec::new();
        for i in 0..partial.height() {
            let mut key = [0u32; 2];
            for (k, codes) in keys.iter().enumerate() {
                key[k] = codes.get(i).unwrap_or(0);
            }
            let state = self.groups.entry((hours.get(i).unwrap_or(0), key)).or_default();
            state.lines += lines.get(i).unwrap_or(0);
            state.units += units.get(i).unwrap_or(0);
            state.revenue += revenue.get(i).unwrap_or(0);
            for &(distinct, list) in &lists {
                if let Some(series) = list.get_as_series(i) {
                    ids.clear();
                    ids.extend(series.u32()?.into_no_null_iter().filter(|&id| distinct.counts(id)));
                    ids.sort_unstable();
                    let chunk_ids = RoaringBitmap::from_sorted_iter(ids.iter().copied()).unwrap_or_default();
                    state.ids[distinct as usize] |= chunk_ids;
                }
            }
        }
        Ok(())
    }
}

/// One finished insight table: the spec and its rows as a DataFrame with the output schema.
pub struct Table {
    pub spec: &'static TableSpec,
    pub frame: DataFrame,
    /// The `hour_start` (µs) of every row, in row order; used to split the table into hour partitions.
    pub hours: Vec<i64>,
}

/// Aggregates chunks into the insight tables.
pub struct Engine {
    tables: Vec<TableState>,
    /// Distinct sets a table derives from a finer table instead of counting per chunk:
    /// (table, what is counted, source table).
    derived: Vec<(usize, Distinct, usize)>,
}

/// The distinct sets a table can take from a finer one: where another table groups by every key of this
/// one (and maybe more) and counts the same ids, this table's set for a group is the union of that
/// table's sets for the groups it splits into (every row of a group lies in exactly one finer group).
/// So `hourly_kpis` takes its orders and customers from `channel_performance`, and polars computes two
/// fewer unique-id lists per chunk. Returns (table, distinct, source).
fn derivations(specs: &[TableSpec]) -> Vec<(usize, Distinct, usize)> {
    let counts = |spec: &TableSpec, d: Distinct| d.counted_by(spec);
    // `a` splits every group of `b` into finer ones.
    let finer = |a: &TableSpec, b: &TableSpec| a.keys.len() > b.keys.len() && b.keys.iter().all(|k| a.keys.contains(k));
    // A source must count per chunk itself: no finer table counts the same ids (so there are no chains).
    let root = |u: &TableSpec, d: Distinct| counts(u, d) && !specs.iter().any(|w| finer(w, u) && counts(w, d));
    let mut derived = Vec::new();
    for (t, spec) in specs.iter().enumerate() {
        for d in Distinct::ALL.into_iter().filter(|&d| counts(spec, d)) {
            if let Some(u) = specs.iter().position(|u| finer(u, spec) && root(u, d)) {
                derived.push((t, d, u));
            }
        }
    }
    derived
}

impl Engine {
    pub fn new(specs: &'static [TableSpec]) -> Self {
        let derived = derivations(specs);
        let tables = specs
            .iter()
            .enumerate()
            .map(|(t, spec)| {
                let counted = Distinct::ALL
                    .into_iter()
                    .filter(|&d| d.counted_by(spec))
                    .filter(|&d| !derived.iter().any(|&(dt, dd, _)| dt == t && dd == d))
                    .collect();
                TableState::new(spec, counted)
            })
            .collect();
        Engine { tables, derived }
    }

    /// Reduces one chunk into the partial results of every table. The chunk is emptied.
    pub fn push(&mut self, chunk: &mut Chunk) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let frame = chunk_frame(chunk)?;
        for table in &mut self.tables {
            table.push(&frame)?;
        }
        Ok(())
    }

    /// Approximate heap bytes of the merged state (for progress logs).
    pub fn state_bytes(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| t.groups.values())
            .map(|g| 64 + g.ids.iter().map(RoaringBitmap::serialized_size).sum::<usize>())
            .sum()
    }

    /// Finishes every table. Tables of a run without valid rows have zero rows.
    pub fn finish(mut self, dicts: &Dictionaries) -> Result<Vec<Table>> {
        for &(t, d, u) in &self.derived {
            let (spec, finer) = (self.tables[t].spec, self.tables[u].spec);
            // Where each of this table's keys sits among the finer table's keys.
            let at: Vec<usize> =
                spec.keys.iter().map(|k| finer.keys.iter().position(|f| f == k).unwrap_or(0)).collect();
            let mut unions: HashMap<GroupKey, RoaringBitmap, foldhash::fast::FixedState> = HashMap::default();
            for (&(hour, codes), group) in &self.tables[u].groups {
                let mut key = [0u32; 2];
                for (k, &i) in at.iter().enumerate() {
                    key[k] = codes[i];
                }
                *unions.entry((hour, key)).or_default() |= &group.ids[d as usize];
            }
            for (key, ids) in unions {
                self.tables[t].groups.entry(key).or_default().ids[d as usize] = ids;
            }
        }
        self.tables.into_iter().map(|state| label(state, dicts)).collect()
    }
}

/// Moves the chunk's columns into a DataFrame (no copy), leaving the chunk empty for reuse.
fn chunk_frame(chunk: &mut Chunk) -> Result<DataFrame> {
    let height = chunk.len();
    let take_u32 = |name: &str, v: &mut Vec<u32>| UInt32Chunked::from_vec(name.into(), std::mem::take(v)).into_column();
    let mut columns = vec![
        Int64Chunked::from_vec("hour".into(), std::mem::take(&mut chunk.hour)).into_column(),
        take_u32("order", &mut chunk.order),
        take_u32("customer", &mut chunk.customer),
    ];
    for dim in Dim::ALL {
        columns.push(take_u32(dim.name(), &mut chunk.dims[dim as usize]));
    }
    columns.push(Int64Chunked::from_vec("quantity".into(), std::mem::take(&mut chunk.quantity)).into_column());
    let revenue = Int128Chunked::from_vec("revenue".into(), std::mem::take(&mut chunk.revenue)).into_decimal(38, 2)?;
    columns.push(revenue.into_series().into_column());
    Ok(DataFrame::new(height, columns)?)
}

/// One merged group, in Rust, before labelling.
struct Group {
    hour: i64,
    keys: Vec<String>,
    rank: i64,
    lines: i64,
    units: i64,
    revenue: i128,
    distinct: [i64; 3],
}

impl Group {
    fn metric(&self, m: Metric) -> MetricValue {
        match m {
            Metric::Orders => MetricValue::Int(self.distinct[Distinct::Orders as usize]),
            Metric::Customers => MetricValue::Int(self.distinct[Distinct::Customers as usize]),
            Metric::Products => MetricValue::Int(self.distinct[Distinct::Products as usize]),
            Metric::OrderLines => MetricValue::Int(self.lines),
            Metric::Units => MetricValue::Int(self.units),
            Metric::Revenue => MetricValue::Cents(self.revenue),
            Metric::AvgOrderValue => {
                MetricValue::Cents(div_round_half_away(self.revenue, self.distinct[Distinct::Orders as usize] as i128))
            }
        }
    }
}

enum MetricValue {
    Int(i64),
    Cents(i128),
}

/// `num / den` rounded half away from zero (den > 0).
pub fn div_round_half_away(num: i128, den: i128) -> i128 {
    if den == 0 {
        return 0;
    }
    let q = (2 * num.abs() + den) / (2 * den);
    if num < 0 {
        -q
    } else {
        q
    }
}

/// Turns the merged state of a table into its output: dimension codes become strings, distinct counts and
/// derived metrics are computed, top-N is applied, rows are sorted by `hour_start` then the dimensions (or
/// rank).
fn label(state: TableState, dicts: &Dictionaries) -> Result<Table> {
    let spec = state.spec;
    let mut groups: Vec<Group> = state
        .groups
        .into_iter()
        .map(|((hour, codes), g)| Group {
            hour,
            keys: spec.keys.iter().zip(codes).map(|(dim, code)| dicts.value(*dim, code).to_string()).collect(),
            rank: 0,
            lines: g.lines,
            units: g.units,
            revenue: g.revenue,
            distinct: Distinct::ALL.map(|d| g.ids[d as usize].len() as i64),
        })
        .collect();
    if let Some(n) = spec.top {
        groups.sort_by(|a, b| a.hour.cmp(&b.hour).then(b.revenue.cmp(&a.revenue)).then(a.keys.cmp(&b.keys)));
        let mut kept = Vec::with_capacity(groups.len());
        let mut current = None;
        let mut rank = 0;
        for mut g in groups {
            if current != Some(g.hour) {
                current = Some(g.hour);
                rank = 0;
            }
            rank += 1;
            if rank <= n as i64 {
                g.rank = rank;
                kept.push(g);
            }
        }
        groups = kept;
    } else {
        groups.sort_by(|a, b| a.hour.cmp(&b.hour).then(a.keys.cmp(&b.keys)));
    }
    for g in &groups {
        if g.revenue > MAX_DECIMAL_18_2 {
            return Err(InputError::RevenueOverflow {
                message: format!("table {} has revenue {} cents in one group", spec.name, g.revenue),
            }
            .into());
        }
    }
    let frame = build_frame(spec, &groups)?;
    Ok(Table { spec, frame, hours: groups.iter().map(|g| g.hour).collect() })
}

fn build_frame(spec: &TableSpec, groups: &[Group]) -> Result<DataFrame> {
    let mut columns = Vec::new();
    let hours = Int64Chunked::from_vec("hour_start".into(), groups.iter().map(|g| g.hour).collect());
    columns.push(hours.into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_series().into_column());
    if spec.top.is_some() {
        columns.push(Column::new("rank".into(), groups.iter().map(|g| g.rank).collect::<Vec<_>>()));
    }
    for (k, dim) in spec.keys.iter().enumerate() {
        let values: Vec<&str> = groups.iter().map(|g| g.keys[k].as_str()).collect();
        columns.push(Column::new(dim.name().into(), values));
    }
    for &metric in spec.metrics {
        let values = groups.iter().map(|g| g.metric(metric));
        let column = match metric.column_type() {
            crate::tables::ColumnType::Decimal => {
                let cents: Vec<i128> = values.map(|v| if let MetricValue::Cents(c) = v { c } else { 0 }).collect();
                Int128Chunked::from_vec(metric.name().into(), cents).into_decimal(18, 2)?.into_series().into_column()
            }
            _ => {
                let ints: Vec<i64> = values.map(|v| if let MetricValue::Int(n) = v { n } else { 0 }).collect();
                Column::new(metric.name().into(), ints)
            }
        };
        columns.push(column);
    }
    Ok(DataFrame::new(groups.len(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_kpis_take_distinct_orders_and_customers_from_channel_performance() {
        let name = |t: usize| crate::tables::TABLES[t].name;
        let derived: Vec<(&str, Distinct, &str)> =
            derivations(crate::tables::TABLES).into_iter().map(|(t, d, u)| (name(t), d, name(u))).collect();
        assert_eq!(
            derived,
            vec![
                ("hourly_kpis", Distinct::Orders, "channel_performance"),
                ("hourly_kpis", Distinct::Customers, "channel_performance"),
            ]
        );
    }

    #[test]
    fn rounding_half_away_from_zero() {
        assert_eq!(div_round_half_away(1000, 3), 333);
        assert_eq!(div_round_half_away(1001, 2), 501);
        assert_eq!(div_round_half_away(1003, 2), 502);
        assert_eq!(div_round_half_away(5, 10), 1);
        assert_eq!(div_round_half_away(4, 10), 0);
        assert_eq!(div_round_half_away(-5, 10), -1);
        assert_eq!(div_round_half_away(7, 0), 0);
    }
}
