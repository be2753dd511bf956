"""Render pytest-benchmark JSONs of this suite as markdown:
``python -m bench.report OUT.json [MORE.json ...] [--out report.md] [--plots DIR]``
(several files, e.g. one per device call, are rendered as one run); ``--plots DIR`` also writes PNGs of
the network groups (throughput vs T, J/sample SNN vs ANN, memory), linked relative to ``--out``.

Times are the do_bench medians (CUDA events) stored in ``extra_info``; ratios are each row's time
over the group's baseline in the same run (snnkern for kernel groups, the original model for swap
groups), so >1 means slower than the baseline.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict


def _fmt(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def _gbs(value) -> str:
    """Bandwidth with three significant digits: a CPU run's 0.4 GB/s must not print as "0"."""
    return "—" if value is None else format(value, ".0f" if value >= 100 else ".3g")


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
        lines += [f"Device copy bandwidth (same run): **{_gbs(copy['gb_per_s'])} GB/s** — the \"% of copy BW\" "
                  "column is each row's GB/s over it.", ""]
    groups = defaultdict(list)
    for r in records:
        if r.get("impl") != "copy":
            groups[r["group"]].append(r)
    above_copy = False
    for group, rows in groups.items():
        base_row = next((r for r in rows if r.get("baseline")), None) or next(
            (r for r in rows if r.get("impl") == "snnkern"), None)
        base = base_row["ms_median"] if base_row else None
        ratio_head = f"time / {base_row['impl']}" if base_row else "time / baseline"
        lines += [f"## {group}", "",
                  (f"Baseline of the ratios: **{base_row['impl']}** (same run; > 1 means slower than it)."
                   if base_row else "No baseline in this group: no ratios."), "",
                  f"| impl | median ms | q20–q80 ms | {ratio_head} | GB/s | % of copy BW | peak MiB | W (measured) "
                  "| J/sample (measured) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(rows, key=lambda r: r["ms_median"]):
            ratio = r["ms_median"] / base if base else None
            gbs = r.get("gb_per_s")
            frac = 100 * gbs / r["copy_gb_per_s"] if gbs and r.get("copy_gb_per_s") else None
            above_copy |= bool(frac and frac > 100)
            lines.append(f"| {r['impl']} | {_fmt(r['ms_median'])} | {_fmt(r['ms_q20'])}–{_fmt(r['ms_q80'])} | "
                         f"{_fmt(ratio, '.2f')} | {_gbs(gbs)} | {_fmt(frac, '.0f')} | "
                         f"{_fmt(r.get('peak_mib'), '.0f')} | {_fmt(r.get('watts'), '.0f')} | "
                         f"{_fmt(r.get('j_per_sample'), '.3g')} |")
        lines.append("")
    if above_copy:
        lines += ["Above 100% of copy bandwidth: the copy probe streams a buffer larger than the caches, a kernel "
                  "whose working set fits in them (small shapes, or a CPU run) can go faster than it.", ""]
    return "\n".join(lines)


def plot_networks(data: dict, out_dir: str) -> tuple[list[str], list[str]]:
    """One figure per metric, one panel per network: ANN as a line, SNN and converted SNN over T.
    Returns the PNG paths and, for each metric with no value in the records, a sentence saying why no
    plot was drawn (an empty plot says nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("network")]
    networks = sorted({r["network"] for r in rows})
    if not networks:
        return [], ["No network plots: no network benchmark records in these files."]
    os.makedirs(out_dir, exist_ok=True)
    metrics = [("samples_per_s", "inference samples/s", "inference", "throughput_vs_T.png", "no inference timings"),
               ("j_per_sample", "J/sample (measured)", "inference", "energy_vs_T.png",
                "no measured energy (NVML needs an NVIDIA GPU; a CPU run has none)"),
               ("peak_mib", "peak memory MiB (train step)", "train_step", "memory_vs_T.png",
                "no peak memory (CUDA memory statistics; a CPU run has none)")]
    paths, notes = [], []
    for key, label, mode, name, why in metrics:
        if not any(r["mode"] == mode and isinstance(r.get(key), float) for r in rows):
            notes.append(f"No {name} plot: {why} in these records.")
            continue
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
    return paths, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json_files", nargs="+", metavar="json_file")
    parser.add_argument("--plots", default=None, help="directory for PNG plots of the network groups")
    parser.add_argument("--out", default=None,
                        help="write the markdown to this file (default: print it); image links are relative to it")
    args = parser.parse_args(argv)
    data = {"benchmarks": []}
    for path in args.json_files:
        with open(path) as f:
            data["benchmarks"] += json.load(f)["benchmarks"]
    text = render(data)
    if args.plots:
        paths, notes = plot_networks(data, args.plots)
        # links relative to where the markdown lives, so the report and its plots move together
        where = os.path.dirname(os.path.abspath(args.out)) if args.out else os.getcwd()
        text += "".join(f"{note}\n\n" for note in notes)
        text += "".join(f"![{os.path.basename(p)}]({os.path.relpath(os.path.abspath(p), where)})\n" for p in paths)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
