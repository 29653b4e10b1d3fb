"""BI readiness: read a whole output prefix the way a BI tool does (DuckDB, Hive partitioning) and check it.

Usage: python3 tests/bi/duckdb_check.py <output-dir>

Checks, for the output of one or more runs in <output-dir>:
- every table reads with hive_partitioning and has the documented column types (dt/hour partition columns
  included);
- every hour and every day has exactly one row set (one hourly_kpis row per hour, one daily_kpis row per day);
- units and exact revenue over hourly_kpis, and over daily_kpis, equal the sum of the succeeded summaries'
  totals; distinct orders never exceed the summaries' (an order in two files counts once in the tables);
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
    "daily_kpis": {"day": "DATE", "orders": "BIGINT", "customers": "BIGINT", "revenue": "DECIMAL(18,2)", "dt": "DATE"},
    "daily_channel_performance": {"day": "DATE", "channel": "VARCHAR", "revenue": "DECIMAL(18,2)"},
    "daily_category_sales": {"day": "DATE", "category": "VARCHAR", "products": "BIGINT"},
    "daily_geo_device": {"day": "DATE", "country": "VARCHAR", "customers": "BIGINT"},
    "daily_top_products": {"day": "DATE", "rank": "BIGINT", "sku": "VARCHAR"},
}
for table, want in TYPES.items():
    files = "*/*.parquet" if table.startswith("daily_") else "*/*/*.parquet"
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{out}/{table}/{files}', hive_partitioning = true)")
    got = {name: typ for name, typ, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    for column, typ in want.items():
        assert got.get(column) == typ, f"{table}.{column}: {got.get(column)} != {typ}"
    print(f"ok   {table}: {con.execute(f'SELECT count(*) FROM {table}').fetchone()[0]} rows, types as documented")

summaries = [json.loads(line) for path in glob.glob(f"{out}/summaries/*.json") for line in open(path)]
done = [s for s in summaries if s["status"] == "succeeded"]
assert done, "no succeeded summary"
for table, period in [("hourly_kpis", "hour_start"), ("daily_kpis", "day")]:
    dup = con.execute(f"SELECT {period}, count(*) FROM {table} GROUP BY 1 HAVING count(*) > 1").fetchall()
    assert not dup, f"{table}: more than one row set for {dup}"
    print(f"ok   {table}: one row per {period}")
orders = sum(s["totals"]["orders"] for s in done)
want = (sum(s["totals"]["units"] for s in done), sum(decimal.Decimal(s["totals"]["revenue"]) for s in done))
for table in ["hourly_kpis", "daily_kpis"]:
    got = con.execute(f"SELECT sum(orders), sum(units), sum(revenue) FROM {table}").fetchone()
    assert tuple(got[1:]) == want, f"{table} totals {got[1:]} != summary totals {want}"
    assert got[0] <= orders, f"{table}: {got[0]} distinct orders, more than the summaries' {orders}"
    print(f"ok   {table}: units {want[0]} and revenue {want[1]} equal {len(done)} summaries'; orders {got[0]} <= {orders}")
hourly, daily = (con.execute(f"SELECT sum(customers) FROM {t}").fetchone()[0] for t in ["hourly_kpis", "daily_kpis"])
assert daily <= hourly, f"daily customers {daily} > the sum of hourly customers {hourly}"
print(f"ok   distinct customers per day ({daily}) are at most the sum over hours ({hourly})")

readme = open("README.md").read()
section = readme.split("## For BI teams", 1)[1].split("\n## ", 1)[0]
queries = re.findall(r"```sql duckdb\n(.*?)```", section, re.S)
assert queries, "README has DuckDB examples"
for sql in queries:
    sql = sql.replace("'out/", f"'{out}/")
    rows = con.execute(sql).fetchall()
    print(f"ok   README query returns {len(rows)} rows: {sql.strip().splitlines()[0][:70]}")
