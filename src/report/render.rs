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
