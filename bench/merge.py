"""bench/merge: what merging hours and days costs, written into docs/benchmarks.md between the merge markers.

  python3 bench/merge.py            (about 2 minutes here; needs target/release/hourly-insights)

Measures, each run on one core (`taskset -c 0`, like a 1769 MB Lambda), from the summaries' own
`duration_ms` and `requests` (the storage requests each run made):
- state bytes per GB of input (the partial states a run stores), for the generator's shape;
- an hour fed by 1, 2 and 10 files (the same 200 MB of rows split into that many exports, run one after the
  other into one output): time per run against the single file, and the storage requests per run;
- a day of hourly files (24 files of 10 MB, one per hour, run in order into one output): the time and the
  requests of the first and the last run of the day (the last one merges the day's 24 hours), and the
  monthly Lambda cost of that, S3 requests included.
"""
import json
import os
import shutil
import statistics
import subprocess
import tempfile

BIN = os.path.abspath("target/release/hourly-insights")
DOC = "docs/benchmarks.md"
BEGIN, END = "<!-- merge:begin (bench/merge.py writes this part) -->", "<!-- merge:end -->"
ROWS_PER_MB = 9_100
GB_SECOND, LAMBDA_REQUEST, MEMORY_GB = 0.0000133334, 0.0000002, 1769 / 1024
S3_PUT, S3_GET = 0.005 / 1000, 0.0004 / 1000  # PUT/LIST class and GET/HEAD class, per request (us-east-1)


def generate(path, mb, hour, seed):
    subprocess.run([BIN, "generate", "--rows", str(int(mb * ROWS_PER_MB)), "--seed", str(seed), "--hour", hour,
                    "--dirty", "0", "--output", path], check=True, capture_output=True)


def run(path, out):
    done = subprocess.run(["taskset", "-c", "0", BIN, "run", path, "--out", out], check=True, capture_output=True,
                          env={**os.environ, "RUST_LOG": "warn"})
    return json.loads(done.stdout)


def state_bytes(out):
    total = 0
    for root, _, files in os.walk(os.path.join(out, "_state")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".partial"))
    return total


def cost_of(s):
    r = s["requests"]
    return (s["duration_ms"] / 1000 * MEMORY_GB * GB_SECOND + LAMBDA_REQUEST
            + (r["put"] + r["list"]) * S3_PUT + (r["get"] + r["head"]) * S3_GET)


def requests(s):
    r = s["requests"]
    return f"{r['get']} GET, {r['head']} HEAD, {r['put']} PUT"


work = tempfile.mkdtemp(prefix="bench-merge-")
lines = []
try:
    # State size per GB of input.
    path = f"{work}/one-200.csv"
    generate(path, 200, "2026-11-22T13", 1)
    out = f"{work}/state"
    s = run(path, out)
    per_gb = state_bytes(out) / (os.path.getsize(path) / 1e9)
    lines.append(f"State bytes per GB of input (generator shape, numbered ids, 200 MB input): "
                 f"**{per_gb / 1e6:.0f} MB per GB** ({state_bytes(out) / 1e6:.1f} MB for "
                 f"{os.path.getsize(path) / 1e6:.0f} MB; 16 bytes per distinct order and customer id and "
                 f"hour, plus the groups' bitmaps).")
    lines.append("")

    # An hour fed by 1, 2 and 10 files.
    lines.append("An hour fed by several files: the same 200 MB of rows for 13:00 (with late rows of 12:xx) split "
                 "into N exports, run one after the other into one output. *ms per MB* is the run's time over "
                 "its input; the last run merges every file's state of the hour and of the day.")
    lines.append("")
    lines.append("| files | MB each | first run | last run | ms per MB (first, last) | partials read by the last | "
                 "requests of the last run |")
    lines.append("|---:|---:|---:|---:|---:|---:|---|")
    for n in (1, 2, 10):
        out = f"{work}/hour-{n}"
        summaries = []
        for i in range(n):
            path = f"{work}/hour-{n}-{i}.csv"
            generate(path, 200 / n, "2026-11-22T13", 100 + i)
            summaries.append(run(path, out))
            os.remove(path)
        mb = 200 / n
        first, last = summaries[0], summaries[-1]
        lines.append(f"| {n} | {mb:.0f} | {first['duration_ms']} ms | {last['duration_ms']} ms | "
                     f"{first['duration_ms'] / mb:.1f}, {last['duration_ms'] / mb:.1f} | {last['partials_read']} | "
                     f"{requests(last)} |")
    lines.append("")

    # A day of hourly files.
    out = f"{work}/day"
    day = []
    for h in range(24):
        path = f"{work}/day-{h:02}.csv"
        generate(path, 10, f"2026-11-22T{h:02}", 200 + h)
        day.append(run(path, out))
        os.remove(path)
    month = sum(cost_of(s) for s in day) * 730 / 24
    lambda_only = sum(s["duration_ms"] / 1000 * MEMORY_GB * GB_SECOND + LAMBDA_REQUEST for s in day) * 730 / 24
    lines.append("A day of hourly files (24 exports of 10 MB, one per hour, each with late rows of the hour "
                 "before, run in order into one output): each run republishes its hours and the whole day from "
                 "the day's states.")
    lines.append("")
    lines.append("| run | time | partials read | requests |")
    lines.append("|---|---:|---:|---|")
    for label, s in [("first of the day (00:00)", day[0]), ("middle (12:00)", day[12]), ("last (23:00)", day[-1])]:
        lines.append(f"| {label} | {s['duration_ms']} ms | {s['partials_read']} | {requests(s)} |")
    lines.append(f"| mean of 24 | {statistics.mean(s['duration_ms'] for s in day):.0f} ms | "
                 f"{statistics.mean(s['partials_read'] for s in day):.1f} | |")
    lines.append("")
    lines.append(f"Monthly cost of one 10 MB file per hour with hours and days merged (730 runs, Lambda arm64 at "
                 f"1769 MB, times measured here on one core, S3 requests at $0.005/1000 PUT and $0.0004/1000 "
                 f"GET/HEAD): **${month:.2f} a month**, of which Lambda ${lambda_only:.2f} and S3 requests "
                 f"${month - lambda_only:.2f}.")
finally:
    shutil.rmtree(work, ignore_errors=True)

text = "\n".join(lines)
print(text)
doc = open(DOC).read()
if BEGIN in doc and END in doc:
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc = head + BEGIN + "\n" + text + "\n" + END + tail
else:
    doc += f"\n## Merging hours and days (issue 21)\n\n{BEGIN}\n{text}\n{END}\n"
open(DOC, "w").write(doc)
