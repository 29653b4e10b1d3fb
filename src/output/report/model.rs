//! What a report says: the facts of one hour or day gathered from the published tables ([`Facts`]), and the
//! page built from them ([`Page`], what the template renders). Every number on a page comes from a published
//! table or a stored summary; nothing is recomputed from rows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::chart::{self, Bar, Slot, Svg};
use super::outlier::{self, Verdict};
use super::source::{Published, Rows, Table};
use crate::aggregate::partial::{day_of, DAY_MICROS, HOUR_MICROS};
use crate::aggregate::tables::Period;
use crate::contract::parse;
use crate::error::Result;
use crate::output::publish::SourceQuality;

/// The headline numbers of one hour or day (money in cents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kpis {
    pub orders: i128,
    pub order_lines: i128,
    pub units: i128,
    pub revenue: i128,
    pub customers: i128,
    pub avg_order_value: i128,
}

impl Kpis {
    fn of(rows: &Table) -> Kpis {
        // One row per period; an empty table (every source left) is a period with nothing sold.
        if rows.is_empty() {
            return Kpis::default();
        }
        Kpis {
            orders: rows.get(0, "orders"),
            order_lines: rows.get(0, "order_lines"),
            units: rows.get(0, "units"),
            revenue: rows.get(0, "revenue"),
            customers: rows.get(0, "customers"),
            avg_order_value: rows.get(0, "avg_order_value"),
        }
    }
}

/// A file that fed the period.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FileRow {
    pub name: String,
    pub uri: String,
    /// Its valid rows in the period.
    pub rows: String,
    /// Those of them that are late (see [`Facts::late_rows`]).
    pub late: String,
    /// Rows it rejected (in the whole file: a rejected row has no hour to trust).
    pub rejected: String,
}

/// Everything a report of one period shows.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub period: Option<Period>,
    pub start: i64,
    /// `None`: nothing is published for the period.
    pub kpis: Option<Kpis>,
    /// The period before (hour or day), and the same period a week earlier.
    pub previous: Option<Kpis>,
    pub week_ago: Option<Kpis>,
    /// The same period on each of the previous [`outlier::WEEKS`] weeks that have data.
    pub history: Vec<Kpis>,
    /// Hourly numbers for the chart: the last 24 hours (hour report) or the day's hours (day report).
    pub trend: Vec<(i64, Option<Kpis>)>,
    pub channels: Rows,
    pub categories: Rows,
    pub products: Rows,
    pub geo: Rows,
    pub files: Vec<FileRow>,
    /// Rejected rows of the files that fed the period, by reason.
    pub rejects: BTreeMap<String, u64>,
    /// Rows of the period that arrived in a file whose newest hour is later than the row's hour.
    pub late_rows: i64,
    /// Whether the period is over: a day is judged for outliers only once it is (an hour always is, its
    /// export having arrived).
    pub complete: bool,
}

fn week() -> i64 {
    7 * DAY_MICROS
}

/// The step from one period to the next.
fn step(period: Period) -> i64 {
    match period {
        Period::Hour => HOUR_MICROS,
        Period::Day => DAY_MICROS,
    }
}

/// The starts of the hours a period's chart shows.
fn trend_hours(period: Period, start: i64) -> Vec<i64> {
    match period {
        Period::Hour => (0..24).rev().map(|i| start - i * HOUR_MICROS).collect(),
        Period::Day => (0..24).map(|i| start + i * HOUR_MICROS).collect(),
    }
}

/// Gathers the facts of the hour or day starting at `start`.
pub fn facts(data: &Published, period: Period, start: i64) -> Result<Facts> {
    let history_starts: Vec<i64> = (1..=outlier::WEEKS).map(|w| start - w * week()).collect();
    let trend = trend_hours(period, start);
    let (dt, _) = parse::partition_values(start);

    // Everything this report reads, fetched at once (S3 round trips in parallel).
    let mut keys: Vec<String> = Vec::new();
    let kpi_starts = [start, start - step(period)].into_iter().chain(history_starts.iter().copied());
    keys.extend(kpi_starts.filter_map(|s| Published::table_key("hourly_kpis", period, s)));
    keys.extend(trend.iter().filter_map(|&s| Published::table_key("hourly_kpis", Period::Hour, s)));
    for table in ["channel_performance", "category_sales", "top_products", "geo_device"] {
        keys.extend(Published::table_key(table, period, start));
    }
    keys.push(crate::output::publish::manifest_key(&dt));
    data.prefetch(&keys)?;

    let kpis = |p: Period, s: i64| -> Result<Option<Kpis>> {
        Ok(data.table("hourly_kpis", p, s)?.map(|rows| Kpis::of(&rows)))
    };
    let rows = |table: &str| -> Result<Rows> { Ok(data.table(table, period, start)?.unwrap_or_default()) };
    let now = super::now_micros();
    let mut facts = Facts {
        period: Some(period),
        start,
        complete: period == Period::Hour || start + DAY_MICROS <= now,
        kpis: kpis(period, start)?,
        previous: kpis(period, start - step(period))?,
        week_ago: kpis(period, start - week())?,
        history: history_starts
            .iter()
            .map(|&s| kpis(period, s))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect(),
        trend: trend.iter().map(|&s| Ok((s, kpis(Period::Hour, s)?))).collect::<Result<Vec<_>>>()?,
        channels: rows("channel_performance")?,
        categories: rows("category_sales")?,
        products: rows("top_products")?,
        geo: rows("geo_device")?,
        ..Facts::default()
    };
    quality(data, period, start, &dt, &mut facts)?;
    Ok(facts)
}

/// The files that fed the period (from its day's manifest), their rows in it, late rows and rejects: from
/// the quality facts each source recorded in the manifest with its partials (so a report of a generation
/// sees exactly that generation's sources), or, for a manifest written before those existed, from the
/// source's summary.
fn quality(data: &Published, period: Period, start: i64, dt: &str, facts: &mut Facts) -> Result<()> {
    let Some(manifest) = data.manifest(dt)? else { return Ok(()) };
    let hours_in = |start_hour: i64| match period {
        Period::Hour => start_hour == start,
        Period::Day => day_of(start_hour) == start,
    };
    let hour_of = |h: &str| parse::event_time_micros(h.as_bytes());
    let mut feeding = Vec::new();
    for (name, entry) in &manifest.sources {
        let fed = entry.partials.keys().any(|hh| hour_of(&format!("{dt}T{hh}:00:00Z")).is_some_and(hours_in));
        if fed {
            feeding.push((name.clone(), entry));
        }
    }
    let old: Vec<String> =
        feeding.iter().filter(|(_, e)| e.quality.is_none()).map(|(name, _)| crate::output::summary_key(name)).collect();
    data.prefetch(&old)?;
    for (name, entry) in feeding {
        let uri = entry.uri.clone();
        let file = uri.rsplit('/').next().unwrap_or(&uri).to_string();
        let quality = match &entry.quality {
            Some(q) => Some(q.clone()),
            None => data.summary(&name)?.map(|s| SourceQuality {
                lines_by_hour: s.by_hour.iter().map(|h| (h.hour.clone(), h.order_lines)).collect(),
                rejected: s.rows.rejected,
                rejects_by_reason: s.rejects_by_reason.into_iter().filter(|(_, n)| *n > 0).collect(),
            }),
        };
        let Some(q) = quality else {
            // An old manifest whose source's summary is not stored (yet).
            let unknown = "–".to_string();
            facts.files.push(FileRow {
                name: file,
                uri,
                rows: unknown.clone(),
                late: unknown.clone(),
                rejected: unknown,
            });
            continue;
        };
        let newest = q.lines_by_hour.keys().filter_map(|h| hour_of(h)).max().unwrap_or(i64::MIN);
        let (mut rows, mut late) = (0i64, 0i64);
        for (hour, &lines) in &q.lines_by_hour {
            let Some(hs) = hour_of(hour) else { continue };
            if hours_in(hs) {
                rows += lines;
                if hs < newest {
                    late += lines;
                }
            }
        }
        for (reason, n) in &q.rejects_by_reason {
            *facts.rejects.entry(reason.clone()).or_default() += n;
        }
        facts.late_rows += late;
        facts.files.push(FileRow {
            name: file,
            uri,
            rows: count(i128::from(rows)),
            late: count(i128::from(late)),
            rejected: count(i128::from(q.rejected)),
        });
    }
    Ok(())
}

/// `1234567` -> `1,234,567`.
pub fn count(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Cents as `1,234.56`.
pub fn money(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", count(cents.unsigned_abs() as i128 / 100), cents.unsigned_abs() % 100)
}

/// The change from `before` to `now` in percent, when `before` is positive.
pub fn change_percent(now: i128, before: i128) -> Option<f64> {
    (before > 0).then(|| ((now - before) as f64) * 100.0 / before as f64)
}

/// `+12.3%`, `-4.0%`, `0.0%`.
pub fn percent_text(p: f64) -> String {
    let p = (p * 10.0).round() / 10.0;
    if p > 0.0 {
        format!("+{p:.1}%")
    } else if p < 0.0 {
        format!("{p:.1}%")
    } else {
        "0.0%".into()
    }
}

const WEEKDAYS: [&str; 7] = ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `Sunday 22 November 2026`.
pub fn day_label(start: i64) -> String {
    let (dt, _) = parse::partition_values(start);
    let weekday = WEEKDAYS[start.div_euclid(DAY_MICROS).rem_euclid(7) as usize];
    let (y, m, d) = (&dt[..4], dt[5..7].parse::<usize>().unwrap_or(1), dt[8..10].trim_start_matches('0'));
    format!("{weekday} {d} {} {y}", MONTHS[m.saturating_sub(1).min(11)])
}

/// `13:00–14:00 UTC`.
pub fn hour_label(start: i64) -> String {
    let (_, hh) = parse::partition_values(start);
    let (_, next) = parse::partition_values(start + HOUR_MICROS);
    format!("{hh}:00–{next}:00 UTC")
}

/// A headline number with its comparisons.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Kpi {
    /// The table column it comes from (`data-kpi`).
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    /// The value as the table stores it (`1234.56`, `41`), for machines.
    pub raw: String,
    pub vs_previous: Option<Change>,
    pub vs_week: Option<Change>,
    /// `above` / `below` when outside its band.
    pub outlier: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Change {
    pub text: String,
    /// `up`, `down` or `flat`.
    pub direction: &'static str,
    /// The value compared with.
    pub was: String,
}

fn change(now: i128, before: Option<i128>, fmt: fn(i128) -> String) -> Option<Change> {
    let before = before?;
    let (text, direction) = match change_percent(now, before) {
        Some(p) => (
            percent_text(p),
            if p > 0.0 {
                "up"
            } else if p < 0.0 {
                "down"
            } else {
                "flat"
            },
        ),
        None if now == before => ("0.0%".into(), "flat"),
        None => ("new".into(), "up"),
    };
    Some(Change { text, direction, was: fmt(before) })
}

/// A row of a share table (channels, categories, countries).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ShareRow {
    pub keys: Vec<String>,
    pub orders: String,
    pub units: String,
    pub revenue: String,
    /// Revenue share of the period's total, `12.3%`, and as a number 0–100 for the inline bar.
    pub share: String,
    pub share_width: f64,
}

/// A row of the top products.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProductRow {
    pub rank: String,
    pub sku: String,
    pub orders: String,
    pub units: String,
    pub revenue: String,
    pub share: String,
}

/// A flagged outlier.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Outlier {
    pub metric: &'static str,
    /// `above` or `below`.
    pub direction: &'static str,
    pub value: String,
    /// The band, `800.00 – 1,800.00`.
    pub band: String,
    /// One sentence.
    pub text: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Link {
    pub label: String,
    pub href: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReasonRow {
    pub reason: String,
    pub count: String,
}

/// The page of one hour or day, as the template renders it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Page {
    /// `hour` or `day`.
    pub kind: &'static str,
    /// `2026-11-22T13` or `2026-11-22`.
    pub period: String,
    pub title: String,
    pub subtitle: String,
    /// Relative path from the page to the `reports/` folder (`../../`, `../`, or empty for latest.html).
    pub base: String,
    pub nav: Vec<Link>,
    pub has_data: bool,
    pub kpis: Vec<Kpi>,
    pub previous_label: &'static str,
    pub week_label: &'static str,
    pub outliers: Vec<Outlier>,
    pub band_note: String,
    /// How to read the columns.
    pub highlight_note: &'static str,
    pub trend_title: String,
    pub revenue_chart: Svg,
    pub orders_chart: Svg,
    pub channels: Vec<ShareRow>,
    pub categories: Vec<ShareRow>,
    pub products: Vec<ProductRow>,
    pub country_chart: Svg,
    pub device_chart: Svg,
    pub files: Vec<FileRow>,
    pub rejects: Vec<ReasonRow>,
    pub rejected_total: String,
    pub late_rows: String,
    pub order_lines: String,
}

/// The relative path of a period's report under `reports/`.
pub fn report_path(period: Period, start: i64) -> String {
    let (dt, hh) = parse::partition_values(start);
    match period {
        Period::Hour => format!("dt={dt}/hour={hh}/index.html"),
        Period::Day => format!("dt={dt}/index.html"),
    }
}

fn share(part: i128, total: i128) -> (String, f64) {
    if total <= 0 {
        return ("–".into(), 0.0);
    }
    let p = part as f64 * 100.0 / total as f64;
    (format!("{:.1}%", (p * 10.0).round() / 10.0), (p * 10.0).round() / 10.0)
}

/// Rows a share table shows: the largest by revenue, then one "others" row (an export with ad-platform
/// campaign ids has tens of thousands of groups; the page stays readable and small).
pub const TABLE_ROWS: usize = 20;
/// Bars a country or device chart shows, the rest summed into one "others" bar.
pub const CHART_BARS: usize = 12;

fn share_rows(groups: &Table, total: i128) -> Vec<ShareRow> {
    // The largest TABLE_ROWS by revenue (ties by keys, which are unique), picked without sorting them all:
    // a table of campaigns can have a hundred thousand rows.
    // Each row's revenue and place in the table.
    let mut rows: Vec<(i128, usize)> = match groups.metric("revenue") {
        Some(column) => column.iter().copied().zip(0..).collect(),
        None => (0..groups.len()).map(|i| (0, i)).collect(),
    };
    let order =
        |a: &(i128, usize), b: &(i128, usize)| b.0.cmp(&a.0).then_with(|| groups.keys(a.1).cmp(groups.keys(b.1)));
    if rows.len() > TABLE_ROWS {
        rows.select_nth_unstable_by(TABLE_ROWS, order);
    }
    let top = rows.len().min(TABLE_ROWS);
    rows[..top].sort_by(order);
    let row = |keys: Vec<String>, orders: String, units: i128, revenue: i128| {
        let (share, share_width) = share(revenue, total);
        ShareRow { keys, orders, units: count(units), revenue: money(revenue), share, share_width }
    };
    let mut out: Vec<ShareRow> = rows[..top]
        .iter()
        .map(|&(revenue, i)| {
            row(
                groups.keys(i).map(String::from).collect(),
                count(groups.get(i, "orders")),
                groups.get(i, "units"),
                revenue,
            )
        })
        .collect();
    if rows.len() > TABLE_ROWS {
        let rest = &rows[TABLE_ROWS..];
        let mut keys = vec![format!("{} others", count(rest.len() as i128))];
        keys.resize(groups.width().max(1), String::new());
        // Distinct orders do not add up across groups; units and revenue do.
        let units = rest.iter().map(|&(_, i)| groups.get(i, "units")).sum();
        out.push(row(keys, "–".into(), units, rest.iter().map(|&(revenue, _)| revenue).sum()));
    }
    out
}

/// Revenue by the `k`-th key of `geo` (country or device), largest first: revenue adds up exactly across
/// the other key, distinct counts would not.
fn split(geo: &Table, k: usize, total: i128) -> Vec<Bar> {
    let mut by: BTreeMap<&str, i128> = BTreeMap::new();
    for i in 0..geo.len() {
        *by.entry(geo.key(i, k).unwrap_or("unknown")).or_default() += geo.get(i, "revenue");
    }
    let mut rows: Vec<(String, i128)> = by.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if rows.len() > CHART_BARS {
        let rest: Vec<(String, i128)> = rows.split_off(CHART_BARS - 1);
        rows.push((format!("{} others", rest.len()), rest.iter().map(|r| r.1).sum()));
    }
    rows.into_iter()
        .map(|(label, revenue)| Bar {
            label,
            value: revenue as f64,
            text: format!("{} ({})", money(revenue), share(revenue, total).0),
        })
        .collect()
}

/// Builds the page of `facts`; `base` is the page's relative path to `reports/`.
pub fn page(facts: &Facts, base: &str) -> Page {
    let period = facts.period.unwrap_or(Period::Hour);
    let start = facts.start;
    let (dt, hh) = parse::partition_values(start);
    let k = facts.kpis.unwrap_or_default();
    let history = |f: fn(&Kpis) -> i128| -> Vec<i128> { facts.history.iter().map(f).collect() };
    let verdict = |now: i128, f: fn(&Kpis) -> i128| -> Option<Verdict> {
        facts.kpis.filter(|_| facts.complete).and_then(|_| outlier::judge(now, &history(f)))
    };
    let mut outliers = Vec::new();
    let (unit, previous_label, week_label) = match period {
        Period::Hour => ("hour", "previous hour", "same hour last week"),
        Period::Day => ("day", "previous day", "same day last week"),
    };
    let mut flag = |metric: &'static str, now: i128, f: fn(&Kpis) -> i128, fmt: fn(i128) -> String| {
        let v = verdict(now, f)?;
        let direction = if v == Verdict::Above { "above" } else { "below" };
        let (low, high) = outlier::band(&history(f))?;
        // The bounds in the unit, rounded inwards, so that a value shown outside them is flagged and one
        // shown inside is not.
        let band = format!("{} – {}", fmt((low + 99).div_euclid(100)), fmt(high.div_euclid(100)));
        outliers.push(Outlier {
            metric,
            direction,
            value: fmt(now),
            band: band.clone(),
            text: format!(
                "{} {} is {direction} the usual range for this {unit} ({band}, from the previous {} weeks)",
                metric,
                fmt(now),
                facts.history.len()
            ),
        });
        Some(direction)
    };
    let revenue_outlier = flag("revenue", k.revenue, |k| k.revenue, money);
    let orders_outlier = flag("orders", k.orders, |k| k.orders, count);
    type Field = (&'static str, &'static str, fn(&Kpis) -> i128, fn(i128) -> String, fn(i128) -> String);
    let fields: [Field; 5] = [
        ("revenue", "Revenue", |k| k.revenue, money, parse::format_cents),
        ("orders", "Orders", |k| k.orders, count, |n| n.to_string()),
        ("customers", "Customers", |k| k.customers, count, |n| n.to_string()),
        ("units", "Units", |k| k.units, count, |n| n.to_string()),
        ("avg_order_value", "Average order value", |k| k.avg_order_value, money, parse::format_cents),
    ];
    let kpis = fields
        .iter()
        .map(|&(key, label, f, fmt, raw)| Kpi {
            key,
            label,
            value: fmt(f(&k)),
            raw: raw(f(&k)),
            vs_previous: change(f(&k), facts.previous.as_ref().map(f), fmt),
            vs_week: change(f(&k), facts.week_ago.as_ref().map(f), fmt),
            outlier: match key {
                "revenue" => revenue_outlier,
                "orders" => orders_outlier,
                _ => None,
            },
        })
        .collect();

    let slot = |&(s, kp): &(i64, Option<Kpis>), f: fn(&Kpis) -> i128, fmt: fn(i128) -> String| Slot {
        label: parse::partition_values(s).1,
        value: kp.map(|k| f(&k) as f64),
        text: kp.map_or_else(|| "no data".into(), |k| fmt(f(&k))),
        highlight: period == Period::Hour && s == start,
    };
    let revenue_slots: Vec<Slot> = facts.trend.iter().map(|t| slot(t, |k| k.revenue, money)).collect::<Vec<_>>();
    let orders_slots: Vec<Slot> = facts.trend.iter().map(|t| slot(t, |k| k.orders, count)).collect();
    let trend_title = match period {
        Period::Hour => "Revenue and orders, last 24 hours (UTC)".to_string(),
        Period::Day => "Revenue and orders by hour (UTC)".to_string(),
    };
    let revenue_chart = chart::columns("revenue", "Revenue by hour", &revenue_slots, &|v| compact(v / 100.0));
    let orders_chart = chart::columns("orders", "Orders by hour", &orders_slots, &compact);

    let p = &facts.products;
    let products = (0..p.len())
        .map(|i| ProductRow {
            rank: p.get(i, "rank").to_string(),
            sku: p.key(i, 0).unwrap_or_default().to_string(),
            orders: count(p.get(i, "orders")),
            units: count(p.get(i, "units")),
            revenue: money(p.get(i, "revenue")),
            share: share(p.get(i, "revenue"), k.revenue).0,
        })
        .collect();

    let mut nav = Vec::new();
    let has_hour = |s: i64| facts.trend.iter().any(|(t, k)| *t == s && k.is_some());
    match period {
        Period::Hour => {
            let prev = start - HOUR_MICROS;
            if has_hour(prev) {
                nav.push(Link {
                    label: "← previous hour".into(),
                    href: format!("{base}{}", report_path(Period::Hour, prev)),
                });
            }
            nav.push(Link {
                label: format!("the whole day ({dt})"),
                href: format!("{base}{}", report_path(Period::Day, day_of(start))),
            });
        }
        Period::Day => {
            for (s, kp) in &facts.trend {
                if kp.is_some() {
                    let (_, h) = parse::partition_values(*s);
                    nav.push(Link {
                        label: format!("{h}:00"),
                        href: format!("{base}{}", report_path(Period::Hour, *s)),
                    });
                }
            }
        }
    }
    nav.push(Link { label: "latest hour".into(), href: format!("{base}latest.html") });

    let (title, subtitle) = match period {
        Period::Hour => (format!("{} · {}", hour_label(start), day_label(start)), format!("Hour report {dt}T{hh}")),
        Period::Day => (day_label(start), format!("Day report {dt} (UTC)")),
    };
    Page {
        kind: unit,
        period: match period {
            Period::Hour => format!("{dt}T{hh}"),
            Period::Day => dt.clone(),
        },
        title,
        subtitle,
        base: base.to_string(),
        nav,
        has_data: facts.kpis.is_some(),
        kpis,
        previous_label,
        week_label,
        outliers,
        band_note: format!(
            "An outlier is a revenue or order count outside the range of the same {unit} on the previous {} weeks, \
             widened by {}% on each side; it needs {} of those weeks with data (this {unit} has {}).{}",
            outlier::WEEKS,
            outlier::MARGIN_PERCENT,
            outlier::MIN_HISTORY,
            facts.history.len(),
            if facts.complete { "" } else { " This day is not over yet: it is judged once it is." }
        ),
        highlight_note: match period {
            Period::Hour => "The highlighted column is this hour; a dashed column is an hour with nothing published.",
            Period::Day => "A dashed column is an hour with nothing published.",
        },
        trend_title,
        revenue_chart,
        orders_chart,
        channels: share_rows(&facts.channels, k.revenue),
        categories: share_rows(&facts.categories, k.revenue),
        products,
        country_chart: chart::bars("countries", "Revenue by country", &split(&facts.geo, 0, k.revenue)),
        device_chart: chart::bars("devices", "Revenue by device", &split(&facts.geo, 1, k.revenue)),
        files: facts.files.clone(),
        rejects: facts
            .rejects
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(reason, &n)| ReasonRow { reason: reason.clone(), count: count(i128::from(n)) })
            .collect(),
        rejected_total: count(facts.rejects.values().map(|&n| i128::from(n)).sum()),
        late_rows: count(i128::from(facts.late_rows)),
        order_lines: count(k.order_lines),
    }
}

/// A short axis number: `950`, `1.2k`, `3.4M`.
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::source::Group;

    #[test]
    fn numbers_are_written_for_people() {
        for (n, want) in [(0, "0"), (7, "7"), (1_234, "1,234"), (1_234_567, "1,234,567"), (-1_000, "-1,000")] {
            assert_eq!(count(n), want);
        }
        for (c, want) in [(0, "0.00"), (5, "0.05"), (123_456, "1,234.56"), (-250, "-2.50")] {
            assert_eq!(money(c), want);
        }
        assert_eq!(percent_text(12.345), "+12.3%");
        assert_eq!(percent_text(-4.0), "-4.0%");
        assert_eq!(percent_text(0.01), "0.0%");
        assert_eq!(change_percent(110, 100), Some(10.0));
        assert_eq!(change_percent(5, 0), None);
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(1_500.0), "1.5k");
        assert_eq!(compact(25_000.0), "25k");
        assert_eq!(compact(2.5), "2.5");
    }

    #[test]
    fn long_tables_keep_the_largest_rows_and_sum_the_others() {
        let group = |i: i128| Group {
            keys: vec![format!("c{i:02}").into(), "x".into()],
            metrics: vec![("revenue", 100 * i), ("units", i), ("orders", 1)],
        };
        let groups: Vec<Group> = (1..=25).map(group).collect();
        let rows = share_rows(&Table::from(groups), 32_500);
        assert_eq!(rows.len(), TABLE_ROWS + 1);
        assert_eq!(rows[0].keys, ["c25", "x"], "largest revenue first");
        let others = rows.last().unwrap();
        assert_eq!(others.keys, ["5 others", ""]);
        assert_eq!((others.units.as_str(), others.revenue.as_str(), others.orders.as_str()), ("15", "15.00", "–"));
        // Many rows, ties included, in no order: the same rows as sorting them all.
        let mut x = 3u64;
        let many: Vec<Group> = (0..5000)
            .map(|i| {
                crate::testing::xorshift(&mut x);
                Group { keys: vec![format!("k{i}").into()], metrics: vec![("revenue", i128::from((x % 300) as u16))] }
            })
            .collect();
        let mut sorted: Vec<&Group> = many.iter().collect();
        sorted.sort_by(|a, b| b.get("revenue").cmp(&a.get("revenue")).then_with(|| a.keys.cmp(&b.keys)));
        let want: Vec<Vec<String>> =
            sorted[..TABLE_ROWS].iter().map(|g| g.keys.iter().map(|k| k.to_string()).collect()).collect();
        let picked: Vec<Vec<String>> =
            share_rows(&Table::from(many), 1).into_iter().take(TABLE_ROWS).map(|r| r.keys).collect();
        assert_eq!(picked, want);
        let geo: Vec<Group> = (1..=15)
            .map(|i| Group { keys: vec![format!("C{i:02}").into(), "d".into()], metrics: vec![("revenue", i)] })
            .collect();
        let bars = split(&Table::from(geo), 0, 120);
        assert_eq!(bars.len(), CHART_BARS);
        assert_eq!(bars.last().unwrap().label, "4 others");
        assert_eq!(bars.last().unwrap().value, 10.0, "1 + 2 + 3 + 4");
    }

    #[test]
    fn labels_and_paths() {
        let hour = 1_795_352_400_000_000; // 2026-11-22T13:00Z, a Sunday
        assert_eq!(day_label(hour), "Sunday 22 November 2026");
        assert_eq!(day_label(0), "Thursday 1 January 1970");
        assert_eq!(hour_label(hour), "13:00–14:00 UTC");
        assert_eq!(hour_label(hour + 10 * HOUR_MICROS), "23:00–00:00 UTC");
        assert_eq!(report_path(Period::Hour, hour), "dt=2026-11-22/hour=13/index.html");
        assert_eq!(report_path(Period::Day, day_of(hour)), "dt=2026-11-22/index.html");
    }

    #[test]
    fn a_page_compares_with_the_previous_hour_and_the_last_weeks() {
        let hour = 1_795_352_400_000_000;
        let k = |revenue, orders| Kpis { revenue, orders, ..Kpis::default() };
        let facts = Facts {
            period: Some(Period::Hour),
            start: hour,
            kpis: Some(k(300_000, 40)),
            previous: Some(k(100_000, 40)),
            week_ago: None,
            history: vec![k(100_000, 35), k(120_000, 45)],
            trend: vec![(hour - HOUR_MICROS, Some(k(100_000, 40))), (hour, Some(k(300_000, 40)))],
            complete: true,
            ..Facts::default()
        };
        let page = page(&facts, "../../");
        let revenue = &page.kpis[0];
        assert_eq!((revenue.value.as_str(), revenue.raw.as_str()), ("3,000.00", "3000.00"));
        assert_eq!(revenue.vs_previous.as_ref().unwrap().text, "+200.0%");
        assert!(revenue.vs_week.is_none(), "no data a week ago");
        assert_eq!(revenue.outlier, Some("above"), "3000 is above 1.2 x 1200");
        assert_eq!(page.kpis[1].outlier, None, "40 orders is inside [28, 54]");
        assert_eq!(page.outliers.len(), 1);
        assert_eq!(page.outliers[0].band, "800.00 – 1,440.00");
        let unfinished = Facts { complete: false, ..facts.clone() };
        assert!(super::page(&unfinished, "").outliers.is_empty(), "a period that is not over is not judged");
        // Bounds are rounded inwards: 33 orders at least once give a lower bound of 26.4, shown as 27.
        let low = Facts { kpis: Some(k(100_000, 26)), history: vec![k(100_000, 33), k(100_000, 40)], ..facts.clone() };
        let flagged = super::page(&low, "");
        assert_eq!(flagged.outliers.iter().find(|o| o.metric == "orders").unwrap().band, "27 – 48");
        assert_eq!(page.nav[0].href, "../../dt=2026-11-22/hour=12/index.html");
        assert_eq!(page.nav.last().unwrap().href, "../../latest.html");
    }
}
