//! The `hourly-insights` binary. Inside Lambda (`AWS_LAMBDA_RUNTIME_API` is set) it runs the runtime loop;
//! on a terminal it is the command line. Errors get context here and become exit codes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use tracing::Instrument;

use hourly_insights::cli::{
    CatalogArgs, Cli, Command, ConfigArg, ConfigCommand, CostArgs, ForgetArgs, GenerateArgs, InvokeArgs, RebuildArgs,
    ReplayArgs, ReportArgs, RunArgs,
};
use hourly_insights::contract::parse;
use hourly_insights::generate::{generate, GenerateOptions};
use hourly_insights::lambda::config::Config;
use hourly_insights::lambda::logging;
use hourly_insights::lambda::Handler;
use hourly_insights::output::summary::Status;
use hourly_insights::pipeline;
use hourly_insights::read::input;
use hourly_insights::settings::Settings;
use hourly_insights::storage::s3::{self, S3Sink, S3Uri};
use hourly_insights::storage::{LocalDir, Sink};

/// Exit code of a run whose input was rejected as a whole.
const EXIT_INPUT_REJECTED: u8 = 2;

fn main() -> ExitCode {
    hourly_insights::memory::keep_freed_memory();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_main();
    }
    let cli = parse_cli();
    logging::init_cli(cli.log_format);
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Generate(args) => generate_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Invoke(args) => invoke(args),
        Command::Cost(args) => cost(args).map(|()| ExitCode::SUCCESS),
        Command::Forget(args) => forget(args).map(|()| ExitCode::SUCCESS),
        Command::Rebuild(args) => rebuild(args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => replay(args),
        Command::Report(args) => report(args).map(|()| ExitCode::SUCCESS),
        Command::Config(command) => config_cmd(command),
        Command::Catalog(args) => catalog(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, with `run --help` describing the contract and tables of the config given by `--config`
/// or `HOURLY_INSIGHTS_CONFIG` (a local file), or the defaults.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<String> = std::env::args().collect();
    // Only a help request reads the config here; a run reads it once, where it is used.
    if !args.iter().any(|a| a == "--help" || a == "help") {
        return Cli::parse();
    }
    let given = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=").map(str::to_string)))
        .or_else(|| std::env::var("HOURLY_INSIGHTS_CONFIG").ok());
    let settings = given
        .filter(|path| S3Uri::parse(path).is_none())
        .and_then(|path| hourly_insights::settings::file::load(std::path::Path::new(&path)).ok());
    let help = hourly_insights::cli::contract_help(settings.as_ref().unwrap_or(Settings::default_ref()));
    let command = Cli::command().mut_subcommand("run", |run| run.after_long_help(help));
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The settings of a `--config` argument: the defaults without one, else the file (a path, or s3://bucket/key
/// read with the standard AWS configuration). A config with problems is an error listing all of them.
fn settings_of(arg: &ConfigArg) -> anyhow::Result<&'static Settings> {
    let Some(uri) = &arg.config else { return Ok(Settings::default_ref()) };
    if S3Uri::parse(uri).is_none() {
        return Ok(hourly_insights::settings::file::load(std::path::Path::new(uri))?.leak());
    }
    let rt = runtime()?;
    rt.block_on(async {
        let client = s3::client_from_env().await;
        fetch_settings(Some(uri), &client).await
    })
}

/// The settings at `uri` (a path, or s3://bucket/key), read once per process; the defaults without one.
async fn fetch_settings(uri: Option<&str>, client: &aws_sdk_s3::Client) -> anyhow::Result<&'static Settings> {
    let Some(uri) = uri else { return Ok(Settings::default_ref()) };
    let Some(s3) = S3Uri::parse(uri) else {
        return Ok(hourly_insights::settings::file::load(std::path::Path::new(uri))?.leak());
    };
    let object = client
        .get_object()
        .bucket(&s3.bucket)
        .key(&s3.key)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read the config {uri}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    let bytes = object.body.collect().await.with_context(|| format!("cannot read the config {uri}"))?.into_bytes();
    let text = std::str::from_utf8(&bytes).with_context(|| format!("the config {uri} is not UTF-8 text"))?;
    let settings = hourly_insights::settings::file::parse(text.trim_start_matches('\u{feff}'))
        .map_err(|errors| anyhow!("the config {uri} is not valid:\n{errors}"))?;
    Ok(settings.leak())
}

/// `config check FILE` and `config show [FILE]`.
fn config_cmd(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    use hourly_insights::settings::file;
    // A config with problems exits with 2, a file that cannot be read with 1.
    let load = |path: &std::path::Path| -> Result<Settings, ExitCode> {
        file::load(path).map_err(|e| {
            eprintln!("{e}");
            match e {
                file::LoadError::Invalid { .. } => ExitCode::from(EXIT_INPUT_REJECTED),
                _ => ExitCode::FAILURE,
            }
        })
    };
    match command {
        ConfigCommand::Check { file } => match load(&file) {
            Ok(settings) => {
                let tables: Vec<&str> = settings.tables.iter().map(|t| t.name).collect();
                let dims: Vec<&str> = settings.dimensions.iter().map(|d| d.name.as_str()).collect();
                println!(
                    "{}: valid ({} dimensions: {}; {} tables: {})",
                    file.display(),
                    dims.len(),
                    dims.join(", "),
                    tables.len(),
                    tables.join(", ")
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        ConfigCommand::Show { file } => {
            let settings = match file {
                Some(path) => match load(&path) {
                    Ok(s) => s,
                    Err(code) => return Ok(code),
                },
                None => Settings::default_settings(),
            };
            print!("{}", file::to_toml(&settings));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `catalog [--config FILE]`: the Glue tables of the config's output.
fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let settings = settings_of(&args.config)?;
    print!("{}", hourly_insights::output::catalog::glue_tables_yaml(&settings.tables));
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// The Lambda runtime loop: configuration and the S3 client are built once per process.
fn lambda_main() -> ExitCode {
    logging::init_lambda();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration; the function cannot start");
            return ExitCode::FAILURE;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let settings_uri = config.settings_uri.clone();
        let handler = match handler_from_env(config, settings_uri.as_deref()).await {
            Ok(handler) => Arc::new(handler),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "invalid HOURLY_INSIGHTS_CONFIG; the function cannot start");
                return Err(lambda_runtime::Error::from(format!("{e:#}")));
            }
        };
        lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let handler = Arc::clone(&handler);
            async move {
                let deadline = Some(event.context.deadline()).filter(|_| event.context.deadline > 0);
                handler
                    .handle_until(event.payload, &event.context.request_id, deadline)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        }))
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the Lambda runtime loop stopped");
            ExitCode::FAILURE
        }
    }
}

/// The handler with its S3 client, the settings of the config at `settings_uri` (the defaults without one),
/// and an SNS client when digests are configured.
async fn handler_from_env(config: Config, settings_uri: Option<&str>) -> anyhow::Result<Handler> {
    let client = s3::client_from_env().await;
    let settings = fetch_settings(settings_uri, &client)
        .await
        .with_context(|| format!("HOURLY_INSIGHTS_CONFIG={} cannot be used", settings_uri.unwrap_or_default()))?;
    let mut handler = Handler::new(client, config);
    handler.set_settings(settings);
    if handler.wants_sns() {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        handler.sns = Some(aws_sdk_sns::Client::new(&shared));
    }
    Ok(handler)
}

fn report_options(base: Option<String>) -> anyhow::Result<hourly_insights::output::report::Options> {
    if let Some(url) = &base {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("--report-base-url '{url}' must be an http(s) address of --out");
        }
    }
    Ok(hourly_insights::output::report::Options { link_base: base })
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let input_s3 = S3Uri::parse(&args.input);
    let out_s3 = S3Uri::parse(&args.out);
    let rt = if input_s3.is_some() || out_s3.is_some() { Some(runtime()?) } else { None };
    let client = rt.as_ref().map(|rt| rt.block_on(s3::client_from_env()));
    let input = match (&input_s3, &rt, &client) {
        (Some(uri), Some(rt), Some(client)) => rt
            .block_on(s3::open_object(client, &uri.bucket, &uri.key, None))
            .with_context(|| format!("cannot open input {}", args.input))?
            .ok_or_else(|| anyhow!("cannot open input {}: no such object", args.input))?,
        _ => input::open_local(std::path::Path::new(&args.input))
            .with_context(|| format!("cannot open input {}", args.input))?,
    };
    let sink = open_sink(&args.out, rt.as_ref(), client)?;
    let options = pipeline::Options {
        chunk_rows: args.chunk_rows.map(|n| n.max(1)),
        max_record_bytes: args.max_record_mib.max(1) << 20,
        max_rejects_bytes: args.max_rejects_mib.max(1) << 20,
        stages: args.stages,
        report: report_options(args.report_base_url)?,
        settings: settings_of(&args.config)?,
        ..Default::default()
    };
    let summary = pipeline::run(input, sink.as_ref(), &options)?;
    print!("{}", summary.to_json());
    if summary.status == Status::Failed {
        let message = summary.error.as_ref().map_or("", |e| e.message.as_str());
        eprintln!("error: input rejected: {message}");
        return Ok(ExitCode::from(EXIT_INPUT_REJECTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// The sink of an `--out` argument: `s3://bucket/prefix/` (with a runtime and client) or a directory.
fn open_sink(
    out: &str,
    rt: Option<&tokio::runtime::Runtime>,
    client: Option<aws_sdk_s3::Client>,
) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match (S3Uri::parse(out), rt, client) {
        (Some(uri), Some(rt), Some(client)) => {
            Box::new(S3Sink::new(client, &uri.bucket, &uri.key, rt.handle().clone()))
        }
        (Some(_), _, _) => bail!("internal: no S3 client for {out}"),
        _ => Box::new(LocalDir::new(out).with_context(|| format!("cannot use output directory {out}"))?),
    })
}

/// A runtime and an S3 client when `out` is in S3.
fn s3_for(out: &str) -> anyhow::Result<(Option<tokio::runtime::Runtime>, Option<aws_sdk_s3::Client>)> {
    if S3Uri::parse(out).is_none() {
        return Ok((None, None));
    }
    let rt = runtime()?;
    let client = rt.block_on(s3::client_from_env());
    Ok((Some(rt), Some(client)))
}

/// The URI a source had when it was run: `s3://…` as given, a local path as `file://` + its absolute path
/// (the file itself may be gone).
fn source_uri(source: &str) -> anyhow::Result<String> {
    if S3Uri::parse(source).is_some() {
        return Ok(source.to_string());
    }
    let path = std::path::Path::new(source);
    let abs = match std::fs::canonicalize(path) {
        Ok(abs) => abs,
        Err(_) if path.is_absolute() => path.to_path_buf(),
        Err(_) => std::env::current_dir().context("cannot read the current directory")?.join(path),
    };
    Ok(format!("file://{}", abs.display()))
}

fn forget(args: ForgetArgs) -> anyhow::Result<()> {
    let uri = source_uri(&args.source)?;
    let (rt, client) = s3_for(&args.out)?;
    let sink = open_sink(&args.out, rt.as_ref(), client)?;
    let name = hourly_insights::output::output_name(&uri);
    if sink.get(&hourly_insights::output::publish::record_key(&name))?.is_none() {
        bail!("{uri} has no state under {} (was it run with this --out?)", args.out);
    }
    let settings = settings_of(&args.config)?;
    let published = pipeline::forget(sink.as_ref(), &uri, None, &Default::default(), settings)?;
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"forgotten": uri, "outputs": published.outputs}))?);
    Ok(())
}

fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let (rt, client) = s3_for(&args.out)?;
    let sink = open_sink(&args.out, rt.as_ref(), client)?;
    let settings = settings_of(&args.config)?;
    let (days, published) = hourly_insights::output::publish::rebuild(sink.as_ref(), &settings.tables)?;
    let data = hourly_insights::output::report::Published::new(sink.as_ref()).with_tables(&settings.tables);
    hourly_insights::output::report::publish(&data, &published.periods, &Default::default(), None)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"days": days, "tables_written": published.outputs.len(),
            "partials_read": published.partials_read}))?
    );
    Ok(())
}

fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let rt = runtime()?;
    let (handler, sqs) = rt.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let settings_uri = config.settings_uri.clone();
        let mut handler = handler_from_env(config, settings_uri.as_deref()).await?;
        handler.metrics_to_stderr = true;
        anyhow::Ok((Arc::new(handler), aws_sdk_sqs::Client::new(&shared)))
    })?;
    let report = rt.block_on(hourly_insights::lambda::replay::replay(
        &sqs,
        &args.queue_url,
        &handler,
        args.max,
        args.visibility_seconds,
    ))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.failed + report.unreadable == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn invoke(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.event).with_context(|| format!("cannot read event {}", args.event.display()))?;
    let event: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("event {} is not JSON", args.event.display()))?;
    let config = Config::from_env()?;
    let rt = runtime()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let request_id = format!("local-{nanos:x}");
    let span = tracing::info_span!("Lambda runtime invoke", requestId = %request_id);
    let settings_uri = args.config.config.clone().or(config.settings_uri.clone());
    let mut handler = rt.block_on(handler_from_env(config, settings_uri.as_deref()).instrument(span.clone()))?;
    handler.metrics_to_stderr = true;
    let handler = Arc::new(handler);
    let deadline = args.deadline_ms.map(|ms| std::time::SystemTime::now() + std::time::Duration::from_millis(ms));
    match rt.block_on(handler.handle_until(event, &request_id, deadline).instrument(span)) {
        Ok(response) => {
            println!("{}", serde_json::to_string_pretty(&response)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: the handler failed (Lambda would retry this event): {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Measures throughput on a generated file (or takes it as given) and prints the monthly cost table.
fn cost(args: CostArgs) -> anyhow::Result<()> {
    use hourly_insights::lambda::metrics::{cost_markdown, cost_rows, CostInputs};
    let throughput = match args.throughput_mb_s {
        Some(t) if t > 0.0 => t,
        Some(t) => bail!("--throughput-mb-s must be positive, got {t}"),
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("measure.csv");
            let opts = GenerateOptions {
                rows: args.measure_rows,
                seed: 1,
                hour_start: 1_795_352_400_000_000,
                dirty: 0.001,
                shape: Default::default(),
                settings: Settings::default_ref(),
            };
            generate(&opts, BufWriter::new(File::create(&path)?))?;
            let bytes = std::fs::metadata(&path)?.len() as f64;
            let sink = LocalDir::new(dir.path().join("out"))?;
            let started = std::time::Instant::now();
            // The stage mode of a Lambda of this memory size (inline up to 1769 MB), whatever this machine has.
            let options = pipeline::Options { memory_mb: Some(args.memory_mb), ..Default::default() };
            pipeline::run(input::open_local(&path)?, &sink, &options)?;
            let mb_s = bytes / 1e6 / started.elapsed().as_secs_f64();
            tracing::info!(mb = bytes / 1e6, mb_s, "measured throughput on a generated file");
            mb_s
        }
    };
    let inputs = CostInputs {
        throughput_mb_s: throughput,
        s3_stream_mb_s: args.s3_stream_mb_s,
        s3_streams: args.s3_streams.unwrap_or(hourly_insights::storage::s3::ReadOptions::from_env().streams),
        memory_mb: args.memory_mb,
        gb_second: args.gb_second,
        request: args.request,
        instance_per_hour: args.instance_per_hour,
        instance_name: args.instance_name,
    };
    print!("{}", cost_markdown(&inputs, &cost_rows(&inputs, &[10.0, 100.0, 1000.0])));
    Ok(())
}

fn generate_cmd(args: GenerateArgs) -> anyhow::Result<()> {
    let Some(hour_start) = parse::event_time_micros(format!("{}:00:00Z", args.hour).as_bytes()) else {
        bail!("--hour must look like 2026-11-22T13, got '{}'", args.hour);
    };
    if !(0.0..=1.0).contains(&args.dirty) {
        bail!("--dirty must be between 0 and 1, got {}", args.dirty);
    }
    let opts = GenerateOptions {
        rows: args.rows,
        seed: args.seed,
        hour_start,
        dirty: args.dirty,
        shape: args.shape,
        settings: settings_of(&args.config)?,
    };
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

/// Writes the reports of the published hours and days under `--out` and prints a digest.
fn report(args: ReportArgs) -> anyhow::Result<()> {
    use hourly_insights::aggregate::tables::Period;
    use hourly_insights::output::publish::PeriodRef;
    use hourly_insights::output::report::{self, Published};
    let options = report_options(args.report_base_url)?;
    let (rt, client) = s3_for(&args.out)?;
    let sink = open_sink(&args.out, rt.as_ref(), client)?;
    let all = report::all_periods(sink.as_ref())?;
    if all.is_empty() {
        bail!("nothing is published under {} (no day manifest in _state/): run a file into it first", args.out);
    }
    // The published period named by --hour or --day, with the form it must have.
    let only = |period: Period, text: &str, time: String, form: &str| -> anyhow::Result<Vec<PeriodRef>> {
        let what = if period == Period::Hour { "hour" } else { "day" };
        let start = parse::event_time_micros(time.as_bytes())
            .ok_or_else(|| anyhow!("--{what} must look like {form}, got '{text}'"))?;
        let found: Vec<PeriodRef> = all.iter().filter(|p| p.period == period && p.start == start).copied().collect();
        if found.is_empty() {
            bail!("{what} {text} is not published under {}", args.out);
        }
        Ok(found)
    };
    let wanted: Vec<PeriodRef> = match (&args.hour, &args.day) {
        (Some(hour), _) => only(Period::Hour, hour, format!("{hour}:00:00Z"), "2026-11-22T13")?,
        (None, Some(day)) => only(Period::Day, day, format!("{day}T00:00:00Z"), "2026-11-22")?,
        (None, None) => all.clone(),
    };
    let settings = settings_of(&args.config)?;
    let data = Published::new(sink.as_ref()).with_tables(&settings.tables);
    let digest_hour = wanted.iter().find(|p| args.hour.is_some() && p.period == Period::Hour).map(|p| p.start);
    let total = wanted.len();
    let started = std::time::Instant::now();
    let mut reports = 0;
    let mut digest = None;
    // In batches, so that a long history shows progress. Periods come in time order, so the last batch holding
    // hours gives latest.html and the digest their newest hour.
    for (i, batch) in wanted.chunks(48).enumerate() {
        let written = report::publish(&data, batch, &options, digest_hour)?;
        reports += written.reports.len();
        if written.digest.is_some() {
            digest = written.digest;
        }
        if total > 48 {
            tracing::info!(done = (i * 48 + batch.len()), total, "writing reports");
        }
    }
    let digest = match digest {
        Some(d) => d,
        None => {
            // A day alone: its digest.
            let p = wanted[0];
            let facts = report::model::facts(&data, p.period, p.start)?;
            report::digest::digest(&facts, &options.link(sink.as_ref(), &report::report_key(p.period, p.start)))
        }
    };
    tracing::info!(reports, ms = started.elapsed().as_millis() as u64, out = %args.out, "reports written");
    if args.json {
        println!("{}", serde_json::to_string_pretty(&digest)?);
    } else {
        print!("{}", digest.text);
    }
    Ok(())
}
