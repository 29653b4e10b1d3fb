//! The digest: a few lines on an hour or day for people who will not open a table, with the link to its
//! report. Published to SNS by the Lambda (`DIGEST_TOPIC_ARN`), printed by `hourly-insights report`, and
//! kept as JSON in the run's summary.

use serde::{Deserialize, Serialize};

use super::model::{self, Facts, Kpis};
use super::outlier;
use crate::aggregate::tables::Period;
use crate::contract::parse;

/// The digest of one hour or day.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Digest {
    /// `hour` or `day`.
    pub period: String,
    /// RFC 3339 start of the hour or day.
    pub start: String,
    /// One line of ASCII, fit for an e-mail subject (under 100 characters, as SNS requires).
    pub subject: String,
    /// The whole message (a few lines, ending with the link).
    pub text: String,
    /// Where the report is: `REPORT_BASE_URL` + its key when set, else its storage URI.
    pub report: String,
    pub revenue: String,
    pub orders: i64,
    pub customers: i64,
    pub units: i64,
    pub avg_order_value: String,
    /// Change against the previous hour or day, in percent (null when that had nothing).
    pub revenue_vs_previous_pct: Option<f64>,
    pub orders_vs_previous_pct: Option<f64>,
    /// Change against the same hour or day a week earlier, in percent.
    pub revenue_vs_week_pct: Option<f64>,
    pub orders_vs_week_pct: Option<f64>,
    /// Outlier sentences (empty when none; see the README's band).
    pub outliers: Vec<String>,
}

fn round1(p: Option<f64>) -> Option<f64> {
    p.map(|p| (p * 10.0).round() / 10.0)
}

fn versus(now: i128, before: Option<i128>, what: &str) -> String {
    match before.and_then(|b| model::change_percent(now, b)) {
        Some(p) => format!("{} vs {what}", model::percent_text(p)),
        None => format!("no {what} to compare"),
    }
}

/// The digest of `facts`, linking to `report`.
pub fn digest(facts: &Facts, report: &str) -> Digest {
    let period = facts.period.unwrap_or(Period::Hour);
    let k = facts.kpis.unwrap_or_default();
    let (dt, hh) = parse::partition_values(facts.start);
    let (what, previous, week, name) = match period {
        Period::Hour => ("hour", "previous hour", "last week", format!("{dt} {hh}:00 UTC")),
        Period::Day => ("day", "previous day", "last week", format!("{dt} (UTC day)")),
    };
    let prev = |f: fn(&Kpis) -> i128| facts.previous.as_ref().map(f);
    let week_ago = |f: fn(&Kpis) -> i128| facts.week_ago.as_ref().map(f);
    let page = model::page(facts, "");
    let outliers: Vec<String> = page.outliers.iter().map(|o| o.text.clone()).collect();
    // First, so that a long subject cut to SNS's limit keeps it.
    let flag = if outliers.is_empty() { "" } else { "[outlier] " };
    let subject = format!(
        "{flag}{name}: revenue {} ({}), {} orders",
        model::money(k.revenue),
        versus(k.revenue, prev(|k| k.revenue), previous),
        model::count(k.orders)
    );
    let mut text = format!(
        "{}, {}\n\
         Revenue {} ({}; {})\n\
         Orders {} ({}; {})\n\
         Customers {}, units {}, average order value {}\n",
        match period {
            Period::Hour => model::hour_label(facts.start),
            Period::Day => "whole day".into(),
        },
        model::day_label(facts.start),
        model::money(k.revenue),
        versus(k.revenue, prev(|k| k.revenue), previous),
        versus(k.revenue, week_ago(|k| k.revenue), week),
        model::count(k.orders),
        versus(k.orders, prev(|k| k.orders), previous),
        versus(k.orders, week_ago(|k| k.orders), week),
        model::count(k.customers),
        model::count(k.units),
        model::money(k.avg_order_value),
    );
    if facts.kpis.is_none() {
        text.push_str(&format!("Nothing is published for this {what}.\n"));
    }
    for o in &outliers {
        text.push_str(&format!("Outlier: {o}.\n"));
    }
    if facts.history.len() < outlier::MIN_HISTORY {
        text.push_str(&format!("(Too little history to judge outliers: {} of 4 weeks.)\n", facts.history.len()));
    }
    text.push_str(&format!("Report: {report}\n"));
    Digest {
        period: what.into(),
        start: parse::format_rfc3339(facts.start),
        subject: truncate(&subject, 99),
        text,
        report: report.to_string(),
        revenue: parse::format_cents(k.revenue),
        orders: k.orders as i64,
        customers: k.customers as i64,
        units: k.units as i64,
        avg_order_value: parse::format_cents(k.avg_order_value),
        revenue_vs_previous_pct: round1(prev(|k| k.revenue).and_then(|b| model::change_percent(k.revenue, b))),
        orders_vs_previous_pct: round1(prev(|k| k.orders).and_then(|b| model::change_percent(k.orders, b))),
        revenue_vs_week_pct: round1(week_ago(|k| k.revenue).and_then(|b| model::change_percent(k.revenue, b))),
        orders_vs_week_pct: round1(week_ago(|k| k.orders).and_then(|b| model::change_percent(k.orders, b))),
        outliers,
    }
}

/// At most `max` characters of ASCII (SNS subjects: printable ASCII, no line break, under 100
/// characters): anything else becomes `?`, and a longer text is cut with `...`.
fn truncate(s: &str, max: usize) -> String {
    let ascii: String = s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if ascii.len() <= max {
        return ascii;
    }
    format!("{}...", &ascii[..max - 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_states_the_headline_and_links_the_report() {
        let hour = 1_795_352_400_000_000;
        let k = |revenue, orders| Kpis {
            revenue,
            orders,
            customers: 3,
            units: 9,
            avg_order_value: 2_500,
            ..Kpis::default()
        };
        let facts = Facts {
            period: Some(Period::Hour),
            start: hour,
            kpis: Some(k(300_000, 40)),
            previous: Some(k(250_000, 50)),
            history: vec![k(100_000, 35), k(120_000, 45)],
            complete: true,
            ..Facts::default()
        };
        let d = digest(&facts, "https://example.test/reports/dt=2026-11-22/hour=13/index.html");
        assert_eq!(d.subject, "[outlier] 2026-11-22 13:00 UTC: revenue 3,000.00 (+20.0% vs previous hour), 40 orders");
        assert!(d.text.contains("Orders 40 (-20.0% vs previous hour; no last week to compare)"), "{}", d.text);
        assert!(d.text.ends_with("Report: https://example.test/reports/dt=2026-11-22/hour=13/index.html\n"));
        assert_eq!((d.revenue.as_str(), d.orders, d.revenue_vs_previous_pct), ("3000.00", 40, Some(20.0)));
        assert_eq!(d.outliers.len(), 1);
        assert!(d.subject.len() < 100 && d.subject.is_ascii());
        assert_eq!(truncate("abcdefg", 6), "abc...");
        assert_eq!(truncate("a\nb–c", 10), "a?b?c");
    }
}
