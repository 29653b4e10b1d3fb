//! hourly-insights: turns an hourly orders CSV export into Parquet insight tables, a rejects file and a
//! summary JSON.
//!
//! Data flows one way: [`input`] (open, decode) -> [`contract`] (validate rows into chunks) ->
//! [`aggregate`] (polars partials per [`tables`] spec) -> [`output`] (Parquet, rejects, layout) ->
//! [`storage`] (where the files go), orchestrated by [`pipeline`] and summarised by [`summary`].

pub mod aggregate;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod contract;
pub mod decode;
pub mod error;
pub mod generate;
pub mod input;
pub mod intern;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod parse;
pub mod partial;
pub mod pipeline;
pub mod publish;
pub mod records;
pub mod replay;
pub mod report;
pub mod s3;
pub mod settings;
pub mod storage;
pub mod summary;
pub mod tables;

pub use error::{Error, InputError, Result};

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// xorshift64: advances `x` and returns it. The tests' repeatable source of random inputs.
    pub fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }
}
