"""Write a study's ``report.json``, ``report.md`` and PNG plots."""
from __future__ import annotations

import json
import os
import statistics

from ..convert import plot_accuracy_vs_T
from .paper import render_paper_section
from .runner import ANN_TOTAL_COST_PER_MAC, ERROR_THRESHOLD_POINTS, MAC_PER_SO_COST

ROWS = [("accuracy", "accuracy", ".4f"), ("recall (macro)", "recall_macro", ".4f"), ("F1 (macro)", "f1_macro", ".4f"),
        ("inference ms/sample", "inference_ms_per_sample", ".4g"), ("peak GPU memory MB", "peak_gpu_memory_mb", ".1f"),
        ("measured W", "measured_watts", ".1f"), ("measured J/sample", "measured_j_per_sample", ".4g"),
        ("estimated J/sample (45nm-fp32, estimate)", "estimated_j_per_sample", ".4g"),
        ("MACs/sample", "macs_per_sample", ".4g"), ("ACs/sample", "acs_per_sample", ".4g"),
        ("parameters", "parameters", "d"), ("model size MB", "model_size_mb", ".3f")]


def _cell(value, spec) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def _models(result: dict) -> dict:
    return {k: result[k] for k in ("ann", "snn", "snn_event", "converted", "converted_event")
            if isinstance(result.get(k), dict)}


def _factor_meaning(factor) -> str:
    if not isinstance(factor, (int, float)) or factor <= 0:
        return ""
    if factor >= 1:
        return f" — the converted SNN costs {factor:.3g}x less than the ANN by this estimate"
    return f" — the converted SNN costs {1 / factor:.3g}x more than the ANN by this estimate"


def _ratio(m: dict, ann: dict, key: str) -> str | None:
    """``m[key] / ann[key]`` as "R x (lo-hi)": the ratio of medians, and the range the two spreads
    allow (lower quartile over upper quartile and back); None when either value is missing."""
    a, b = m.get(key), ann.get(key)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (a, b)):
        return None
    text = f"{a / b:.3g}x"
    sa, sb = m.get(f"{key}_spread"), ann.get(f"{key}_spread")
    if sa and sb and (sa["n"] > 1 or sb["n"] > 1):
        text += f" ({sa['q25'] / sb['q75']:.3g}-{sa['q75'] / sb['q25']:.3g})"
    return text


def _accuracy_difference(m: dict, ann: dict) -> str:
    """Points of accuracy against the ANN, with the 95% interval that sampling the test set alone gives
    (normal approximation, the two evaluations taken as independent: wider than a paired bound)."""
    points = (m["accuracy"] - ann["accuracy"]) * 100
    n = m.get("test_samples") or ann.get("test_samples")
    text = f"{abs(points):.1f} points {'more' if points >= 0 else 'less'} accurate than the ANN"
    if n:
        se = ((m["accuracy"] * (1 - m["accuracy"]) + ann["accuracy"] * (1 - ann["accuracy"])) / n) ** 0.5
        text += f" (±{196 * se:.1f}, 95% interval over {n} test samples)"
    return text


def verdict(result: dict) -> list[str]:
    """One sentence per spiking model against the ANN: accuracy, time, memory, estimated and measured
    energy, each with its spread and whether it is measured or estimated."""
    ann = result.get("ann")
    if not isinstance(ann, dict):
        return []
    out = []
    for key in ("snn", "snn_event", "converted", "converted_event"):
        m = result.get(key)
        if not isinstance(m, dict):
            continue
        parts = [f"{m['name']}: {_accuracy_difference(m, ann)}"]
        time_ratio = _ratio(m, ann, "inference_ms_per_sample")
        if time_ratio:
            n = (m.get("inference_ms_per_sample_spread") or {}).get("n", 1)
            how = f"median of {n} calls each, interquartile range" if n > 1 else "one call each"
            parts.append(f"{time_ratio} its time per sample on {result['device']} (measured, {how})")
        memory = _ratio(m, ann, "peak_gpu_memory_mb")
        parts.append(f"{memory} its peak GPU memory (measured)" if memory else "GPU memory not measured on a CPU run")
        energy = _ratio(m, ann, "estimated_j_per_sample")
        if energy:
            cheaper = m["estimated_j_per_sample"] < ann["estimated_j_per_sample"]
            parts.append(f"{energy} its energy ({'cheaper' if cheaper else 'costlier'}; estimated from operation "
                         "counts x 45nm pJ over several input batches)")
        measured = _ratio(m, ann, "measured_j_per_sample")
        parts.append(f"{measured} its J/sample (measured, NVML)" if measured else
                     "measured energy unavailable on this run")
        out.append("; ".join(parts) + ".")
    return out


def _cpu_note(result: dict) -> list[str]:
    """Threads and load: on a shared CPU the timings vary with the other processes."""
    cpu = result.get("cpu")
    if not isinstance(cpu, dict):
        return []
    loads = [v for v in (cpu.get("load_average_1min"), cpu.get("load_average_1min_after")) if v is not None]
    line = f"CPU: {cpu['threads']} torch threads on {cpu['cores_available']} available cores"
    if loads:
        line += f"; 1-minute load average {loads[0]:.1f}" + (f" before, {loads[-1]:.1f} after" if len(loads) > 1 else "")
        # others' load when we started, plus our own threads, beyond the cores: we were not alone
        if loads[0] + cpu["threads"] > cpu["cores_available"] + 0.5 or loads[-1] > cpu["cores_available"] + 1:
            line += (" — **the CPU was shared with other work: times here can vary several-fold between runs** "
                     "(their spread is given)")
    return [line + ".", ""]


def render_markdown(result: dict, plots: dict) -> str:
    models = _models(result)
    # the answer first: a reader finds the verdict in the report's first lines
    lines = [f"# snnkern compare: {result['preset']}", "", "**Verdict** (spiking models against the ANN):", ""]
    lines += [f"- {line}" for line in verdict(result)] + [""]
    lines += [f"Source: {result['source']}. Dataset: {result['dataset']} ({result['dataset_source']}). "
              f"Device: {result['device']}, GPU: {result['gpu']}.", ""]
    lines += _cpu_note(result)
    if result["filled_defaults"]:
        lines += ["Settings the paper leaves unstated, filled with defaults: " + "; ".join(result["filled_defaults"]), ""]
    names = {k: v.get("name", k) for k, v in models.items()}
    lines += ["| metric | " + " | ".join(names.values()) + " |", "|---|" + "---:|" * len(models)]
    reasons = []  # why a cell is unavailable, each said once
    for label, key, spec in ROWS:
        cells = []
        for m in models.values():
            value = _cell(m.get(key, "—"), spec)
            if isinstance(m.get(f"{key}_spread"), dict) and m[f"{key}_spread"]["n"] > 1:
                sp = m[f"{key}_spread"]
                value += f" ({format(sp['q25'], spec)}–{format(sp['q75'], spec)})"
            if value.startswith("unavailable (") and value.endswith(")"):  # the reason once, below the table
                reason = value[len("unavailable ("):-1]
                if reason not in reasons:
                    reasons.append(reason)
                value = f"unavailable [{reasons.index(reason) + 1}]"
            cells.append(value)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Cells with a range: median (interquartile range) of repeated measurements."]
    lines += [""] + [f"[{i}] unavailable: {reason}" for i, reason in enumerate(reasons, 1)]
    for key in ("ann", "snn"):
        if isinstance(result.get(key), dict):
            secs = sorted(result[key]["training"]["epoch_seconds"])
            lines.append(f"\n{names[key]} training: {len(secs)} epochs, {statistics.median(secs):.3g} s/epoch median "
                         f"(fastest {secs[0]:.3g}, slowest {secs[-1]:.3g}); final validation accuracy "
                         f"{result[key]['training']['val_accuracy'][-1]:.4f}")
    for key, what in (("snn_event", "the trained SNN"), ("converted_event", "the converted SNN, thresholds folded")):
        if isinstance(result.get(key), dict):
            lines.append(f"\n{names[key]}: {what}, with these spike-fed layers made event-driven "
                         f"(snnkern.nn.event_driven): {', '.join(result[key]['event_driven_layers']) or 'none'}")
    for key in ("snn", "converted"):
        if not isinstance(result.get(key), dict):
            lines.append(f"\n{key}: {result.get(key)}")
    if isinstance(result.get("converted"), dict):
        acc = result["converted"]["accuracy_vs_T"]
        lines += ["", "Converted SNN accuracy vs T: " + ", ".join(f"T={t}: {a:.4f}" for t, a in acc.items()),
                  f"Efficiency factor (ANN MAC energy / converted SNN SyOP energy, estimate): "
                  f"{_cell(result['converted']['efficiency_factor'], '.3g')}" + _factor_meaning(
                      result["converted"]["efficiency_factor"])]
        conv = result["converted"]
        if "so_cost_to_error_threshold" in conv:  # Niederlechner 2019's measure
            so, factor = conv["so_cost_to_error_threshold"], conv["efficiency_factor_14x"]
            so_in = conv.get("so_cost_with_input_layer_to_error_threshold", "—")
            factor_in = conv.get("efficiency_factor_14x_with_input_layer", "—")
            lines += [f"Synaptic-operation cost to the error threshold (the first step whose accuracy is within "
                      f"{ERROR_THRESHOLD_POINTS:g} points of the largest T's), per sample at "
                      f"T={conv['T_at_error_threshold']}: {_cell(so, '.4g')} "
                      f"as Niederlechner 2019 counts it (snntoolbox: spikes x fan-out, one per spike into a pooling "
                      f"layer, the first layer on the analog input not counted); that paper's factor, Total-Costs "
                      f"({ANN_TOTAL_COST_PER_MAC} per ANN MAC: {MAC_PER_SO_COST}, plus 1 for the other flop) / "
                      f"SO-Costs: {_cell(factor, '.3g')}. Charging the MACs too (of layers fed real values: the first, "
                      f"on the analog input), {MAC_PER_SO_COST} SOs each every step: {_cell(so_in, '.4g')} "
                      f"per sample, factor {MAC_PER_SO_COST} x ANN MACs / that: {_cell(factor_in, '.3g')}"]
    if "robustness" in result:
        for kind in ("gaussian_noise", "fgsm"):
            lines += ["", f"Robustness, {kind} (level: accuracy):"]
            for model, curves in result["robustness"].items():
                lines.append(f"- {model}: " + ", ".join(f"{k}: {v:.3f}" for k, v in curves[kind].items()))
    lines += render_paper_section(result.get("paper_vs_run"), result)
    lines += [""] + [f"![{name}]({os.path.basename(path)})" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


def _save(fig, out_dir: str, name: str, rect=(0, 0, 1, 1)) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=rect)
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _energy_plot(models: dict, out_dir: str) -> str:
    """Horizontal bars (long names stay readable), one row per model: estimated and, when measured, the
    NVML J/sample, each bar labelled with its value and its multiple of the ANN's."""
    import matplotlib.pyplot as plt

    names = [m["name"] for m in models.values()][::-1]  # the ANN on top
    series = [("estimated (45nm-fp32 op counts)", "estimated_j_per_sample"), ("measured (NVML)", "measured_j_per_sample")]
    series = [(label, [m[key] if isinstance(m[key], float) else None for m in models.values()][::-1])
              for label, key in series]
    series = [(label, values) for label, values in series if any(v for v in values)]
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.45 * len(names) * len(series)))
    values = [v for _, vs in series for v in vs if v]
    lo, hi = min(values), max(values)
    log = hi / lo > 30  # a linear axis would hide the small bars
    height = 0.8 / len(series)
    for i, (label, vs) in enumerate(series):
        ys = [y + (i - (len(series) - 1) / 2) * height for y in range(len(names))]
        base = vs[-1]  # the ANN's value (names were reversed)
        left = lo / 4 if log else 0  # log bars start at the axis edge, set below: none is cut
        bars = ax.barh(ys, [(v or 0) - left for v in vs], left=left, height=height * 0.9, label=label)
        for bar, v in zip(bars, vs):
            if v:
                note = f"{v:.3g} J" + (f"  ({v / base:.3g}x ANN)" if base else "")
                ax.text(bar.get_x() + bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + note,
                        va="center", fontsize=7)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(lo / 4, hi * 40)  # room on the right for the labels
        ax.set_xlabel("J / sample (log scale)")
    else:
        ax.set_xlim(0, hi * 1.6)
        ax.set_xlabel("J / sample")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(series) == 1:
        ax.set_title(f"{series[0][0]} per sample — measured unavailable: no NVML GPU in this run", fontsize=8)
    else:
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _save(fig, out_dir, "energy_per_sample.png")


def _epoch_time_plot(models: dict, out_dir: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for key in ("ann", "snn"):
        if key in models:
            secs = models[key]["training"]["epoch_seconds"]
            ax.plot(range(1, len(secs) + 1), secs, marker="o", label=models[key]["name"])
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_yscale("log")  # an SNN epoch can take 100x an ANN one: both lines stay readable
    ax.set_ylabel("seconds / epoch (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    return _save(fig, out_dir, "time_per_epoch.png")


def make_plots(result: dict, out_dir: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    models = _models(result)
    if isinstance(result.get("converted"), dict):
        path = os.path.join(out_dir, "accuracy_vs_T.png")
        plots["accuracy vs T"] = plot_accuracy_vs_T(result["converted"]["accuracy_vs_T"], path,
                                                    ann_accuracy=result["ann"]["accuracy"])
    if models:
        plots["energy per sample"] = _energy_plot(models, out_dir)
    if "ann" in models or "snn" in models:
        plots["time per epoch"] = _epoch_time_plot(models, out_dir)
    if "robustness" in result:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, kind, label in zip(axes, ("gaussian_noise", "fgsm"), ("noise sigma", "FGSM epsilon")):
            for model, curves in result["robustness"].items():
                ax.plot([float(k) for k in curves[kind]], [100 * v for v in curves[kind].values()], marker=".",
                        label=model.upper())
            ax.set_xlabel(label)
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(0, 102)  # from zero: a zoomed axis makes a small drop look like a collapse
            ax.grid(alpha=0.3)
        # one legend for both panels, above them: inside, it covered the curves
        fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=2, frameon=False)
        plots["robustness"] = _save(fig, out_dir, "robustness.png", rect=(0, 0, 1, 0.92))
    return plots


def write_report(result: dict, out_dir: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    plots = make_plots(result, out_dir)
    paths = {"json": os.path.join(out_dir, "report.json"), "markdown": os.path.join(out_dir, "report.md")}
    with open(paths["json"], "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(paths["markdown"], "w") as f:
        f.write(render_markdown(result, plots))
    return {**paths, **plots}
