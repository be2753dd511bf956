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

# what the "peak MiB" columns mean (bench/common.py's peak_mib), said in every report and summary that shows one
PEAK_NOTE = ("peak MiB: what a call allocates at its peak above what was allocated before it, measured on a "
             "second call (parameters, optimizer state and kept weight copies are not counted; activations and "
             "saved tensors are)")


def _fmt(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def _gbs(value) -> str:
    """Bandwidth with three significant digits: a CPU run's 0.4 GB/s must not print as "0"."""
    return "—" if value is None else format(value, ".0f" if value >= 100 else ".3g")


def render(data: dict, sweep_images: list[str] = (), sweep_notes: list[str] = ()) -> str:
    """The report's markdown; ``sweep_images``: links to the sweep's plots, placed in its section beside the
    saved-for-backward table; ``sweep_notes``: sentences saying why a sweep plot is missing."""
    records = [b["extra_info"] | {"group": b["group"], "name": b["name"]} for b in data["benchmarks"]]
    if not records:
        return "no benchmark records\n"
    head = records[0]
    sweep = [r for r in records if r.get("sweep")]
    records = [r for r in records if not r.get("sweep")]
    lines = ["# snnkern benchmark report", "",
             f"GPU: {head.get('gpu')} · driver {head.get('driver', 'n/a')} · torch {head.get('torch')} · "
             f"triton {head.get('triton')} · commit {head.get('commit')} · {head.get('date')}", ""]
    if any(r.get("peak_mib") is not None for r in records):
        lines += [f"{PEAK_NOTE}.", ""]
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
    if sweep:
        lines += render_sweep(sweep, sweep_images, sweep_notes)
    return "\n".join(lines)


# ---- the spike x weight sweep (bench/test_spike_sweep.py) --------------------------------------------------

SWEEP_LABELS = {"gather": "gather", "tiles": "tiles", "dense": "dense (unpack + cuBLAS)", "cublas": "cuBLAS",
                "csr": "torch CSR", "auto": "auto (rate given)", "auto_norate": "auto (no rate)"}
SWEEP_STYLE = {"gather": ("tab:blue", "o"), "tiles": ("tab:orange", "s"), "dense": ("tab:purple", "+"),
               "cublas": ("tab:green", "D"), "csr": ("tab:brown", "x"), "auto_norate": ("tab:gray", "v"),
               "auto": ("black", None)}
PICK_MARKERS = {"gather": "^", "tiles": "s", "dense": "o"}
PATTERNS = {"random": "random spikes", "steps": "whole time steps silent"}


def _pct_of(sparsity: float) -> str:
    return f"{100 * sparsity:g}%"


def render_sweep(records: list[dict], images=(), notes=()) -> list[str]:
    from .summary import sweep_rows

    rows = sweep_rows(records)
    ideal = next((r.get("ideal_counts") for r in records if r.get("ideal_counts")), None)
    lines = ["## Spike x weight sweep: time vs sparsity", "",
             "Median ms per implementation (q20/q80 in the JSON): spike_linear's algorithms fed packed spikes "
             "(`dense`: unpack + cuBLAS), the cuBLAS and CSR peers fed dense spikes. `auto` shows its pick in "
             "brackets and its time over the fastest of {dense, gather, tiles} (the TF32 rows run dense and "
             "cuBLAS in TF32; gather and tiles ignore the switch). \"gather of ideal\": the byte model's "
             "L2-bound ideal over gather's time.", ""]
    if ideal:
        lines += [f"The model ({ideal}).", ""]
    lines += [f"{note}" for note in notes] + ([""] if notes else [])
    lines += [f"![{os.path.basename(p)}]({p})" for p in images] + ([""] if images else [])
    saved = [r for r in records if r.get("sweep") == "saved"]
    if saved:
        gpu = any(r.get("retained_bytes_ours") is not None for r in saved)
        lines += ["Saved for backward by a spike-fed layer (fp32 spikes in; counted with saved_tensors_hooks"
                  + ("; \"kept on the GPU\": memory a forward leaves allocated, output excluded" if gpu else
                     "; no CUDA memory statistics in this run") + "):", "",
                  "| layer M x K -> N | ours (bits) | fp32 activations | 16-bit activations | fp32 / ours | "
                  "16-bit / ours | kept on the GPU: ours / fp32 MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(saved, key=lambda r: -r["M"] * r["K"]):
            kept = (f"{r['retained_bytes_ours'] / 2**20:.2f} / {r['retained_bytes_fp32'] / 2**20:.2f}"
                    if r.get("retained_bytes_ours") is not None else "—")
            lines.append(f"| {r['M']} x {r['K']} -> {r['N']} | {r['saved_bytes_ours']:,} B | "
                         f"{r['saved_bytes_fp32']:,} B | {r['saved_bytes_16bit']:,} B | {r['saved_ratio_fp32']:.1f}x | "
                         f"{r['saved_ratio_16bit']:.1f}x | {kept} |")
        lines.append("")
    tables: dict = {}
    for r in rows:
        tables.setdefault((r["M"], r["K"], r["N"], r["pattern"], r["dtype"]), []).append(r)
    for (M, K, N, pattern, dtype), rs in tables.items():
        impls = [k for k in SWEEP_LABELS if any(k in r["ms"] for r in rs)]
        lines += [f"### M={M} K={K} N={N}, {PATTERNS.get(pattern, pattern)}, {dtype} weights", "",
                  "| sparsity | rate | " + " | ".join(SWEEP_LABELS[k] for k in impls)
                  + " | fastest | auto / fastest | gather of ideal |",
                  "|---:|---:|" + "---:|" * len(impls) + "---|---:|---:|"]
        for r in rs:
            cells = [_fmt(r["ms"].get(k)) + (f" [{r['auto_pick']}]" if k == "auto" and r["auto_pick"] else "")
                     for k in impls]
            frac = r["gather_frac_ideal"]
            lines.append(f"| {_pct_of(r['sparsity'])} | {_fmt(r['rate'], '.4f')} | " + " | ".join(cells)
                         + f" | {r['fastest'] or '—'} | {_fmt(r['auto_over_fastest'], '.2f')} | "
                         f"{'—' if frac is None else format(100 * frac, '.2g' if frac < 0.01 else '.0f') + '%'} |")
        lines.append("")
    return lines


def plot_sweep(data: dict, out_dir: str) -> tuple[list[str], list[str]]:
    """Time vs sparsity, one figure per layer and spike pattern, one panel per weight dtype (fp32 with TF32
    on as its own panel): a line per implementation (median, q20-q80 shaded), the byte model's gather
    ideal (L2-bound) and cuBLAS time dashed, auto's pick as its marker. Returns the PNG paths and, when
    there is nothing to draw, a sentence saying why."""
    from .summary import sweep_rows

    records = [b["extra_info"] for b in data["benchmarks"] if b["extra_info"].get("sweep") == "spike_linear"]
    if not records:
        return [], ["No spike sweep plot: no spike sweep records in these files (bench/test_spike_sweep.py "
                    "writes them)."]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = sweep_rows(records)
    rec = {(r["M"], r["K"], r["N"], r["pattern"], r["dtype"], r["sparsity"], r["impl"]): r for r in records}

    def record_of(M, K, N, pattern, panel, sparsity, impl):
        """The record behind a panel's point: the TF32 panel's cuBLAS and auto are their _tf32 rows."""
        tf32 = panel.endswith("TF32") and impl in ("cublas", "dense", "auto")
        return rec.get((M, K, N, pattern, panel.split()[0], sparsity, impl + ("_tf32" if tf32 else "")), {})

    gpu = next((r.get("gpu") for r in records if r.get("gpu")), "")
    gpu = "CPU smoke run" if gpu.startswith("none") else gpu
    figures: dict = {}
    for r in rows:
        figures.setdefault((r["M"], r["K"], r["N"], r["pattern"]), {}).setdefault(r["dtype"], []).append(r)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for (M, K, N, pattern), panels in figures.items():
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False, sharey=True)
        handles: dict = {}
        for ax, (dtype, rs) in zip(axes[0], panels.items()):
            rs = sorted(rs, key=lambda r: r["sparsity"])
            rates = [max(1.0 - r["sparsity"], 1e-4) for r in rs]
            tf32 = dtype.endswith("TF32")
            for impl, (color, marker) in SWEEP_STYLE.items():
                color = "tab:olive" if tf32 and impl == "cublas" else color
                pts = [(x, r["ms"][impl], r) for x, r in zip(rates, rs) if r["ms"].get(impl)]
                if not pts:
                    continue
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                label = SWEEP_LABELS[impl] + (" TF32" if tf32 and impl == "cublas" else "")
                line, = ax.plot(xs, ys, "-", color=color, marker=marker, markersize=4, linewidth=1.2,
                                zorder=3 if impl == "auto" else 2)
                handles.setdefault(label, line)
                q = [record_of(M, K, N, pattern, dtype, p[2]["sparsity"], impl) for p in pts]
                q = [(r.get("ms_q20"), r.get("ms_q80")) for r in q]
                if all(isinstance(a, (int, float)) and isinstance(b, (int, float)) for a, b in q):
                    ax.fill_between(xs, [a for a, _ in q], [b for _, b in q], color=color, alpha=0.15, linewidth=0)
                if impl == "auto":  # its pick, as the marker of each point
                    for x, y, r in pts:
                        pick = r["auto_pick"]
                        if pick in PICK_MARKERS:
                            ax.plot([x], [y], PICK_MARKERS[pick], color="black", markerfacecolor="white",
                                    markersize=7, zorder=4)
            for key, src, color, name in (("gather_ideal_ms", "gather", "tab:blue", "gather ideal (L2-bound)"),
                                          ("dense_model_ms", "cublas", "tab:olive" if tf32 else "tab:green",
                                           "cuBLAS TF32, model" if tf32 else "cuBLAS, model")):
                pts = [(x, record_of(M, K, N, pattern, dtype, r["sparsity"], src).get(key)) for x, r in zip(rates, rs)]
                pts = [p for p in pts if isinstance(p[1], (int, float))]
                if pts:  # a lone point (a one-sparsity run) as a dash, which a line of one point would not draw
                    line, = ax.plot(*zip(*pts), "--", color=color, linewidth=1.0, alpha=0.8,
                                    marker="_" if len(pts) == 1 else None, markersize=14)
                    handles.setdefault(name, line)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(max(rates) * 1.5, min(rates) / 1.5)  # sparsity grows to the right
            ax.set_xticks(rates)
            ax.set_xticklabels([_pct_of(r["sparsity"]) for r in rs], rotation=60, fontsize=7)
            ax.minorticks_off()
            ax.set_title(f"{dtype} weights", fontsize=9)
            ax.set_xlabel("sparsity", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(True, which="major", alpha=0.3)
        axes[0][0].set_ylabel("ms (median)", fontsize=8)
        for pick, marker in PICK_MARKERS.items():
            handles[f"auto picked {pick}"] = Line2D([], [], linestyle="", marker=marker, color="black",
                                                     markerfacecolor="white", markersize=7)
        fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
                   frameon=False)
        title = f"spike x weight, M={M} K={K} N={N}, {PATTERNS.get(pattern, pattern)}"
        fig.suptitle(title + (f" ({gpu})" if gpu else ""), fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, f"spike_sweep_{M}x{K}x{N}_{pattern}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths, []


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
    # links relative to where the markdown lives, so the report and its plots move together
    where = os.path.dirname(os.path.abspath(args.out)) if args.out else os.getcwd()
    links, sweep_notes = [], []
    if args.plots:
        sweep_paths, sweep_notes = plot_sweep(data, args.plots)
        links = [os.path.relpath(os.path.abspath(p), where) for p in sweep_paths]
    text = render(data, links, sweep_notes)
    if args.plots:
        paths, notes = plot_networks(data, args.plots)
        if not any(b["extra_info"].get("sweep") for b in data["benchmarks"]):  # else in the sweep's section
            notes = sweep_notes + notes
        text = text.rstrip("\n") + "\n\n" + "".join(f"{note}\n\n" for note in notes)
        text += "".join(f"![{os.path.basename(p)}]({os.path.relpath(os.path.abspath(p), where)})\n" for p in paths)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
