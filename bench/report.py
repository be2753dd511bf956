"""Render pytest-benchmark JSONs of this suite as markdown: ``python -m bench.report OUT.json [MORE.json ...] [> OUT.md]``
(several files, e.g. one per device call, are rendered as one run);
``--plots DIR`` also writes PNGs of the network groups (throughput vs T, J/sample SNN vs ANN, memory).

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


def plot_networks(data: dict, out_dir: str) -> list[str]:
    """One figure per metric, one panel per network: ANN as a line, SNN and converted SNN over T."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("network")]
    networks = sorted({r["network"] for r in rows})
    if not networks:
        return []
    os.makedirs(out_dir, exist_ok=True)
    metrics = [("samples_per_s", "inference samples/s", "inference", "throughput_vs_T.png"),
               ("j_per_sample", "J/sample (measured)", "inference", "energy_vs_T.png"),
               ("peak_mib", "peak memory MiB (train step)", "train_step", "memory_vs_T.png")]
    paths = []
    for key, label, mode, name in metrics:
        fig, axes = plt.subplots(1, len(networks), figsize=(3.2 * len(networks), 3), squeeze=False)
        for ax, net in zip(axes[0], networks):
            sel = [r for r in rows if r["network"] == net and r["mode"] == mode and isinstance(r.get(key), float)]
            for kind, style in (("snn", "o-"), ("snn-event", "^-"), ("converted", "s--"), ("converted-event", "v--")):
                pts = sorted((r["T"], r[key]) for r in sel if r["kind"] == kind)
                if pts:
                    ax.plot(*zip(*pts), style, label=kind)
            ann = [r[key] for r in sel if r["kind"] == "ann"]
            if ann:
                ax.axhline(ann[0], color="gray", linestyle=":", label="ANN")
            ax.set_title(net, fontsize=8)
            ax.set_xlabel("T")
            ax.set_xscale("log", base=2)
        axes[0][0].set_ylabel(label)
        if axes[0][0].get_legend_handles_labels()[0]:
            axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json_files", nargs="+", metavar="json_file")
    parser.add_argument("--plots", default=None, help="directory for PNG plots of the network groups")
    args = parser.parse_args(argv)
    data = {"benchmarks": []}
    for path in args.json_files:
        with open(path) as f:
            data["benchmarks"] += json.load(f)["benchmarks"]
    print(render(data))
    if args.plots:
        for path in plot_networks(data, args.plots):
            print(f"![{path}]({path})")


if __name__ == "__main__":
    main()
