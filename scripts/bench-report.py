#!/usr/bin/env python3
"""Assembles BENCHMARKS.md and BENCHMARKS.json from the benches' row files.

Every bench writes a JSON file {"rows": [ROW, ...]} into the bench directory. A ROW is one
figure of ours beside one reference, measured in the same run:

    {
      "benchmark": "C-STORE ingest",               # the group (a section of the table)
      "metric": "200 × 0.5 MB objects, 1 association",
      "unit": "img/s",
      "better": "higher",                          # or "lower" (latencies, memory)
      "ours": 241.0,                                # the median (or the stated percentile)
      "ours_spread": "230–250",                     # optional: min–max, or p99, as text
      "reference": "dcmtk storescp",                # null when there is nothing to compare with
      "reference_value": 748.0,                     # null when the reference cannot do it
      "reference_spread": "740–760",                # optional
      "n": 3,                                       # repetitions behind the median
      "note": "fsync per object"                    # optional
    }

The ratio is ours relative to the reference, > 1 meaning ours is better: ours / reference when
higher is better, reference / ours when lower is better.

Usage: bench-report.py BENCH_DIR OUT_DIR
"""

import datetime
import json
import os
import platform
import subprocess
import sys


def ratio(row):
    ours, ref = row.get("ours"), row.get("reference_value")
    if ours is None or ref is None or ours == 0 or ref == 0:
        return None
    return ours / ref if row.get("better", "higher") == "higher" else ref / ours


def number(value):
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
    }


def main():
    bench_dir, out_dir = sys.argv[1], sys.argv[2]
    rows, sources = [], []
    for name in sorted(os.listdir(bench_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(bench_dir, name)) as f:
            data = json.load(f)
        if "rows" not in data:
            continue
        sources.append(name)
        for row in data["rows"]:
            row["ratio"] = ratio(row)
            row["source"] = name
            rows.append(row)
    info = machine()
    with open(os.path.join(out_dir, "BENCHMARKS.json"), "w") as f:
        json.dump({"machine": info, "rows": rows}, f, indent=2, ensure_ascii=False)
        f.write("\n")

    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (scripts/bench.sh); do not edit by hand. Every figure of ours is",
        "measured beside its reference in the same run on the same machine: on a shared 2-core",
        "machine absolute times drift, ratios much less. **Ratio > 1 means ours is better** (ours /",
        "reference for rates, reference / ours for times and memory). Medians unless the metric",
        "names a percentile; the spread column gives min–max or p99 as stated.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Linux "
        f"{info['kernel']}. Date: {info['date']}. Commit: {info['commit']}.",
        "",
    ]
    groups = []
    for row in rows:
        if row["benchmark"] not in groups:
            groups.append(row["benchmark"])
    for group in groups:
        out += [f"## {group}", ""]
        out += [
            "| metric | ours | spread | reference | reference value | spread | ratio | n | note |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in (r for r in rows if r["benchmark"] == group):
            unit = row.get("unit", "")
            ours = "—" if row.get("ours") is None else f"{number(row['ours'])} {unit}"
            ref_value = (
                "—"
                if row.get("reference_value") is None
                else f"{number(row['reference_value'])} {unit}"
            )
            r = row["ratio"]
            out.append(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    row["metric"],
                    ours,
                    row.get("ours_spread") or "",
                    row.get("reference") or "—",
                    ref_value,
                    row.get("reference_spread") or "",
                    "—" if r is None else f"**{r:.2f}**",
                    row.get("n") or "",
                    row.get("note") or "",
                )
            )
        out.append("")
    ranked = sorted((r for r in rows if r["ratio"] is not None), key=lambda r: r["ratio"])
    if ranked:
        out += ["## Slowest ratios", ""]
        for row in ranked[:3]:
            out.append(
                f"- {row['ratio']:.2f}: {row['benchmark']}, {row['metric']} vs {row['reference']}"
            )
        out.append("")
    out.append(f"Sources: {', '.join(sources)} (in the bench directory); JSON: BENCHMARKS.json.")
    with open(os.path.join(out_dir, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote BENCHMARKS.md and BENCHMARKS.json: {len(rows)} rows from {len(sources)} files")


if __name__ == "__main__":
    main()
