"""Peer implementations of the hourly-insights job, and the equality check against our output.

Usage:
  python3 bench/peers.py duckdb <input.csv> <out-dir>     compute the five tables with DuckDB, write Parquet
  python3 bench/peers.py compare <ours-dir> <peer-dir>    exit 1 unless every table has the same rows

The peers run on generated files without defects (`--dirty 0`), so they implement the normalisation of the
contract (trimming, case rules, mixed timestamp spellings, exact decimals) but not the reject rules.
Money stays exact: DECIMAL arithmetic, average order value rounded half away from zero in integer cents.
"""
import sys

import duckdb

TABLES = {
    "hourly_kpis": ([], "count(DISTINCT order_id) AS orders, count(*) AS order_lines, sum(quantity) AS units, "
                        "sum(revenue) AS revenue, count(DISTINCT customer_id) AS customers, "
                        "(CAST(sum(revenue) * 100 AS HUGEINT) * 2 + count(DISTINCT order_id)) "
                        "// (2 * count(DISTINCT order_id)) AS avg_order_value_cents"),
    "channel_performance": (["channel", "campaign"], "count(DISTINCT order_id) AS orders, count(*) AS order_lines, "
                            "sum(quantity) AS units, sum(revenue) AS revenue, count(DISTINCT customer_id) AS customers"),
    "category_sales": (["category"], "count(DISTINCT order_id) AS orders, sum(quantity) AS units, "
                       "sum(revenue) AS revenue, count(DISTINCT sku) AS products"),
    "geo_device": (["country", "device"], "count(DISTINCT order_id) AS orders, count(DISTINCT customer_id) AS customers, "
                   "sum(revenue) AS revenue"),
    "top_products": (["sku"], "count(DISTINCT order_id) AS orders, sum(quantity) AS units, sum(revenue) AS revenue"),
}


def dim(column, upper=False):
    case = "upper" if upper else "lower"
    return f"coalesce(nullif({case}(trim({column})), ''), 'unknown') AS {column}"


def run_duckdb(path, out):
    import os
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
        CREATE TEMP TABLE r AS SELECT
          date_trunc('hour', CAST(trim(event_time) AS TIMESTAMPTZ)) AS hour_start,
          trim(order_id) AS order_id,
          nullif(trim(customer_id), '') AS customer_id,
          trim(sku) AS sku,
          {dim('category')}, {dim('channel')}, {dim('campaign')}, {dim('country', True)}, {dim('device')},
          CAST(trim(quantity) AS BIGINT) AS quantity,
          CAST(trim(quantity) AS BIGINT) * CAST(trim(unit_price) AS DECIMAL(18, 2)) AS revenue
        FROM read_csv('{path}', all_varchar = true, header = true)""")
    for table, (keys, metrics) in TABLES.items():
        group = ", ".join(["hour_start"] + keys)
        sql = f"SELECT {group}, {metrics} FROM r GROUP BY ALL"
        if table == "top_products":
            sql = (f"SELECT * FROM ({sql}) QUALIFY row_number() OVER "
                   f"(PARTITION BY hour_start ORDER BY revenue DESC, sku) <= 10")
        os.makedirs(f"{out}/{table}", exist_ok=True)
        con.execute(f"COPY ({sql} ORDER BY {group}) TO '{out}/{table}/data.parquet' (FORMAT parquet)")


def canonical(con, table, path, ours):
    keys, _ = TABLES[table]
    cols = ["epoch_us(hour_start)"] + keys
    if table == "top_products":
        pass
    if table == "hourly_kpis":
        aov = ("CAST(avg_order_value * 100 AS HUGEINT)" if ours else "avg_order_value_cents")
        metrics = f"orders, order_lines, units, CAST(revenue * 100 AS HUGEINT), customers, {aov}"
    else:
        metrics = ", ".join(
            f"CAST(revenue * 100 AS HUGEINT)" if m.strip().endswith(" revenue") else m.split(" AS ")[-1]
            for m in _split(TABLES[table][1]))
    return con.execute(f"SELECT {', '.join(cols)}, {metrics} FROM read_parquet('{path}') ORDER BY ALL").fetchall()


def _split(metrics):
    depth, part, parts = 0, "", []
    for ch in metrics:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(part.strip())
            part = ""
        else:
            part += ch
    parts.append(part.strip())
    return parts


def compare(ours, peer):
    con = duckdb.connect()
    ok = True
    for table in TABLES:
        a = canonical(con, table, f"{ours}/{table}/*/*/*.parquet", True)
        b = canonical(con, table, f"{peer}/{table}/*.parquet", False)
        same = a == b
        ok &= same
        print(f"{'same' if same else 'DIFFERENT'}  {table}: {len(a)} rows ours, {len(b)} rows peer")
        if not same:
            for x, y in zip(a, b):
                if x != y:
                    print(f"    first difference: ours {x} vs peer {y}")
                    break
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "duckdb":
        run_duckdb(sys.argv[2], sys.argv[3])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
