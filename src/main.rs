//! The `hourly-insights` binary: the command line. Errors get context here and become exit codes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;

use hourly_insights::cli::{Cli, Command, GenerateArgs, RunArgs};
use hourly_insights::generate::{generate, GenerateOptions};
use hourly_insights::summary::Status;
use hourly_insights::{input, logging, parse, pipeline, storage};

/// Exit code of a run whose input was rejected as a whole.
const EXIT_INPUT_REJECTED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, "info");
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Generate(args) => generate_cmd(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let input =
        input::open_local(&args.input).with_context(|| format!("cannot open input {}", args.input.display()))?;
    let sink = storage::LocalDir::new(&args.out)
        .with_context(|| format!("cannot use output directory {}", args.out.display()))?;
    let options = pipeline::Options { chunk_rows: args.chunk_rows.max(1), ..Default::default() };
    let summary = pipeline::run(input, &sink, &options)?;
    print!("{}", summary.to_json());
    if summary.status == Status::Failed {
        let message = summary.error.as_ref().map_or("", |e| e.message.as_str());
        eprintln!("error: input rejected: {message}");
        return Ok(ExitCode::from(EXIT_INPUT_REJECTED));
    }
    Ok(ExitCode::SUCCESS)
}

fn generate_cmd(args: GenerateArgs) -> anyhow::Result<()> {
    let Some(hour_start) = parse::event_time_micros(format!("{}:00:00Z", args.hour).as_bytes()) else {
        bail!("--hour must look like 2026-11-22T13, got '{}'", args.hour);
    };
    if !(0.0..=1.0).contains(&args.dirty) {
        bail!("--dirty must be between 0 and 1, got {}", args.dirty);
    }
    let opts = GenerateOptions { rows: args.rows, seed: args.seed, hour_start, dirty: args.dirty };
    let report = match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let out = BufWriter::with_capacity(1 << 20, file);
            let report = if path.extension().is_some_and(|e| e == "gz") {
                let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                let report = generate(&opts, &mut gz)?;
                gz.finish()?.flush()?;
                report
            } else {
                let mut out = out;
                let report = generate(&opts, &mut out)?;
                out.flush()?;
                report
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            report
        }
        None => {
            let stdout = std::io::stdout().lock();
            let report = generate(&opts, BufWriter::with_capacity(1 << 20, stdout))?;
            eprintln!("{}", serde_json::to_string_pretty(&report)?);
            report
        }
    };
    tracing::info!(rows = report.rows, rejected = report.rejected, "generated");
    Ok(())
}
