"""Render a pytest-benchmark JSON of this suite as markdown: ``python -m bench.report OUT.json [> OUT.md]``.

Times are the do_bench medians (CUDA events) stored in ``extra_info``; ratios are each row's time
over the group's baseline in the same run (snnkern for kernel groups, the original model for swap
groups), so >1 means slower than the baseline.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict


def _fmt(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def render(data: dict) -> str:
    records = [b["extra_info"] | {"group": b["group"], "name": b["name"]} for b in data["benchmarks"]]
    if not records:
        return "no benchmark records\n"
    head = records[0]
    lines = ["# snnkern benchmark report", "",
             f"GPU: {head.get('gpu')} · driver {head.get('driver', 'n/a')} · torch {head.get('torch')} · "
             f"triton {head.get('triton')} · commit {head.get('commit')} · {head.get('date')}", ""]
    copy = next((r for r in records if r.get("impl") == "copy"), None)
    if copy:
        lines += [f"Device copy bandwidth (same run): **{copy['gb_per_s']:.0f} GB/s**", ""]
    groups = defaultdict(list)
    for r in records:
        if r.get("impl") != "copy":
            groups[r["group"]].append(r)
    for group, rows in groups.items():
        base = next((r["ms_median"] for r in rows if r.get("baseline") or r.get("impl") == "snnkern"), None)
        lines += [f"## {group}", "",
                  "| impl | median ms | q20–q80 ms | time / baseline | GB/s | % of copy BW | peak MiB | W (measured) "
                  "| J/sample (measured) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(rows, key=lambda r: r["ms_median"]):
            ratio = r["ms_median"] / base if base else None
            gbs = r.get("gb_per_s")
            frac = 100 * gbs / r["copy_gb_per_s"] if gbs and r.get("copy_gb_per_s") else None
            lines.append(f"| {r['impl']} | {_fmt(r['ms_median'])} | {_fmt(r['ms_q20'])}–{_fmt(r['ms_q80'])} | "
                         f"{_fmt(ratio, '.2f')} | {_fmt(gbs, '.0f')} | {_fmt(frac, '.0f')} | "
                         f"{_fmt(r.get('peak_mib'), '.0f')} | {_fmt(r.get('watts'), '.0f')} | "
                         f"{_fmt(r.get('j_per_sample'), '.3g')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json_file")
    args = parser.parse_args(argv)
    with open(args.json_file) as f:
        print(render(json.load(f)))


if __name__ == "__main__":
    main()
