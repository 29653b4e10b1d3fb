"""BI readiness: read a whole output prefix the way a BI tool does (DuckDB, Hive partitioning) and check it.

Usage: python3 tests/bi/duckdb_check.py <output-dir>

Checks, for the output of one or more runs in <output-dir>:
- every table reads with hive_partitioning and has the documented column types (dt/hour partition columns
  included);
- the totals over hourly_kpis equal the sum of the succeeded summaries' totals (orders, units, exact revenue);
- the example queries of README.md's "For BI teams" section run (they are extracted from the README, so the
  docs cannot rot).
Prints one line per check; exits non-zero on the first failure.
"""
import decimal
import glob
import json
import re
import sys

import duckdb

out = sys.argv[1]
con = duckdb.connect()
TYPES = {
    "hourly_kpis": {"hour_start": "TIMESTAMP WITH TIME ZONE", "orders": "BIGINT", "revenue": "DECIMAL(18,2)",
                    "avg_order_value": "DECIMAL(18,2)", "dt": "DATE", "hour": "BIGINT"},
    "channel_performance": {"channel": "VARCHAR", "campaign": "VARCHAR", "revenue": "DECIMAL(18,2)"},
    "category_sales": {"category": "VARCHAR", "products": "BIGINT"},
    "geo_device": {"country": "VARCHAR", "device": "VARCHAR", "customers": "BIGINT"},
    "top_products": {"rank": "BIGINT", "sku": "VARCHAR", "units": "BIGINT"},
}
for table, want in TYPES.items():
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{out}/{table}/*/*/*.parquet', hive_partitioning = true)")
    got = {name: typ for name, typ, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    for column, typ in want.items():
        assert got.get(column) == typ, f"{table}.{column}: {got.get(column)} != {typ}"
    print(f"ok   {table}: {con.execute(f'SELECT count(*) FROM {table}').fetchone()[0]} rows, types as documented")

summaries = [json.loads(line) for path in glob.glob(f"{out}/summaries/*.json") for line in open(path)]
done = [s for s in summaries if s["status"] == "succeeded"]
assert done, "no succeeded summary"
want = (sum(s["totals"]["orders"] for s in done), sum(s["totals"]["units"] for s in done),
        sum(decimal.Decimal(s["totals"]["revenue"]) for s in done))
got = con.execute("SELECT sum(orders), sum(units), sum(revenue) FROM hourly_kpis").fetchone()
assert tuple(got) == want, f"table totals {got} != summary totals {want}"
print(f"ok   totals over hourly_kpis equal {len(done)} summaries: orders {want[0]}, units {want[1]}, revenue {want[2]}")

readme = open("README.md").read()
section = readme.split("## For BI teams", 1)[1].split("\n## ", 1)[0]
queries = re.findall(r"```sql duckdb\n(.*?)```", section, re.S)
assert queries, "README has DuckDB examples"
for sql in queries:
    sql = sql.replace("'out/", f"'{out}/")
    rows = con.execute(sql).fetchall()
    print(f"ok   README query returns {len(rows)} rows: {sql.strip().splitlines()[0][:70]}")
