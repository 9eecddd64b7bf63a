"""`python -m devtools.bench.growth [--out bench_out/] [--png docs/performance-growth.png]`

The refresh's cost growth from the bench's JSON files (`bench-N.json`, `bench-N-xK.json`,
written by `python -m devtools.bench --requests N [--kpis K]`): prints a Markdown table of
time (wall and CPU) and peak memory per (rows, KPI copies) and draws it as a PNG chart
(Altair, rendered by vl-convert).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import altair as alt
import polars as pl
import vl_convert


def load(folder: Path) -> pl.DataFrame:
    rows = []
    for path in sorted(folder.glob("bench-*.json")):
        found = re.fullmatch(r"bench-(\d+)(?:-x(\d+))?\.json", path.name)
        if not found:
            continue
        report = json.loads(path.read_text())
        figures = report["figures"]
        if "refresh_s" not in figures:
            continue
        rows.append({"rows_311": int(found[1]), "kpi_copies": int(found[2] or 1),
                     "runs": len(figures["refresh_s"]["runs"]),
                     "refresh_s": figures["refresh_s"]["median"],
                     "refresh_cpu_s": figures.get("refresh_cpu_s", {}).get("median"),
                     "peak_mb": figures["refresh_peak_rss_mb"]["median"],
                     "load": (report.get("load_average") or {}).get("median")})
    schema = {"rows_311": pl.Int64, "kpi_copies": pl.Int64, "runs": pl.Int64, "refresh_s": pl.Float64,
              "refresh_cpu_s": pl.Float64, "peak_mb": pl.Float64, "load": pl.Float64}
    return pl.DataFrame(rows, schema=schema).sort("rows_311", "kpi_copies")


def markdown(table: pl.DataFrame) -> str:
    lines = ["| 311 rows | KPIs | runs | refresh wall s | refresh CPU s | peak memory MB | load average |",
             "|---|---|---|---|---|---|---|"]
    for r in table.iter_rows(named=True):
        cpu = f"{r['refresh_cpu_s']:.1f}" if r["refresh_cpu_s"] is not None else "-"
        load = f"{r['load']:.0f}" if r["load"] is not None else "-"
        lines.append(f"| {r['rows_311'] / 1e6:g} M | {r['kpi_copies']}x | {r['runs']} | {r['refresh_s']:.1f} | {cpu} "
                     f"| {r['peak_mb']:.0f} | {load} |")
    return "\n".join(lines)


def chart(table: pl.DataFrame) -> alt.HConcatChart:
    data = table.with_columns(rows_m=pl.col("rows_311") / 1e6,
                              kpis=pl.format("{}x KPIs", pl.col("kpi_copies")))
    base = alt.Chart(data).encode(
        x=alt.X("rows_m:Q", title="311 requests (millions)", scale=alt.Scale(type="log")),
        color=alt.Color("kpis:N", title="Registry", sort=["1x KPIs", "4x KPIs", "16x KPIs"]))
    cpu = base.mark_line(point=True).encode(
        y=alt.Y("refresh_cpu_s:Q", title="Refresh CPU seconds", scale=alt.Scale(type="log")),
        tooltip=["rows_m", "kpis", "refresh_cpu_s", "refresh_s"]).properties(
        title="Refresh time (CPU seconds)", width=320, height=240)
    memory = base.mark_line(point=True).encode(
        y=alt.Y("peak_mb:Q", title="Peak memory (MB)"),
        tooltip=["rows_m", "kpis", "peak_mb"]).properties(title="Refresh peak memory", width=320, height=240)
    return alt.hconcat(cpu, memory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.growth", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    parser.add_argument("--png", type=Path, default=Path("docs/performance-growth.png"))
    args = parser.parse_args(argv)
    table = load(args.out)
    print(markdown(table))
    args.png.write_bytes(vl_convert.vegalite_to_png(chart(table).to_json(), scale=2))
    print(f"\nchart: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
