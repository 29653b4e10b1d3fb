//! Reports for people who do not write SQL: one self-contained HTML page per hour and per day, written
//! beside the tables whenever they are published, and a short digest of the newest hour.
//!
//! Layout under the output root:
//! - `reports/dt=YYYY-MM-DD/hour=HH/index.html`: an hour;
//! - `reports/dt=YYYY-MM-DD/index.html`: a day;
//! - `reports/latest.html`: the newest hour published.
//!
//! The flow: [`source`] reads the published tables, manifests and summaries; [`model`] turns them into the
//! facts of a period and the page to show; [`chart`] computes the SVG shapes; [`render`] fills the
//! templates; [`digest`] writes the few lines sent to SNS. A report carries the generation of the tables it
//! follows (as the tables do, [`crate::output::publish::put_generation`]), so a run that computed an older state never
//! replaces a newer report. A report shows its neighbours (previous hour, last 24 hours, previous weeks) as
//! they were when it was written; `hourly-insights report` writes them all again.

pub mod chart;
pub mod digest;
pub mod model;
pub mod outlier;
pub mod render;
pub mod source;

use crate::aggregate::partial::HOUR_MICROS;
use crate::aggregate::tables::Period;
use crate::error::Result;
use crate::output::publish::{self, PeriodRef};
use crate::storage::Sink;

pub use digest::Digest;
pub use source::Published;

/// Where the digest's link points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `REPORT_BASE_URL`: the address of the output root for people (a CloudFront or intranet URL); the
    /// link is this plus the report's key. Unset: the report's storage URI.
    pub link_base: Option<String>,
}

impl Options {
    /// The link to the report stored under `key`.
    pub fn link(&self, sink: &dyn Sink, key: &str) -> String {
        match &self.link_base {
            Some(base) => format!("{}/{key}", base.trim_end_matches('/')),
            None => sink.uri(key),
        }
    }
}

/// What [`publish`] wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// URIs of the reports written.
    pub reports: Vec<String>,
    /// The digest of the newest hour among the periods.
    pub digest: Option<Digest>,
}

pub const LATEST_KEY: &str = "reports/latest.html";
const HTML: &str = "text/html; charset=utf-8";

/// The key of a period's report.
pub fn report_key(period: Period, start: i64) -> String {
    format!("reports/{}", model::report_path(period, start))
}

/// The generation `latest.html` is written with: the hour first, then its tables' generation, so that only a
/// newer hour, or the same hour computed again, replaces it.
fn latest_generation(start: i64, generation: u64) -> u64 {
    let hour = u64::try_from(start.div_euclid(HOUR_MICROS)).unwrap_or(0).min((1 << 27) - 1);
    (hour << 36) | generation.min((1 << 36) - 1)
}

/// The HTML of the hour or day starting at `start`; `base` is the page's relative path to `reports/`.
pub fn html(data: &Published, period: Period, start: i64, base: &str) -> Result<(String, model::Facts)> {
    let facts = model::facts(data, period, start)?;
    Ok((render::page(&model::page(&facts, base))?, facts))
}

/// Hours starting later than this after now are not "the newest hour" of `latest.html` and the digest: a
/// stray row dated in the future must not take them over.
const FUTURE_SLACK_MICROS: i64 = HOUR_MICROS;

/// Now, in µs since the epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Writes the report of every period in `periods` and `latest.html` for the newest hour among them, each
/// over a report of the same or an older generation only (a retry writes its pages again; a slow run never
/// replaces a newer page). The digest is of `digest_hour` when it is among the hours (a run's main hour),
/// else of the newest hour. Returns what was written.
pub fn publish(
    data: &Published,
    periods: &[PeriodRef],
    options: &Options,
    digest_hour: Option<i64>,
) -> Result<Written> {
    let sink = data.sink();
    let started = std::time::Instant::now();
    let mut written = Written::default();
    let mut newest: Option<(PeriodRef, model::Facts)> = None;
    let mut chosen: Option<model::Facts> = None;
    let latest_bound = now_micros() + FUTURE_SLACK_MICROS;
    let mut put = |key: &str, html: &str, generation: u64| -> Result<()> {
        if publish::put_generation(sink, key, html.as_bytes(), HTML, generation, true)? == publish::Stored::Written {
            written.reports.push(sink.uri(key));
        }
        Ok(())
    };
    for p in periods {
        let base = match p.period {
            Period::Hour => "../../",
            Period::Day => "../",
        };
        let (page, facts) = html(data, p.period, p.start, base)?;
        put(&report_key(p.period, p.start), &page, p.generation)?;
        if p.period != Period::Hour || p.start > latest_bound {
            continue;
        }
        if digest_hour == Some(p.start) {
            chosen = Some(facts.clone());
        }
        if newest.as_ref().is_none_or(|(n, _)| p.start >= n.start) {
            newest = Some((*p, facts));
        }
    }
    if let Some((p, facts)) = &newest {
        let page = render::page(&model::page(facts, ""))?;
        put(LATEST_KEY, &page, latest_generation(p.start, p.generation))?;
    }
    if let Some(facts) = chosen.as_ref().or(newest.as_ref().map(|(_, f)| f)) {
        written.digest = Some(digest::digest(facts, &options.link(sink, &report_key(Period::Hour, facts.start))));
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, reports = written.reports.len(), "reports written");
    Ok(written)
}

/// Every hour and day that has a manifest, with its current generation, days in order.
pub fn all_periods(sink: &dyn Sink) -> Result<Vec<PeriodRef>> {
    let mut periods = Vec::new();
    for key in sink.list("_state/dt=")? {
        let Some(day) = key.strip_prefix("_state/dt=").and_then(|k| k.strip_suffix("/manifest.json")) else {
            continue;
        };
        let Some(manifest) = publish::read_manifest(sink, day)? else { continue };
        for hh in &manifest.hours {
            if let Some(start) = crate::contract::parse::event_time_micros(format!("{day}T{hh}:00:00Z").as_bytes()) {
                periods.push(PeriodRef { period: Period::Hour, start, generation: manifest.generation });
            }
        }
        if let Some(start) = crate::contract::parse::event_time_micros(format!("{day}T00:00:00Z").as_bytes()) {
            periods.push(PeriodRef { period: Period::Day, start, generation: manifest.generation });
        }
    }
    Ok(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_orders_by_hour_then_generation() {
        let h = 1_795_352_400_000_000;
        assert!(latest_generation(h + HOUR_MICROS, 1) > latest_generation(h, 900));
        assert!(latest_generation(h, 3) > latest_generation(h, 2));
        assert_eq!(report_key(Period::Hour, h), "reports/dt=2026-11-22/hour=13/index.html");
    }
}
