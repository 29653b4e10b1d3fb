//! hourly-insights: turns an hourly orders CSV export into Parquet insight tables, a rejects file and a
//! summary JSON.
//!
//! Data flows one way, one folder per stage:
//! [`read`] (open, decompress, transcode, split records) -> [`contract`] (validate rows into chunks of codes,
//! by the [`settings`]) -> [`aggregate`] (the engine, the tables as data, id interning, mergeable partial
//! states) -> [`output`] (Parquet, rejects, summary, catalog, publishing hours and days, reports) ->
//! [`storage`] (local directory or S3). [`pipeline`] runs one source through them; [`lambda`] is the
//! S3-triggered handler around it; [`cli`] the command line.

pub mod aggregate;
pub mod cli;
pub mod contract;
pub mod error;
pub mod generate;
pub mod lambda;
pub mod memory;
pub mod output;
pub mod pipeline;
pub mod read;
pub mod settings;
pub mod storage;

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
