"""Driver of bench/run: generate inputs, check equality, time each engine, write docs/benchmarks.md."""
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

BIN = "target/release/hourly-insights"
ROWS_PER_MB = 9_100  # generated rows average ~110 bytes
sizes = [int(s) for s in sys.argv[1].split()]
runs = int(sys.argv[2])
data = "bench/data"
os.makedirs(data, exist_ok=True)


def timed(cmd, one_core):
    """Wall seconds and peak RSS (MB) of a command, via /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r") as t:
        prefix = ["taskset", "-c", "0"] if one_core else []
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + prefix + cmd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall, rss_kb = t.read().split()[-2:]
        return float(wall), int(rss_kb) / 1024


def engines(path, out):
    return {
        "hourly-insights": [BIN, "run", path, "--out", out],
        "DuckDB": [sys.executable, "bench/peers.py", "duckdb", path, out],
        "polars": [sys.executable, "bench/peers.py", "polars", path, out],
        "pandas": [sys.executable, "bench/peers.py", "pandas", path, out],
    }


rows = []
for size in sizes:
    path = f"{data}/orders-{size}mb.csv"
    if not os.path.exists(path):
        subprocess.run([BIN, "generate", "--rows", str(size * ROWS_PER_MB), "--dirty", "0", "--output", path],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mb = os.path.getsize(path) / 1e6
    work = tempfile.mkdtemp()
    outs = {name: f"{work}/{name}" for name in engines(path, "").keys()}
    for name, out in outs.items():
        subprocess.run(engines(path, out)[name], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if name != "hourly-insights":
            check = [sys.executable, "bench/peers.py", "compare", outs["hourly-insights"], out]
            if subprocess.run(check).returncode != 0:
                rows.append((size, mb, name, "tables differ", None, None, None))
                continue
        for one_core in (False, True):
            samples = []
            for _ in range(runs):
                shutil.rmtree(out, ignore_errors=True)
                samples.append(timed(engines(path, out)[name], one_core))
            wall = statistics.median(s[0] for s in samples)
            rss = max(s[1] for s in samples)
            cores = "1 core" if one_core else f"{os.cpu_count()} cores"
            rows.append((size, mb, name, cores, wall, mb / wall, rss))
            print(f"{size} MB {name} {cores}: {wall:.2f} s, {mb / wall:.0f} MB/s, {rss:.0f} MB", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)

ours_wall = {(r[0], r[3]): r[4] for r in rows if r[2] == "hourly-insights"}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
lines = [
    "# Benchmarks",
    "",
    f"Machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}. Written by `bench/run` "
    f"(median of {runs} runs; peak RSS is the max). Inputs: `hourly-insights generate --rows N --dirty 0`. "
    "Every peer's tables were checked equal to ours before timing (`bench/peers.py compare`).",
    "",
    "| input | engine | cores | wall | MB/s | peak RSS | peer time / our time |",
    "|---:|---|---|---:|---:|---:|---:|",
]
for size, mb, name, cores, wall, mbs, rss in rows:
    if wall is None:
        lines.append(f"| {mb:.0f} MB | {name} | {cores} | | | | |")
        continue
    ratio = wall / ours_wall[(size, cores)]
    lines.append(f"| {mb:.0f} MB | {name} | {cores} | {wall:.2f} s | {mbs:.0f} | {rss:.0f} MB | {ratio:.2f} |")
os.makedirs("docs", exist_ok=True)
open("docs/benchmarks.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
