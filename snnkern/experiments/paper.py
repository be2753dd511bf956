"""What each seed paper published, and how a run compares with it.

A preset carries ``PaperFigure``s — one published number each, with the table it comes from — and a
one-line description of the paper's setup. ``compare_with_paper`` puts them beside the same metric of
a run (``report.json`` ``paper_vs_run``; a table in ``report.md``), with the run/paper ratio.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

# metric -> (label, how to read it from a run's model entry)
METRICS = {
    "accuracy": ("test accuracy", lambda m: m.get("accuracy")),
    "recall_macro": ("test recall (macro)", lambda m: m.get("recall_macro")),
    "f1_macro": ("test F1 (macro)", lambda m: m.get("f1_macro")),
    "inference_ms_per_sample": ("test time, ms/sample", lambda m: m.get("inference_ms_per_sample")),
    "measured_watts": ("power while testing, W", lambda m: m.get("measured_watts")),
    "epoch_seconds": ("training s/epoch (mean)", lambda m: _mean(m.get("training", {}).get("epoch_seconds"))),
    "best_val_accuracy": ("best validation accuracy", lambda m: _max(m.get("training", {}).get("val_accuracy"))),
    "train_seconds": ("training time, s (all epochs)", lambda m: _sum(m.get("training", {}).get("epoch_seconds"))),
    "model_size_mb": ("model size, MB (parameters)", lambda m: m.get("model_size_mb")),
    "macs_per_sample": ("MACs per sample", lambda m: m.get("macs_per_sample")),
    "acs_per_sample": ("ACs per sample", lambda m: m.get("acs_per_sample")),
    "estimated_j_per_sample": ("estimated energy, J/sample", lambda m: m.get("estimated_j_per_sample")),
    "measured_j_per_sample": ("measured energy, J/sample", lambda m: m.get("measured_j_per_sample")),
    "macs_millions": ("ANN MACs per sample, millions", lambda m: _scaled(m.get("macs_per_sample"), 1e-6)),
    "so_cost_millions": ("SO cost to the error threshold (spikes x fan-out, input layer not counted), millions",
                         lambda m: _scaled(m.get("so_cost_to_error_threshold"), 1e-6)),
    "efficiency_factor_14x": ("efficiency factor (ANN Total-Costs, 15 per MAC / SNN SO cost)",
                              lambda m: m.get("efficiency_factor_14x")),
}
# the converted SNN's accuracy at a given T (its accuracy_vs_T curve): accuracy_T20, accuracy_T40, ...
for _t in (5, 10, 20, 25, 40, 50, 100, 200):
    METRICS[f"accuracy_T{_t}"] = (f"test accuracy at T={_t}", lambda m, t=_t: _at_T(m.get("accuracy_vs_T"), t))


def _scaled(value, factor):
    return value * factor if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _at_T(curve, t):
    if not isinstance(curve, dict):
        return None
    return curve.get(t, curve.get(str(t)))


def _sum(values):
    return sum(values) if values else None


def _mean(values):
    return sum(values) / len(values) if values else None


def _max(values):
    return max(values) if values else None


@dataclass(frozen=True)
class PaperFigure:
    model: str  # the run's model entry it compares with: "ann", "snn", "converted"
    metric: str  # a key of METRICS
    value: float
    where: str  # the table or figure of the paper
    note: str = ""  # how the paper's number was turned into this metric, if it was
    dataset: str = ""  # the dataset it was measured on, when a preset carries figures of several

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown paper metric {self.metric!r}; one of {sorted(METRICS)}")


def compare_with_paper(result: dict, figures, setup: str) -> dict:
    """Rows of paper value, this run's value and their ratio (None where the run has no such number).

    Figures tagged with a dataset are kept for the run's dataset, or, when the run used an offline
    stand-in, for the dataset the preset names."""
    datasets = {f.dataset for f in figures if f.dataset}
    if datasets:
        ran = result.get("dataset")
        wanted = ran if ran in datasets else result.get("settings", {}).get("dataset")
        figures = [f for f in figures if not f.dataset or f.dataset == wanted]
    rows = []
    for f in figures:
        model = result.get(f.model)
        run = METRICS[f.metric][1](model) if isinstance(model, dict) else None
        run = run if isinstance(run, (int, float)) and not isinstance(run, bool) else None
        rows.append({**asdict(f), "label": METRICS[f.metric][0],
                     "model_name": model.get("name", f.model) if isinstance(model, dict) else f.model,
                     "run": run, "ratio": run / f.value if run is not None and f.value else None})
    return {"setup": setup, "rows": rows}


def render_paper_section(comparison: dict, result: dict) -> list[str]:
    """Markdown lines: the table and the differences that matter."""
    if not comparison or not comparison["rows"]:
        return ["", "No published figures are attached to this preset."]
    lines = ["", "## The paper beside this run", "",
             "| model | metric | paper | this run | run / paper | paper source |", "|---|---|---:|---:|---:|---|"]
    for r in comparison["rows"]:
        run = "—" if r["run"] is None else f"{r['run']:.4g}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3g}"
        where = r["where"] + (f" ({r['note']})" if r["note"] else "")
        lines.append(f"| {r['model_name']} | {r['label']} | {r['value']:.4g} | {run} | {ratio} | {where} |")
    settings = result.get("settings", {})
    lines += ["", "Differences that matter:",
              f"- data: this run {result.get('dataset')} ({result.get('dataset_source')}); the paper: {comparison['setup']}",
              f"- device: this run {result.get('device')} (GPU: {result.get('gpu')}); timings and watts are the "
              f"machine's, so their ratios compare machines as much as models",
              f"- training: this run {settings.get('epochs', '?')} epochs, batch {settings.get('batch_size', '?')}, "
              + (f"SNN trained at T={settings.get('T', '?')}" if settings.get("train_snn", True) else "no SNN trained")
              + (f"; converted SNN run at T={', '.join(str(t) for t in settings.get('T_list', ()))}"
                 if settings.get("convert") else "")]
    return lines
