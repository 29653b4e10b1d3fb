//! The page templates (MiniJinja, HTML auto-escaping on), compiled once per process.

use std::sync::OnceLock;

use minijinja::value::Serde;
use minijinja::{context, Environment, Value};

use super::model::Page;
use crate::error::{Error, Result};

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Templates ending in .html are escaped as HTML (MiniJinja's default for that extension).
        env.add_template("svg.html", include_str!("templates/svg.html")).expect("svg.html compiles");
        env.add_template("page.html", include_str!("templates/page.html")).expect("page.html compiles");
        env
    })
}

/// The HTML of a page: one self-contained document (inline CSS and SVG, nothing fetched).
pub fn page(page: &Page) -> Result<String> {
    let template = environment()
        .get_template("page.html")
        .map_err(|e| Error::Internal { message: format!("report template: {e}") })?;
    let ctx = context! { version => env!("CARGO_PKG_VERSION"), ..Value::from(Serde(page)) };
    template.render(ctx).map_err(|e| Error::Internal { message: format!("cannot render the report: {e:#}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::tables::Period;
    use crate::output::report::model::{self, Facts, Kpis};
    use crate::output::report::source::{Group, Table};

    /// Values from the export (channel, campaign, SKU, country) reach the page escaped, never as markup.
    #[test]
    fn values_from_the_export_are_escaped() {
        let evil = "<script>alert(\"x\")</script>&";
        let group = |keys: Vec<&str>| Group {
            keys: keys.into_iter().map(polars::prelude::PlSmallStr::from).collect(),
            metrics: vec![("revenue", 100), ("orders", 1), ("rank", 1)],
        };
        let facts = Facts {
            period: Some(Period::Hour),
            start: 1_795_352_400_000_000,
            kpis: Some(Kpis { revenue: 100, orders: 1, ..Kpis::default() }),
            channels: Table::from(vec![group(vec![evil, evil])]).into(),
            categories: Table::from(vec![group(vec![evil])]).into(),
            products: Table::from(vec![group(vec![evil])]).into(),
            geo: Table::from(vec![group(vec![evil, evil])]).into(),
            complete: true,
            ..Facts::default()
        };
        let html = page(&model::page(&facts, "../../")).unwrap();
        assert!(!html.contains("<script"), "markup from the data is escaped");
        assert!(html.matches("&lt;script&gt;").count() >= 6, "every value is shown, escaped");
        assert!(!html.contains("alert(\"x\")"), "quotes are escaped too");
    }
}
