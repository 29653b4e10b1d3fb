"""Peer implementations of the hourly-insights job, and the equality check against our output.

Usage:
  python3 bench/peers.py duckdb|polars|pandas <input.csv> <out-dir>   compute the five tables, write Parquet
  python3 bench/peers.py compare <ours-dir> <peer-dir>                 exit 1 unless every table has the same rows

Every peer writes `<out-dir>/<table>/data.parquet` with the columns of TABLES: `hour_start` (timestamp, us,
UTC), the group keys (strings), then the metrics (int64; `revenue` decimal(38,2)). Rows are sorted by
`hour_start` and the keys; `top_products` holds no `rank` column (its rows are sorted by sku) and
`hourly_kpis` holds `avg_order_value_cents` (int64) in place of `avg_order_value`.

The peers run on generated files without defects (`--dirty 0`), so they implement the normalisation of the
contract but not the reject rules:
- every field is trimmed; all columns are read as strings, an empty field is empty (never "NA"/NaN);
- `event_time` is `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]` (no offset: UTC). Its UTC hour depends
  only on the date, hour and minute (offsets are whole minutes), so polars and pandas parse the first 16
  characters and subtract the offset; DuckDB casts the whole value to TIMESTAMPTZ in a UTC session;
- category, channel, campaign and device are lowercased, country uppercased, empty -> 'unknown'; sku and
  order_id are kept as they are; an empty customer_id is a guest, not counted in `customers`;
- money is exact: unit_price in cents (DuckDB DECIMAL(18,2), polars Decimal(18,2), pandas int64 cents), revenue
  `quantity * unit_price` summed exactly, average order value `revenue / orders` rounded half away from zero
  in integer cents. Digits beyond cents are outside the contract (ours rejects `19.999`; `19.990` is fine):
  DuckDB would round them, polars and pandas drop them;
- `top_products` keeps the 10 skus of each hour with the most revenue, ties by sku ascending.
"""
import os
import sys

# table -> (group keys after hour_start, metrics), in column order
TABLES = {
    "hourly_kpis": ([], ["orders", "order_lines", "units", "revenue", "customers", "avg_order_value_cents"]),
    "channel_performance": (["channel", "campaign"], ["orders", "order_lines", "units", "revenue", "customers"]),
    "category_sales": (["category"], ["orders", "units", "revenue", "products"]),
    "geo_device": (["country", "device"], ["orders", "customers", "revenue"]),
    "top_products": (["sku"], ["orders", "units", "revenue"]),
}
TOP_N = 10
DIMENSIONS = {"category": "lower", "channel": "lower", "campaign": "lower", "country": "upper", "device": "lower"}
OFFSET = r"[+-]\d\d:\d\d$"  # a trailing UTC offset of event_time (its last 6 characters); absent or `Z`: UTC
# Unicode White_Space, what Rust's `str::trim` strips (the engines' own defaults differ: DuckDB trims only
# spaces, Python's str.strip also strips U+001C..U+001F)
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def table_path(out, table):
    os.makedirs(f"{out}/{table}", exist_ok=True)
    return f"{out}/{table}/data.parquet"


def arrow_schema(table):
    import pyarrow as pa
    keys, metrics = TABLES[table]
    return pa.schema([pa.field("hour_start", pa.timestamp("us", tz="UTC"), nullable=False)] +
                     [pa.field(k, pa.string(), nullable=False) for k in keys] +
                     [pa.field(m, pa.decimal128(38, 2) if m == "revenue" else pa.int64()) for m in metrics])


def write_arrow(out, table, data):
    """Writes an Arrow table in the layout DuckDB writes (column order and types of `arrow_schema`)."""
    import pyarrow.parquet as pq
    schema = arrow_schema(table)
    pq.write_table(data.select(schema.names).cast(schema), table_path(out, table))


# --- DuckDB -------------------------------------------------------------------------------------------------

DUCKDB_METRICS = {
    "orders": "count(DISTINCT order_id)",
    "order_lines": "count(*)",
    "units": "CAST(sum(quantity) AS BIGINT)",
    "revenue": "sum(revenue)",
    "customers": "count(DISTINCT customer_id)",
    "products": "count(DISTINCT sku)",
    "avg_order_value_cents": "CAST((CAST(sum(revenue) * 100 AS HUGEINT) * 2 + count(DISTINCT order_id)) "
                             "// (2 * count(DISTINCT order_id)) AS BIGINT)",
}


def run_duckdb(path, out):
    import duckdb

    def trim(column):  # regexp_replace: trim(column, characters) is several times slower
        space = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]"
        return f"regexp_replace({column}, '^{space}+|{space}+$', '', 'g')"

    def dim(column):
        return f"coalesce(nullif({DIMENSIONS[column]}({trim(column)}), ''), 'unknown') AS {column}"

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
        CREATE TEMP TABLE r AS SELECT
          date_trunc('hour', CAST(upper({trim('event_time')}) AS TIMESTAMPTZ)) AS hour_start,
          {trim('order_id')} AS order_id,
          nullif({trim('customer_id')}, '') AS customer_id,
          {trim('sku')} AS sku,
          {', '.join(dim(d) for d in DIMENSIONS)},
          CAST({trim('quantity')} AS BIGINT) AS quantity,
          CAST({trim('quantity')} AS BIGINT) * CAST({trim('unit_price')} AS DECIMAL(18, 2)) AS revenue
        FROM read_csv('{path}', all_varchar = true, header = true)""")
    for table, (keys, metrics) in TABLES.items():
        group = ", ".join(["hour_start"] + keys)
        sql = f"SELECT {group}, {', '.join(f'{DUCKDB_METRICS[m]} AS {m}' for m in metrics)} FROM r GROUP BY ALL"
        if table == "top_products":
            sql = (f"SELECT * FROM ({sql}) QUALIFY row_number() OVER "
                   f"(PARTITION BY hour_start ORDER BY revenue DESC, sku) <= {TOP_N}")
        con.execute(f"COPY ({sql} ORDER BY {group}) TO '{table_path(out, table)}' (FORMAT parquet)")


# --- polars (lazy, streaming engine) ------------------------------------------------------------------------

def run_polars(path, out):
    import polars as pl

    def field(column):
        return pl.col(column).fill_null("").str.strip_chars(WHITESPACE)

    def dim(column):
        value = field(column)
        value = value.str.to_uppercase() if DIMENSIONS[column] == "upper" else value.str.to_lowercase()
        return value.replace("", "unknown").alias(column)

    ts = field("event_time")
    local = (ts.str.slice(0, 10) + " " + ts.str.slice(11, 5)).str.to_datetime(
        "%Y-%m-%d %H:%M", time_unit="us", time_zone="UTC")
    offset = pl.when(ts.str.contains(OFFSET)).then(ts.str.slice(-6)).otherwise(pl.lit("+00:00"))
    offset_minutes = offset.str.slice(1, 2).cast(pl.Int64) * 60 + offset.str.slice(4, 2).cast(pl.Int64)
    offset_minutes = pl.when(offset.str.starts_with("-")).then(-offset_minutes).otherwise(offset_minutes)
    quantity = field("quantity").cast(pl.Int64)
    rows = pl.scan_csv(path, infer_schema=False).select(
        (local - pl.duration(minutes=offset_minutes)).dt.truncate("1h").alias("hour_start"),
        field("order_id").alias("order_id"),
        pl.when(field("customer_id") != "").then(field("customer_id")).alias("customer_id"),
        field("sku").alias("sku"),
        *(dim(d) for d in DIMENSIONS),
        quantity.alias("quantity"),
        (quantity * field("unit_price").cast(pl.Decimal(18, 2))).alias("revenue"),
    )
    aggregations = {
        "orders": pl.col("order_id").n_unique(),
        "order_lines": pl.len(),
        "units": pl.col("quantity").sum(),
        "revenue": pl.col("revenue").sum(),
        "customers": pl.col("customer_id").drop_nulls().n_unique(),
        "products": pl.col("sku").n_unique(),
    }
    frames = []
    for table, (keys, metrics) in TABLES.items():
        group = ["hour_start"] + keys
        frame = rows.group_by(group).agg(aggregations[m].alias(m) for m in metrics if m in aggregations)
        if "avg_order_value_cents" in metrics:
            cents = (pl.col("revenue") * 100).cast(pl.Int128)
            aov = (cents * 2 + pl.col("orders")) // (2 * pl.col("orders"))
            frame = frame.with_columns(aov.cast(pl.Int64).alias("avg_order_value_cents"))
        if table == "top_products":
            frame = (frame.sort(["hour_start", "revenue", "sku"], descending=[False, True, False])
                     .group_by("hour_start", maintain_order=True).head(TOP_N))
        frames.append(frame.sort(group))
    for table, frame in zip(TABLES, pl.collect_all(frames, engine="streaming")):
        write_arrow(out, table, frame.to_arrow())


# --- pandas (reference) -------------------------------------------------------------------------------------

def run_pandas(path, out):
    import pandas as pd
    import pyarrow as pa

    columns = ["event_time", "order_id", "customer_id", "sku", "quantity", "unit_price", *DIMENSIONS]
    df = pd.read_csv(path, dtype=str, usecols=columns, keep_default_na=False, na_filter=False)
    field = {column: df[column].str.strip(WHITESPACE) for column in columns}

    ts = field["event_time"]
    local = pd.to_datetime(ts.str.slice(0, 10) + " " + ts.str.slice(11, 16), format="%Y-%m-%d %H:%M", utc=True)
    offset = ts.str.slice(-6).where(ts.str.contains(OFFSET), "+00:00")  # str.extract: 10x slower
    offset_minutes = offset.str.slice(1, 3).astype("int64") * 60 + offset.str.slice(4, 6).astype("int64")
    offset_minutes = offset_minutes.where(offset.str.slice(0, 1) != "-", -offset_minutes)
    price = field["unit_price"].str.partition(".")
    price_cents = price[0].astype("int64") * 100 + (price[2] + "00").str.slice(0, 2).astype("int64")
    quantity = field["quantity"].astype("int64")
    if (quantity.astype("float64") * price_cents.astype("float64")).sum() >= 2.0 ** 62:
        sys.exit("pandas peer: revenue does not fit int64 cents")
    rows = pd.DataFrame({
        "hour_start": (local - pd.to_timedelta(offset_minutes, unit="min")).dt.floor("h"),
        "order_id": field["order_id"],
        "customer_id": field["customer_id"].where(field["customer_id"] != ""),
        "sku": field["sku"],
        **{d: getattr(field[d].str, DIMENSIONS[d])().replace("", "unknown") for d in DIMENSIONS},
        "quantity": quantity,
        "revenue": quantity * price_cents,  # int64 cents until written
    })
    aggregations = {
        "orders": ("order_id", "nunique"),
        "order_lines": ("order_id", "size"),
        "units": ("quantity", "sum"),
        "revenue": ("revenue", "sum"),
        "customers": ("customer_id", "nunique"),  # NaN (guest) not counted
        "products": ("sku", "nunique"),
    }
    for table, (keys, metrics) in TABLES.items():
        group = ["hour_start"] + keys
        frame = rows.groupby(group, sort=False).agg(**{m: aggregations[m] for m in metrics if m in aggregations})
        frame = frame.reset_index()
        if "avg_order_value_cents" in metrics:
            frame["avg_order_value_cents"] = (frame.revenue * 2 + frame.orders) // (2 * frame.orders)
        if table == "top_products":
            frame = (frame.sort_values(["hour_start", "revenue", "sku"], ascending=[True, False, True])
                     .groupby("hour_start", sort=False).head(TOP_N))
        frame = pa.Table.from_pandas(frame.sort_values(group), preserve_index=False)
        write_arrow(out, table, frame.set_column(frame.schema.get_field_index("revenue"), "revenue",
                                                 _decimal_cents(frame["revenue"])))


def _decimal_cents(cents):
    """int64 cents -> exact decimal128(38, 2) Arrow array (via Python Decimal: the tables are small)."""
    from decimal import Decimal

    import pyarrow as pa
    return pa.array([Decimal(c).scaleb(-2) for c in cents.to_pylist()], pa.decimal128(38, 2))


# --- equality check -----------------------------------------------------------------------------------------

def canonical(con, table, path, ours):
    """The rows of one table as comparable tuples: hour in epoch microseconds, money in integer cents."""
    keys, metrics = TABLES[table]
    cents = {"revenue": "CAST(revenue * 100 AS HUGEINT)"}
    if ours:  # ours writes avg_order_value as decimal(18,2), and top_products with a rank (not compared)
        cents["avg_order_value_cents"] = "CAST(avg_order_value * 100 AS HUGEINT)"
    cols = ["epoch_us(hour_start)"] + keys + [cents.get(m, m) for m in metrics]
    return con.execute(f"SELECT {', '.join(cols)} FROM read_parquet('{path}') ORDER BY ALL").fetchall()


def compare(ours, peer):
    import duckdb
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


PEERS = {"duckdb": run_duckdb, "polars": run_polars, "pandas": run_pandas}

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in PEERS:
        PEERS[sys.argv[1]](sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__.split("\n\n")[1])
