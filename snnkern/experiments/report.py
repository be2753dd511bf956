"""Write a study's ``report.json``, ``report.md`` and PNG plots."""
from __future__ import annotations

import json
import os

from ..convert import plot_accuracy_vs_T
from .paper import render_paper_section

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


def verdict(result: dict) -> list[str]:
    """One sentence per spiking model: its accuracy, time per sample and energy against the ANN's."""
    ann = result.get("ann")
    if not isinstance(ann, dict):
        return []
    out = []
    for key in ("snn", "snn_event", "converted", "converted_event"):
        m = result.get(key)
        if not isinstance(m, dict):
            continue
        points = (m["accuracy"] - ann["accuracy"]) * 100
        parts = [f"{m['name']}: {abs(points):.1f} points {'more' if points >= 0 else 'less'} accurate than the ANN"]
        if ann["inference_ms_per_sample"]:
            ratio = m["inference_ms_per_sample"] / ann["inference_ms_per_sample"]
            parts.append(f"{ratio:.3g}x its time per sample on {result['device']}")
        if ann["estimated_j_per_sample"]:
            ratio = m["estimated_j_per_sample"] / ann["estimated_j_per_sample"]
            parts.append(f"{ratio:.3g}x its estimated energy ({'cheaper' if ratio < 1 else 'costlier'}, "
                         "operation counts x 45nm pJ)")
        measured = m.get("measured_j_per_sample"), ann.get("measured_j_per_sample")
        if all(isinstance(v, float) and v > 0 for v in measured):
            parts.append(f"{measured[0] / measured[1]:.3g}x its measured J/sample (NVML)")
        else:
            parts.append("measured energy unavailable on this run")
        out.append("; ".join(parts) + ".")
    return out


def render_markdown(result: dict, plots: dict) -> str:
    models = _models(result)
    lines = [f"# snnkern compare: {result['preset']}", "",
             f"Source: {result['source']}. Dataset: {result['dataset']} ({result['dataset_source']}). "
             f"Device: {result['device']}, GPU: {result['gpu']}.", ""]
    if result["filled_defaults"]:
        lines += ["Settings the paper leaves unstated, filled with defaults: " + "; ".join(result["filled_defaults"]), ""]
    names = {k: v.get("name", k) for k, v in models.items()}
    lines += ["**Verdict** (spiking models against the ANN):", ""] + [f"- {line}" for line in verdict(result)] + [""]
    lines += ["| metric | " + " | ".join(names.values()) + " |", "|---|" + "---:|" * len(models)]
    reasons = []  # why a cell is unavailable, each said once
    for label, key, spec in ROWS:
        cells = []
        for m in models.values():
            value = _cell(m.get(key, "—"), spec)
            if value.startswith("unavailable (") and value.endswith(")"):  # the reason once, below the table
                reason = value[len("unavailable ("):-1]
                if reason not in reasons:
                    reasons.append(reason)
                value = f"unavailable [{reasons.index(reason) + 1}]"
            cells.append(value)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [""] + [f"[{i}] unavailable: {reason}" for i, reason in enumerate(reasons, 1)]
    for key in ("ann", "snn"):
        if isinstance(result.get(key), dict):
            secs = result[key]["training"]["epoch_seconds"]
            lines.append(f"\n{names[key]} training: {len(secs)} epochs, {sum(secs) / len(secs):.3g} s/epoch mean; "
                         f"final validation accuracy {result[key]['training']['val_accuracy'][-1]:.4f}")
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
    if "robustness" in result:
        for kind in ("gaussian_noise", "fgsm"):
            lines += ["", f"Robustness, {kind} (level: accuracy):"]
            for model, curves in result["robustness"].items():
                lines.append(f"- {model}: " + ", ".join(f"{k}: {v:.3f}" for k, v in curves[kind].items()))
    lines += render_paper_section(result.get("paper_vs_run"), result)
    lines += [""] + [f"![{name}]({os.path.basename(path)})" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


def _save(fig, out_dir: str, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = [m["name"] for m in models.values()]
    est = [m["estimated_j_per_sample"] for m in models.values()]
    meas = [m["measured_j_per_sample"] if isinstance(m["measured_j_per_sample"], float) else 0.0
            for m in models.values()]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], est, width=0.4, label="estimate (45nm-fp32)")
    if any(meas):
        ax.bar([x + 0.2 for x in xs], meas, width=0.4, label="measured (NVML)")
    else:
        ax.set_title("measured energy unavailable on this run (no NVML GPU)", fontsize=9)
    ax.set_xticks(list(xs), names, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("J / sample")
    ax.legend(fontsize=8)
    plots["energy per sample"] = _save(fig, out_dir, "energy_per_sample.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("ann", "snn"):
        if key in models:
            secs = models[key]["training"]["epoch_seconds"]
            ax.plot(range(1, len(secs) + 1), secs, marker="o", label=models[key]["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds / epoch")
    ax.legend()
    plots["time per epoch"] = _save(fig, out_dir, "time_per_epoch.png")
    if "robustness" in result:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for ax, kind, label in zip(axes, ("gaussian_noise", "fgsm"), ("noise sigma", "FGSM epsilon")):
            for model, curves in result["robustness"].items():
                ax.plot(list(curves[kind]), list(curves[kind].values()), marker=".", label=model.upper())
            ax.set_xlabel(label)
            ax.set_ylabel("accuracy")
            ax.legend()
        plots["robustness"] = _save(fig, out_dir, "robustness.png")
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
