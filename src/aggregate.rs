//! The aggregation engine: turns validated chunks into the insight tables declared in [`crate::tables`].
//!
//! Memory stays bounded by the number of distinct keys, not by the file: each chunk is reduced with polars
//! into *mergeable partial results* and dropped. Per table there is
//! - one frame of additive partials (`order_lines`, `units`, `revenue` per `hour` + keys), merged by summing;
//! - one frame of distinct `(hour, keys…, id)` pairs per distinct-count metric, merged by `unique`.
//!
//! Partials are appended as they come and compacted (re-aggregated) whenever they have doubled since the
//! last compaction, so merging costs amortised O(1) per partial row. At the end the distinct pairs are
//! counted, joined to the sums, and the small result is labelled, ranked and sorted in Rust.

use polars::prelude::*;

use crate::contract::{Chunk, Dictionaries, Dim, GUEST};
use crate::error::{InputError, Result};
use crate::tables::{Metric, TableSpec};

/// Largest revenue that fits decimal(18,2), in cents.
const MAX_DECIMAL_18_2: i128 = 999_999_999_999_999_999;
/// Partials are not compacted below this many rows.
const MIN_COMPACT_ROWS: usize = 1 << 16;

/// What a distinct-count metric counts.
#[derive(Clone, Copy, Debug)]
enum Distinct {
    Orders,
    Customers,
    Products,
}

impl Distinct {
    fn of(metric: Metric) -> Option<Distinct> {
        match metric {
            Metric::Orders => Some(Distinct::Orders),
            Metric::Customers => Some(Distinct::Customers),
            Metric::Products => Some(Distinct::Products),
            _ => None,
        }
    }

    /// The chunk column holding the id that is counted.
    fn id_column(self) -> &'static str {
        match self {
            Distinct::Orders => "order",
            Distinct::Customers => "customer",
            Distinct::Products => Dim::Sku.name(),
        }
    }

    fn metric(self) -> Metric {
        match self {
            Distinct::Orders => Metric::Orders,
            Distinct::Customers => Metric::Customers,
            Distinct::Products => Metric::Products,
        }
    }
}

/// A growing frame of partial results and how to merge it.
struct Partial {
    frame: Option<DataFrame>,
    compacted_rows: usize,
}

impl Partial {
    fn new() -> Self {
        Partial { frame: None, compacted_rows: 0 }
    }

    /// Appends a chunk's partial; compacts with `merge` once the frame has doubled since the last compaction.
    fn push(&mut self, part: DataFrame, merge: &dyn Fn(LazyFrame) -> LazyFrame) -> Result<()> {
        match &mut self.frame {
            Some(frame) => {
                frame.vstack_mut_owned(part)?;
            }
            None => self.frame = Some(part),
        }
        let rows = self.frame.as_ref().map_or(0, DataFrame::height);
        if rows >= MIN_COMPACT_ROWS.max(2 * self.compacted_rows) {
            self.compact(merge)?;
        }
        Ok(())
    }

    fn compact(&mut self, merge: &dyn Fn(LazyFrame) -> LazyFrame) -> Result<()> {
        if let Some(frame) = self.frame.take() {
            let merged = merge(frame.lazy()).collect()?;
            self.compacted_rows = merged.height();
            self.frame = Some(merged);
        }
        Ok(())
    }

    fn finish(mut self, merge: &dyn Fn(LazyFrame) -> LazyFrame) -> Result<Option<DataFrame>> {
        self.compact(merge)?;
        Ok(self.frame)
    }
}

struct TableState {
    spec: &'static TableSpec,
    group: Vec<Expr>,
    sums: Partial,
    distinct: Vec<(Distinct, Partial)>,
}

impl TableState {
    fn new(spec: &'static TableSpec) -> Self {
        let group = std::iter::once(col("hour")).chain(spec.keys.iter().map(|k| col(k.name()))).collect();
        let distinct = spec.metrics.iter().filter_map(|m| Distinct::of(*m)).map(|d| (d, Partial::new())).collect();
        TableState { spec, group, sums: Partial::new(), distinct }
    }

    fn merge_sums(&self) -> impl Fn(LazyFrame) -> LazyFrame + 'static {
        let group = self.group.clone();
        move |lf: LazyFrame| {
            lf.group_by(&group).agg([col("order_lines").sum(), col("units").sum(), col("revenue").sum()])
        }
    }

    fn merge_distinct(lf: LazyFrame) -> LazyFrame {
        lf.unique(None, UniqueKeepStrategy::Any)
    }

    fn push(&mut self, chunk: &DataFrame) -> Result<()> {
        let sums = chunk
            .clone()
            .lazy()
            .group_by(&self.group)
            .agg([
                len().cast(DataType::Int64).alias("order_lines"),
                col("quantity").sum().alias("units"),
                col("revenue").sum().alias("revenue"),
            ])
            .collect()?;
        let merge = self.merge_sums();
        self.sums.push(sums, &merge)?;

        for (what, partial) in &mut self.distinct {
            let mut lf = chunk.clone().lazy();
            if let Distinct::Customers = what {
                lf = lf.filter(col("customer").neq(lit(GUEST)));
            }
            let mut select = self.group.clone();
            select.push(col(what.id_column()));
            let pairs = lf.select(select).unique(None, UniqueKeepStrategy::Any).collect()?;
            partial.push(pairs, &Self::merge_distinct)?;
        }
        Ok(())
    }

    /// Merges everything into one frame: `hour`, key codes, order_lines, units, revenue, distinct counts.
    fn finish(self) -> Result<Option<DataFrame>> {
        let merge = self.merge_sums();
        let Some(sums) = Partial::finish(self.sums, &merge)? else {
            return Ok(None);
        };
        let mut lf = sums.lazy();
        for (what, partial) in self.distinct {
            let name = what.metric().name();
            let counts = match partial.finish(&Self::merge_distinct)? {
                Some(pairs) => pairs.lazy().group_by(&self.group).agg([len().cast(DataType::Int64).alias(name)]),
                None => continue,
            };
            lf = lf
                .join(counts, self.group.clone(), self.group.clone(), JoinArgs::new(JoinType::Left))
                .with_column(col(name).fill_null(lit(0i64)));
        }
        Ok(Some(lf.collect()?))
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
}

impl Engine {
    pub fn new(specs: &'static [TableSpec]) -> Self {
        Engine { tables: specs.iter().map(TableState::new).collect() }
    }

    /// Reduces one chunk into the partial results of every table.
    pub fn push(&mut self, chunk: &Chunk) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let frame = chunk_frame(chunk)?;
        for table in &mut self.tables {
            table.push(&frame)?;
        }
        Ok(())
    }

    /// Finishes every table. Tables of a run without valid rows have zero rows.
    pub fn finish(self, dicts: &Dictionaries) -> Result<Vec<Table>> {
        self.tables
            .into_iter()
            .map(|state| {
                let spec = state.spec;
                let merged = state.finish()?;
                label(spec, merged.as_ref(), dicts)
            })
            .collect()
    }
}

fn chunk_frame(chunk: &Chunk) -> Result<DataFrame> {
    let mut columns = vec![
        Column::new("hour".into(), &chunk.hour),
        Column::new("order".into(), &chunk.order),
        Column::new("customer".into(), &chunk.customer),
    ];
    for dim in Dim::ALL {
        columns.push(Column::new(dim.name().into(), &chunk.dims[dim as usize]));
    }
    columns.push(Column::new("quantity".into(), &chunk.quantity));
    let revenue = Int128Chunked::from_vec("revenue".into(), chunk.revenue.clone()).into_decimal(38, 2)?;
    columns.push(revenue.into_series().into_column());
    Ok(DataFrame::new(chunk.len(), columns)?)
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
            Metric::Orders => MetricValue::Int(self.distinct[0]),
            Metric::Customers => MetricValue::Int(self.distinct[1]),
            Metric::Products => MetricValue::Int(self.distinct[2]),
            Metric::OrderLines => MetricValue::Int(self.lines),
            Metric::Units => MetricValue::Int(self.units),
            Metric::Revenue => MetricValue::Cents(self.revenue),
            Metric::AvgOrderValue => MetricValue::Cents(div_round_half_away(self.revenue, self.distinct[0] as i128)),
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

/// Turns the merged frame of a table into its output: dimension codes become strings, derived metrics are
/// computed, top-N is applied, rows are sorted by `hour_start` then the dimensions (or rank).
fn label(spec: &'static TableSpec, merged: Option<&DataFrame>, dicts: &Dictionaries) -> Result<Table> {
    let mut groups = match merged {
        Some(frame) => read_groups(spec, frame, dicts)?,
        None => Vec::new(),
    };
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

fn read_groups(spec: &TableSpec, frame: &DataFrame, dicts: &Dictionaries) -> Result<Vec<Group>> {
    let hours = frame.column("hour")?.i64()?;
    let lines = frame.column("order_lines")?.i64()?;
    let units = frame.column("units")?.i64()?;
    let revenue = frame.column("revenue")?.decimal()?.physical().clone();
    let keys: Vec<&UInt32Chunked> =
        spec.keys.iter().map(|k| frame.column(k.name()).and_then(|c| c.u32())).collect::<PolarsResult<_>>()?;
    let distinct: Vec<Option<&Int64Chunked>> = [Metric::Orders, Metric::Customers, Metric::Products]
        .iter()
        .map(|m| frame.column(m.name()).ok().map(|c| c.i64()).transpose())
        .collect::<PolarsResult<_>>()?;
    let get = |ca: &Int64Chunked, i: usize| ca.get(i).unwrap_or(0);
    let mut groups = Vec::with_capacity(frame.height());
    for i in 0..frame.height() {
        groups.push(Group {
            hour: get(hours, i),
            keys: spec
                .keys
                .iter()
                .zip(&keys)
                .map(|(dim, codes)| dicts.value(*dim, codes.get(i).unwrap_or(0)).to_string())
                .collect(),
            rank: 0,
            lines: get(lines, i),
            units: get(units, i),
            revenue: revenue.get(i).unwrap_or(0),
            distinct: [0, 1, 2].map(|k| distinct[k].map_or(0, |ca| get(ca, i))),
        });
    }
    Ok(groups)
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
