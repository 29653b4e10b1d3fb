"""Driver of bench/run: generate inputs, check every peer's tables equal ours, time each engine on 2 cores
and on one (`taskset -c 0`), run the memory check and the cold-start probe, and write the results into
docs/benchmarks.md (between the results markers; the hand-written analysis around them is kept).

Settings (environment): BENCH_SIZES (MB, default "100 1000"), BENCH_RUNS (default 3), BENCH_MEMORY_MB (the
ours-only memory check, default 4000; 0 skips it), BENCH_PANDAS_MAX_MB (pandas is slow and memory-hungry,
so it runs only up to this size; default 100), BENCH_ARM64_ZIP (a Lambda zip whose size to report),
BENCH_S3 (1, the default, also times the largest input read from a loopback S3 server; 0 skips it),
BENCH_SHAPES (the `generate --shape` input shapes to time, default "numbered uuid spread"; the memory and S3
checks use the first), BENCH_CONFIG (1, the default, also times bench/configs/wide.toml, 8 dimensions and 8
tables, against the default config on the same file, one core; 0 skips it).
"""
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

BIN = "target/release/hourly-insights"
# Generated rows per MB of each shape (rows average ~110 bytes; the uuid shape's ~158: longer ids, a note).
ROWS_PER_MB = {"numbered": 9_100, "uuid": 6_300, "spread": 9_000}
GB_SECOND = 0.0000133334  # Lambda arm64 price per GB-second (us-east-1), as `hourly-insights cost`
LAMBDA_MB = 1769  # the memory size that has one full vCPU
DATA = "bench/data"
DOC = "docs/benchmarks.md"
BEGIN, END = "<!-- results:begin (bench/run writes this part) -->", "<!-- results:end -->"

sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100 1000").split()]
runs = int(os.environ.get("BENCH_RUNS", "3"))
memory_mb = int(os.environ.get("BENCH_MEMORY_MB", "4000"))
pandas_max = int(os.environ.get("BENCH_PANDAS_MAX_MB", "100"))
s3_check = os.environ.get("BENCH_S3", "1") != "0"
shapes = os.environ.get("BENCH_SHAPES", "numbered uuid spread").split()
S3_SERVER = "target/release/examples/s3_server"
cores = os.cpu_count()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def input_file(size, shape="numbered"):
    path = f"{DATA}/orders-{size}mb.csv" if shape == "numbered" else f"{DATA}/orders-{shape}-{size}mb.csv"
    if not os.path.exists(path):
        log(f"generating {path}")
        os.makedirs(DATA, exist_ok=True)
        subprocess.run([BIN, "generate", "--rows", str(size * ROWS_PER_MB[shape]), "--dirty", "0", "--shape", shape,
                        "--output", path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path, os.path.getsize(path) / 1e6


def command(engine, path, out):
    if engine == "hourly-insights":
        return [BIN, "run", path, "--out", out]
    return [sys.executable, "bench/peers.py", engine, path, out]


def timed(cmd, one_core, env=None):
    """Wall seconds and peak RSS (MB) of a command, via /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r") as t:
        prefix = ["taskset", "-c", "0"] if one_core else []
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + prefix + cmd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall, rss_kb = t.read().split()[-2:]
        return float(wall), int(rss_kb) / 1024


def cpu_timed(cmd, env=None):
    """Wall seconds and CPU seconds (user + system, all threads) of a command on core 0."""
    with tempfile.NamedTemporaryFile("r") as t:
        subprocess.run(["/usr/bin/time", "-f", "%e %U %S", "-o", t.name, "taskset", "-c", "0"] + cmd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall, user, system = t.read().split()[-3:]
        return float(wall), float(user) + float(system)


def process_cpu_seconds(pid):
    """CPU seconds a running process has used so far (utime + stime from /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def s3_input_check(path, mb):
    """Our run reading the input from a loopback S3 server (examples/s3_server, s3s-fs) through the real
    aws-sdk-s3 client, against the same run on the local file, both on core 0; the server runs on core 1.
    Returns rows of (source, wall, our CPU, server CPU or None)."""
    work = tempfile.mkdtemp(dir=DATA)  # same file system as the input: the object is a hard link
    os.makedirs(f"{work}/root/bench-in")
    os.link(path, f"{work}/root/bench-in/input.csv")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server_cmd = (["taskset", "-c", "1"] if cores > 1 else []) + [S3_SERVER, f"{work}/root", f"127.0.0.1:{port}"]
    server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()  # "S3 server listening on ..."
        env = dict(os.environ, AWS_ACCESS_KEY_ID="hourly-insights-test",
                   AWS_SECRET_ACCESS_KEY="hourly-insights-test-secret", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        result = []
        for source, uri in (("local file", path), ("S3, loopback", "s3://bench-in/input.csv")):
            samples = []
            for _ in range(runs):
                shutil.rmtree(f"{work}/out", ignore_errors=True)
                before = process_cpu_seconds(server.pid)
                wall, cpu = cpu_timed([BIN, "run", uri, "--out", f"{work}/out"], env)
                served = process_cpu_seconds(server.pid) - before
                samples.append((wall, cpu, served))
            wall, cpu, served = (statistics.median(s[i] for s in samples) for i in range(3))
            result.append((source, wall, cpu, served if uri.startswith("s3://") else None))
            log(f"S3 check {mb:.0f} MB {source}: {wall:.2f} s wall, {cpu:.2f} s CPU")
        return result
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)


def key_state_mb(path, out):
    """Our distinct-key state at the end of a run (interned ids + per-group bitmaps), from the debug log."""
    env = dict(os.environ, RUST_LOG="hourly_insights=debug", NO_COLOR="1")
    err = subprocess.run([BIN, "run", path, "--out", out], env=env, check=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True).stderr
    found = dict(re.findall(r"(\w+_mb)=([0-9.]+)", err.split("distinct-key state", 1)[-1].splitlines()[0]))
    return sum(float(found.get(k, 0)) for k in ("orders_mb", "customers_mb", "groups_mb"))


rows = []  # (shape, size, mb, engine, cores label, wall, rss) ; wall None = tables differ
for shape in shapes:
    for size in sizes:
        path, mb = input_file(size, shape)
        work = tempfile.mkdtemp()
        ours_out = f"{work}/hourly-insights"
        subprocess.run(command("hourly-insights", path, ours_out), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        engines = ["hourly-insights", "duckdb", "polars"] + (["pandas"] if size <= pandas_max else [])
        for engine in engines:
            out = f"{work}/{engine}"
            if engine != "hourly-insights":
                log(f"{shape} {size} MB {engine}: checking its tables equal ours")
                subprocess.run(command(engine, path, out), check=True, stdout=subprocess.DEVNULL)
                check = [sys.executable, "bench/peers.py", "compare", ours_out, out]
                if subprocess.run(check, stdout=sys.stderr).returncode != 0:
                    rows.append((shape, size, mb, engine, "", None, None))
                    continue
            for one_core in (False, True):
                samples = []
                for _ in range(runs):
                    shutil.rmtree(out, ignore_errors=True)
                    samples.append(timed(command(engine, path, out), one_core))
                wall = statistics.median(s[0] for s in samples)
                rss = max(s[1] for s in samples)
                label = "1" if one_core else str(cores)
                rows.append((shape, size, mb, engine, label, wall, rss))
                log(f"{shape} {size} MB {engine} {label} core(s): {wall:.2f} s, {mb / wall:.0f} MB/s, {rss:.0f} MB")
        shutil.rmtree(work, ignore_errors=True)

memory = []  # (mb, cores label, wall, rss, state)
memory_sizes = sorted({s for s in sizes if s >= 1000} | ({memory_mb} if memory_mb else set()))
for size in memory_sizes:
    path, mb = input_file(size, shapes[0])
    work = tempfile.mkdtemp()
    state = key_state_mb(path, f"{work}/state")
    for one_core in (False, True):
        shutil.rmtree(f"{work}/out", ignore_errors=True)
        wall, rss = timed(command("hourly-insights", path, f"{work}/out"), one_core)
        memory.append((mb, "1" if one_core else str(cores), wall, rss, state))
        log(f"memory {mb:.0f} MB: {wall:.2f} s, peak {rss:.0f} MB, key state {state:.0f} MB")
    shutil.rmtree(work, ignore_errors=True)

# A config's cost: the default tables and bench/configs/wide.toml (8 dimensions, 8 tables) on the same rows
# (the numbered shape with a store and a warehouse column), one core, CPU time.
config_rows = []  # (mb, label, cpu seconds)
if os.environ.get("BENCH_CONFIG", "1") != "0" and sizes:
    size = max(sizes)
    path = f"{DATA}/orders-wide-{size}mb.csv"
    if not os.path.exists(path):
        log(f"generating {path}")
        subprocess.run([BIN, "generate", "--rows", str(size * ROWS_PER_MB["numbered"]), "--dirty", "0", "--config",
                        "bench/configs/wide.toml", "--output", path], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    mb = os.path.getsize(path) / 1e6
    for label, extra in [("default config", []), ("wide: 8 dimensions, 8 tables", ["--config", "bench/configs/wide.toml"])]:
        cpus = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as o:
                cpus.append(cpu_timed([BIN, "run", path, "--out", o] + extra)[1])
        config_rows.append((mb, label, statistics.median(cpus)))
        log(f"config {label}: {config_rows[-1][2]:.2f} s CPU")

s3_rows = []
if s3_check and sizes:
    path, s3_mb = input_file(max(sizes), shapes[0])
    s3_rows = s3_input_check(path, s3_mb)

cold = json.loads(subprocess.run([sys.executable, "bench/coldstart.py", BIN, "20"], check=True,
                                 capture_output=True, text=True).stdout)

# --- the report ---------------------------------------------------------------------------------------
ours = {(r[0], r[1], r[4]): r[5] for r in rows if r[3] == "hourly-insights"}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.machine())


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


out = [
    f"Machine: {cores} cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
    f"{platform.system()} {platform.release()}. Peers: DuckDB {version('duckdb')}, polars {version('polars')}, "
    f"pandas {version('pandas')} (Python {platform.python_version()}). Median of {runs} runs; peak RSS is the "
    f"max. Inputs: `hourly-insights generate --rows N --dirty 0 --shape S` (shapes: README, Commands). Every "
    "peer's tables were checked equal to ours before it was timed (`bench/peers.py compare`). 1 core = "
    "`taskset -c 0`, like a 1769 MB Lambda.",
    "",
    "| shape | input | engine | cores | wall | MB/s | peak RSS | peer time / our time |",
    "|---|---:|---|---:|---:|---:|---:|---:|",
]
for shape, size, mb, engine, label, wall, rss in rows:
    if wall is None:
        out.append(f"| {shape} | {mb:.0f} MB | {engine} | | tables differ: not timed | | | |")
        continue
    ratio = wall / ours[(shape, size, label)]
    out.append(f"| {shape} | {mb:.0f} MB | {engine} | {label} | {wall:.2f} s | {mb / wall:.0f} | {rss:.0f} MB | "
               f"{ratio:.2f} |")

if memory:
    out += ["", "Memory (ours): peak RSS against the distinct-key state it holds at the end (interned order and "
            "customer ids plus per-group bitmaps); the difference is what the pipeline itself needs.", "",
            "| input | cores | wall | MB/s | peak RSS | distinct-key state | RSS - state |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for mb, label, wall, rss, state in memory:
        out.append(f"| {mb:.0f} MB | {label} | {wall:.2f} s | {mb / wall:.0f} | {rss:.0f} MB | {state:.0f} MB | "
                   f"{rss - state:.0f} MB |")

if s3_rows:
    local_cpu = s3_rows[0][2]
    out += ["", f"S3 input ({s3_mb:.0f} MB, one core): the same run reading the object from a loopback S3 server "
            "(`examples/s3_server`, s3s-fs, on the other core) through aws-sdk-s3, against the local file. Our CPU "
            "time is what a Lambda pays for; the wall time here is bound by the test server when it needs more "
            "CPU than we do.", "",
            "| source | wall | our CPU time | vs local file | server CPU time |", "|---|---:|---:|---:|---:|"]
    for source, wall, cpu, served in s3_rows:
        server_cell = f"{served:.2f} s" if served is not None else ""
        out.append(f"| {source} | {wall:.2f} s | {cpu:.2f} s | {cpu / local_cpu:.2f} | {server_cell} |")

if config_rows:
    base = config_rows[0][2]
    out += ["", f"Config cost ({config_rows[0][0]:.0f} MB, the numbered shape with two more columns, one core, CPU "
            "time): the default tables against `bench/configs/wide.toml` on the same file.", "",
            "| config | CPU time | MB/s | vs default |", "|---|---:|---:|---:|"]
    for mb, label, cpu in config_rows:
        out.append(f"| {label} | {cpu:.2f} s | {mb / cpu:.0f} | {cpu / base:.2f} |")

one_core = [(r[2], r[5]) for r in rows if r[3] == "hourly-insights" and r[4] == "1" and r[0] == shapes[0]]
if one_core:
    mb, wall = max(one_core)
    seconds_per_gb = wall / mb * 1000
    per_gb = seconds_per_gb * LAMBDA_MB / 1024 * GB_SECOND
    out += ["", f"Cost per GB processed on Lambda (arm64, {LAMBDA_MB} MB, ${GB_SECOND:.10f}/GB-s), from the one-core "
            f"throughput on {mb:.0f} MB ({mb / wall:.0f} MB/s): {seconds_per_gb:.1f} s per GB, "
            f"**${per_gb:.5f} per GB** (plus $0.0000002 per request)."]

size_note = f"Cold start (process start to its first request for an event, `bench/coldstart.py`, x86_64 " \
            f"release binary): median {cold['median_ms']} ms, max {cold['max_ms']} ms over {cold['runs']} runs. " \
            f"Release binary (not stripped): {os.path.getsize(BIN) / 1e6:.1f} MB."
zip_path = os.environ.get("BENCH_ARM64_ZIP")
if zip_path and os.path.exists(zip_path):
    size_note += f" arm64 Lambda zip `{zip_path}`: {os.path.getsize(zip_path) / 1e6:.1f} MB."
out += ["", size_note]

doc = open(DOC).read() if os.path.exists(DOC) else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
if BEGIN not in doc:
    doc = f"# Benchmarks\n\n{BEGIN}\n{END}\n"
head, rest = doc.split(BEGIN, 1)
tail = rest.split(END, 1)[1]
open(DOC, "w").write(head + BEGIN + "\n" + "\n".join(out) + "\n" + END + tail)
print("\n".join(out))
