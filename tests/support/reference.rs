#![allow(dead_code)] // each test binary uses part of it
//! An independent computation of every hourly and daily table over a set of rows, the obvious way (hash
//! sets of the ids themselves, no interning, no partial states), for the merge tests to compare the
//! published tables with, cell by cell. It shares no code with the pipeline except the RFC 3339 formatter.

use std::collections::{BTreeMap, BTreeSet};

use hourly_insights::contract::parse::{format_cents, format_rfc3339};
use polars::prelude::*;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

/// One valid order line.
#[derive(Clone, Debug)]
pub struct Line {
    /// µs since the epoch, UTC.
    pub time: i64,
    pub order: String,
    /// Empty for a guest.
    pub customer: String,
    pub sku: String,
    pub category: String,
    pub quantity: i64,
    pub price_cents: i64,
    pub channel: String,
    pub campaign: String,
    pub country: String,
    pub device: String,
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// `n` random lines in the hours `hours` (µs starts), with order ids `O-<k>` for k in `orders` and customer
/// ids `C-<k>` for k in `customers` (a fifth of the lines are guests). An order's lines are adjacent.
pub fn random_lines(
    seed: u64,
    hours: &[i64],
    n: usize,
    orders: std::ops::Range<u64>,
    customers: std::ops::Range<u64>,
) -> Vec<Line> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut pick = |n: u64| xorshift(&mut x) % n;
    let channels = ["web", "app", "email", "search", ""];
    let campaigns = ["bf_2026", "newsletter", "", "brand"];
    let countries = ["DE", "FR", "US", "", "PL"];
    let devices = ["mobile", "desktop", "tablet", ""];
    let categories = ["toys", "books", "electronics", "", "home, garden"];
    let mut lines = Vec::with_capacity(n);
    while lines.len() < n {
        let order = format!("O-{}", orders.start + pick(orders.end - orders.start));
        let customer = if pick(5) == 0 {
            String::new()
        } else {
            format!("C-{}", customers.start + pick(customers.end - customers.start))
        };
        let time = hours[pick(hours.len() as u64) as usize] + pick(HOUR as u64) as i64 / 1_000_000 * 1_000_000;
        let (channel, campaign) = (channels[pick(5) as usize], campaigns[pick(4) as usize]);
        let (country, device) = (countries[pick(5) as usize], devices[pick(4) as usize]);
        for _ in 0..1 + pick(3) {
            let sku = pick(40);
            lines.push(Line {
                time,
                order: order.clone(),
                customer: customer.clone(),
                sku: format!("SKU-{sku}"),
                category: categories[(sku % 5) as usize].to_string(),
                quantity: 1 + pick(5) as i64,
                price_cents: 100 + pick(20_000) as i64,
                channel: channel.into(),
                campaign: campaign.into(),
                country: country.into(),
                device: device.into(),
            });
        }
    }
    lines.truncate(n);
    lines
}

/// The lines as an export (header and RFC 3339 times), followed by `bad` rows (which must be rejected).
pub fn csv_text(lines: &[Line], bad: &[&str]) -> String {
    let mut out = String::from(
        "event_time,order_id,customer_id,sku,category,quantity,unit_price,channel,campaign,country,device\n",
    );
    for l in lines {
        let cat = if l.category.contains(',') { format!("\"{}\"", l.category) } else { l.category.clone() };
        out.push_str(&format!(
            "{},{},{},{},{},{},{}.{:02},{},{},{},{}\n",
            format_rfc3339(l.time),
            l.order,
            l.customer,
            l.sku,
            cat,
            l.quantity,
            l.price_cents / 100,
            l.price_cents % 100,
            l.channel,
            l.campaign,
            l.country,
            l.device
        ));
    }
    for b in bad {
        out.push_str(b);
        out.push('\n');
    }
    out
}

#[derive(Default)]
struct Acc {
    lines: i64,
    units: i64,
    revenue: i128,
    orders: BTreeSet<String>,
    customers: BTreeSet<String>,
    products: BTreeSet<String>,
}

fn or_unknown(v: &str) -> String {
    if v.is_empty() {
        "unknown".into()
    } else {
        v.to_string()
    }
}

fn round_half_away(num: i128, den: i128) -> i128 {
    if den == 0 {
        0
    } else {
        (2 * num + den) / (2 * den)
    }
}

/// Every table of every hour and day present in `lines`: `table/dt=…/hour=…` (or `daily_table/dt=…`) ->
/// rows as `|`-joined cells (period as `YYYY-MM-DDTHH` or `YYYY-MM-DD`, money with two decimals), in the
/// published order.
pub fn expected(lines: &[Line]) -> BTreeMap<String, Vec<String>> {
    // (hourly name, daily name, key columns, metrics, top)
    type Spec = (&'static str, &'static str, &'static [&'static str], &'static [&'static str], bool);
    let specs: &[Spec] = &[
        ("hourly_kpis", "daily_kpis", &[], &["orders", "order_lines", "units", "revenue", "customers", "aov"], false),
        (
            "channel_performance",
            "daily_channel_performance",
            &["channel", "campaign"],
            &["orders", "order_lines", "units", "revenue", "customers"],
            false,
        ),
        ("category_sales", "daily_category_sales", &["category"], &["orders", "units", "revenue", "products"], false),
        ("geo_device", "daily_geo_device", &["country", "device"], &["orders", "customers", "revenue"], false),
        ("top_products", "daily_top_products", &["sku"], &["orders", "units", "revenue"], true),
    ];
    let key_of = |l: &Line, k: &str| match k {
        "channel" => or_unknown(&l.channel),
        "campaign" => or_unknown(&l.campaign),
        "category" => or_unknown(&l.category),
        "country" => or_unknown(&l.country),
        "device" => or_unknown(&l.device),
        "sku" => l.sku.clone(),
        _ => unreachable!(),
    };
    let mut out = BTreeMap::new();
    for daily in [false, true] {
        let period_of = |t: i64| if daily { t.div_euclid(DAY) * DAY } else { t.div_euclid(HOUR) * HOUR };
        let periods: BTreeSet<i64> = lines.iter().map(|l| period_of(l.time)).collect();
        for &(hourly_name, daily_name, keys, metrics, top) in specs {
            for &p in &periods {
                let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
                for l in lines.iter().filter(|l| period_of(l.time) == p) {
                    let acc = groups.entry(keys.iter().map(|k| key_of(l, k)).collect()).or_default();
                    acc.lines += 1;
                    acc.units += l.quantity;
                    acc.revenue += i128::from(l.quantity) * i128::from(l.price_cents);
                    acc.orders.insert(l.order.clone());
                    if !l.customer.is_empty() {
                        acc.customers.insert(l.customer.clone());
                    }
                    acc.products.insert(l.sku.clone());
                }
                let mut groups: Vec<(Vec<String>, Acc)> = groups.into_iter().collect();
                if top {
                    groups.sort_by(|a, b| b.1.revenue.cmp(&a.1.revenue).then(a.0.cmp(&b.0)));
                    groups.truncate(10);
                }
                let stamp = format_rfc3339(p);
                let (name, label) =
                    if daily { (daily_name, stamp[..10].to_string()) } else { (hourly_name, stamp[..13].to_string()) };
                let rows = groups
                    .iter()
                    .enumerate()
                    .map(|(i, (k, a))| {
                        let mut cells = vec![label.clone()];
                        if top {
                            cells.push((i + 1).to_string());
                        }
                        cells.extend(k.iter().cloned());
                        for m in metrics {
                            cells.push(match *m {
                                "orders" => a.orders.len().to_string(),
                                "order_lines" => a.lines.to_string(),
                                "units" => a.units.to_string(),
                                "revenue" => format_cents(a.revenue),
                                "customers" => a.customers.len().to_string(),
                                "products" => a.products.len().to_string(),
                                "aov" => format_cents(round_half_away(a.revenue, a.orders.len() as i128)),
                                _ => unreachable!(),
                            });
                        }
                        cells.join("|")
                    })
                    .collect();
                let key = if daily {
                    format!("{name}/dt={}", &stamp[..10])
                } else {
                    format!("{name}/dt={}/hour={}", &stamp[..10], &stamp[11..13])
                };
                out.insert(key, rows);
            }
        }
    }
    out
}

/// A Parquet file's rows as `|`-joined cells, formatted as [`expected`] formats them.
pub fn parquet_rows(bytes: &[u8]) -> Vec<String> {
    let df = ParquetReader::new(std::io::Cursor::new(bytes.to_vec())).finish().unwrap();
    (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| match c.dtype() {
                    DataType::Datetime(_, _) => {
                        format_rfc3339(c.datetime().unwrap().physical().get(i).unwrap())[..13].to_string()
                    }
                    DataType::Date => {
                        format_rfc3339(i64::from(c.date().unwrap().physical().get(i).unwrap()) * DAY)[..10].to_string()
                    }
                    DataType::Decimal(_, _) => format_cents(c.decimal().unwrap().physical().get(i).unwrap()),
                    DataType::Int64 => c.i64().unwrap().get(i).unwrap().to_string(),
                    DataType::String => c.str().unwrap().get(i).unwrap().to_string(),
                    other => panic!("unexpected column type {other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Every file under `dir` (hidden ones included; none when it does not exist): relative key -> bytes.
pub fn tree(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The published tables among `files` (relative key -> bytes, an optional prefix stripped):
/// `table/dt=…[/hour=…]` -> rows.
pub fn published(files: &BTreeMap<String, Vec<u8>>, prefix: &str) -> BTreeMap<String, Vec<String>> {
    files
        .iter()
        .filter(|(k, _)| k.ends_with("/data.parquet"))
        .map(|(k, v)| {
            let k = k.strip_prefix(prefix).unwrap_or(k);
            (k.strip_suffix("/data.parquet").unwrap().to_string(), parquet_rows(v))
        })
        .collect()
}

/// Asserts that the published tables are exactly the expected ones: every expected hour and day with its
/// rows, and any other published hour (one whose sources all left) empty.
pub fn assert_tables(published: &BTreeMap<String, Vec<String>>, expected: &BTreeMap<String, Vec<String>>, ctx: &str) {
    for (key, rows) in expected {
        assert_eq!(published.get(key), Some(rows), "{ctx}: {key}");
    }
    for (key, rows) in published {
        if !expected.contains_key(key) {
            assert!(rows.is_empty(), "{ctx}: {key} should have no rows, has {rows:?}");
        }
    }
}
