"""Loads the HTML reports of an output directory in headless Chromium (Playwright) and checks them.

Usage: python check_report.py <out-dir> <YYYY-MM-DDTHH> <screenshot.png>

For the hour report, its day report and reports/latest.html:
- no console error or warning and no page error;
- no network request: the only URL the page loads is its own file (self-contained);
- every chart (svg[data-chart]) is laid out with a non-zero size, and the 24-hour charts have bars;
- the numbers in the page equal the published tables, read independently here with DuckDB: the headline
  KPIs, the channel and campaign rows, the top products, and the rejected-row count of the files that fed
  the hour (from their summaries);
- on a phone-sized viewport (390 px) the page does not scroll sideways, and it prints (PDF).
Writes a full-page PNG of the hour report to <screenshot.png>. Exits non-zero on the first failure.
"""
import glob
import json
import os
import sys
from decimal import Decimal

import duckdb
from playwright.sync_api import sync_playwright

out, hour, shot = sys.argv[1], sys.argv[2], sys.argv[3]
day, hh = hour[:10], hour[11:13]
con = duckdb.connect()


def table(name, where):
    path = os.path.join(out, name, where, "data.parquet")
    # hour_start (a timestamp with time zone) would need pytz in Python; the checks do not use it.
    select = "* EXCLUDE (hour_start)" if "/hour=" in where else "*"
    return con.execute(f"SELECT {select} FROM read_parquet('{path}')").fetchall(), [d[0] for d in con.description]


def plain(text):
    return text.replace(",", "").replace("\u00a0", "").strip()


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=FLAGS)

    def load(rel, width=1100):
        url = "file://" + os.path.abspath(os.path.join(out, "reports", rel))
        page = browser.new_page(viewport={"width": width, "height": 900})
        problems, requests = [], []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.wait_for_load_state("load")
        check(not problems, f"{rel} at {width}px: no console errors ({problems})")
        check(requests == [url], f"{rel} at {width}px: no request but the page itself ({requests})")
        return page

    def charts(page, rel):
        sizes = page.eval_on_selector_all(
            "svg[data-chart]",
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return [e.dataset.chart, r.width, r.height, e.querySelectorAll('rect.bar').length]; })")
        names = sorted(s[0] for s in sizes)
        check(names == ["countries", "devices", "orders", "revenue"], f"{rel}: the four charts ({names})")
        for name, w, h, bars in sizes:
            check(w > 100 and h > 20, f"{rel}: chart {name} is laid out ({w:.0f}x{h:.0f} px)")
            check(bars > 0, f"{rel}: chart {name} has bars ({bars})")

    def kpis(page, rel, rows, cols):
        check(len(rows) == 1, f"{rel}: one KPI row in the table")
        want = dict(zip(cols, rows[0]))
        shown = page.eval_on_selector_all(
            "[data-kpi]", "els => els.map(e => [e.dataset.kpi, e.dataset.value, e.querySelector('.value').textContent])")
        check(len(shown) == 5, f"{rel}: five KPIs")
        for key, raw, text in shown:
            check(str(want[key]) == raw == plain(text), f"{rel}: KPI {key} = {want[key]} (page: {raw}, '{text}')")

    def rows_of(page, name):
        return page.eval_on_selector_all(
            f"table[data-table={name}] tbody tr",
            "trs => trs.map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()))")

    # The hour.
    rel = f"dt={day}/hour={hh}/index.html"
    page = load(rel)
    charts(page, rel)
    rows, cols = table("hourly_kpis", f"dt={day}/hour={hh}")
    kpis(page, rel, rows, cols)
    want, cols = table("channel_performance", f"dt={day}/hour={hh}")
    want = sorted(want, key=lambda r: (-r[cols.index("revenue")], r[cols.index("channel")], r[cols.index("campaign")]))
    got = rows_of(page, "channel_performance")
    shown = min(len(want), 20)  # model::TABLE_ROWS, then one row summing the others
    check(len(got) == shown + (len(want) > 20) and len(want) > 0, f"{rel}: {len(got)} channel rows for {len(want)}")
    for g, w in zip(got, want[:shown]):
        r = dict(zip(cols, w))
        check(g[:5] == [r["channel"], r["campaign"], str(r["orders"]), str(r["units"]), f"{r['revenue']:,}"],
              f"{rel}: channel row {g[:5]}")
    want, cols = table("top_products", f"dt={day}/hour={hh}")
    got = rows_of(page, "top_products")
    check(len(got) == len(want) > 0, f"{rel}: {len(want)} top products")
    for g, w in zip(got, sorted(want, key=lambda r: r[cols.index("rank")])):
        r = dict(zip(cols, w))
        check(g[:5] == [str(r["rank"]), r["sku"], str(r["orders"]), str(r["units"]), f"{r['revenue']:,}"],
              f"{rel}: product row {g[:5]}")
    fed = []
    for path in glob.glob(os.path.join(out, "summaries", "*.json")):
        s = json.load(open(path))
        if any(h["hour"].startswith(hour) for h in s.get("by_hour", [])):
            fed.append(s)
    rejected = page.text_content("[data-quality=rejected]")
    check(int(plain(rejected)) == sum(s["rows"]["rejected"] for s in fed),
          f"{rel}: {rejected} rejected rows in the {len(fed)} files that fed the hour")
    files = rows_of(page, "files")
    check(len(files) == len(fed), f"{rel}: the files that fed the hour are listed ({len(files)})")
    page.screenshot(path=shot, full_page=True)
    print(f"screenshot: {shot}")
    pdf = page.pdf()
    check(len(pdf) > 10_000, f"{rel}: prints ({len(pdf)} bytes of PDF)")
    page.close()

    phone = load(rel, width=390)
    overflow = phone.evaluate("document.documentElement.scrollWidth")
    check(overflow <= 390, f"{rel}: no sideways scrolling on a phone (content {overflow} px wide)")
    phone.close()

    # Its day, and latest.html.
    rel = f"dt={day}/index.html"
    page = load(rel)
    charts(page, rel)
    rows, cols = table("daily_kpis", f"dt={day}")
    kpis(page, rel, rows, cols)
    page.close()
    page = load("latest.html")
    charts(page, "latest.html")
    check(page.get_attribute("main", "data-report") == "hour", "latest.html is an hour report")
    page.close()
    browser.close()
print("all report checks passed")
