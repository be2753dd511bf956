"""The one-page summary of a GPU session (``bench/gpu_session.sh``): what a person reads in 30 seconds.

    python -m bench.summary RUN_DIR [--md summary.md] [--json summary.json]

RUN_DIR holds what the session wrote: ``stages.tsv`` (one line per stage: name, status, exit code,
seconds, cap, note), ``session.json`` (mode, budget, run name, commit), the pytest-benchmark JSONs
(``*.json``) and the junit XMLs (``*.xml``). The summary states, from this run alone: which stages
failed or timed out and the test counts; the copy bandwidth; per LIF kernel and dtype the median ms,
GB/s as a fraction of the copy bandwidth and each peer's time over snnkern's (> 1: snnkern faster);
what autograd keeps for backward; the issue's targets, each met / missed / unavailable (with why);
network step times over the dense ANN's with peak memory, W and J/sample (measured, NVML); the
spike-accumulation and host-overhead ratios; issue 16's targets from the spike x weight sweep, each beside
the byte model's prediction. ``summary.json`` holds the same numbers.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import xml.etree.ElementTree as ET

LIF_PEERS = ["snnkern_cuda", "snnkern_sj", "snnkern_packed", "eager", "compile", "snntorch", "spikingjelly"]
FAILING = {"failed", "timeout", "skipped"}  # "unsupported" (sanitizer on this runtime) does not fail a run


# ---- reading -------------------------------------------------------------------------------------------


def read_stages(path: str) -> list[dict]:
    stages = []
    if not os.path.exists(path):
        return stages
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5 or parts[0] == "stage":
                continue
            name, status, rc, seconds, cap = parts[:5]
            stages.append({"stage": name, "status": status, "rc": _int(rc), "seconds": _int(seconds),
                           "cap": _int(cap), "note": parts[5] if len(parts) > 5 else ""})
    return stages


def _int(text):
    try:
        return int(text)
    except ValueError:
        return None


def read_junit(path: str) -> dict:
    """Test counts of one junit XML (pytest's), with up to 10 failing test ids."""
    counts = {"file": os.path.basename(path), "tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0,
              "failures": []}
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        counts["unreadable"] = f"{type(exc).__name__}: {exc}"
        return counts
    for case in root.iter("testcase"):
        counts["tests"] += 1
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            counts["failed" if "failure" in kinds else "errors"] += 1
            if len(counts["failures"]) < 10:
                counts["failures"].append(f"{case.get('classname', '')}::{case.get('name', '')}")
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def read_records(run_dir: str) -> list[dict]:
    records = []
    for path in sorted(glob.glob(os.path.join(run_dir, "*.json"))):
        if os.path.basename(path) in ("session.json", "summary.json"):
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        for b in data.get("benchmarks", []) if isinstance(data, dict) else []:
            records.append(dict(b.get("extra_info", {}), group=b.get("group"), name=b.get("name"),
                                source=os.path.basename(path)))
    return records


# ---- computing -----------------------------------------------------------------------------------------


def _ratio(num, den):
    return num / den if isinstance(num, (int, float)) and isinstance(den, (int, float)) and den else None


def lif_rows(records: list[dict], copy_gbs: float | None) -> list[dict]:
    """One row per (mode, T, N, dtype): snnkern's time, bandwidth, and each peer's time over it."""
    by_key: dict = {}
    for r in records:
        if r.get("mode") in ("fwd", "fwd_bwd") and r.get("impl") and "T" in r and "N" in r and "network" not in r \
                and str(r.get("group", "")).startswith("lif "):
            by_key.setdefault((r["mode"], r["T"], r["N"], r.get("dtype")), {})[r["impl"]] = r
    rows = []
    for (mode, T, N, dtype), impls in sorted(by_key.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0], kv[0][3])):
        ours = impls.get("snnkern")
        ms = ours.get("ms_median") if ours else None
        gbs = ours.get("gb_per_s") if ours else None
        rows.append({"mode": mode, "T": T, "N": N, "dtype": dtype, "ms": ms, "gb_per_s": gbs,
                     "frac_copy": _ratio(gbs, copy_gbs), "peak_mib": ours.get("peak_mib") if ours else None,
                     "peers": {p: _ratio(impls[p].get("ms_median"), ms) for p in LIF_PEERS if p in impls},
                     "peer_ms": {p: impls[p].get("ms_median") for p in LIF_PEERS if p in impls}})
    return rows


def _find(records, **match):
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _target(name, value, target, op, why_missing, unit="x"):
    if value is None:
        return {"target": name, "value": None, "goal": f"{op} {target}{unit}", "status": "unavailable",
                "why": why_missing}
    met = value >= target if op == ">=" else value <= target
    return {"target": name, "value": round(value, 3), "goal": f"{op} {target}{unit}", "status": "met" if met else
            "MISSED", "why": ""}


def targets(records: list[dict], copy_gbs: float | None) -> list[dict]:
    """Issue 13's targets at LIF T=16, N=2^22 and the spiking CNN at T=4, from this run's numbers."""
    T, N = 16, 2**22

    def ms(impl, mode, dtype="fp32"):
        r = _find(records, impl=impl, mode=mode, T=T, N=N, dtype=dtype)
        return r.get("ms_median") if r and str(r.get("group", "")).startswith("lif ") else None

    def rec(impl, mode, dtype="fp32"):
        r = _find(records, impl=impl, mode=mode, T=T, N=N, dtype=dtype)
        return r if r and str(r.get("group", "")).startswith("lif ") else None

    no_row = "no LIF row at T=16, N=2^22 in this run; a GPU session records it"
    sj_fb = ms("spikingjelly", "fwd_bwd")
    ours_fb = ms("snnkern_sj", "fwd_bwd") or ms("snnkern", "fwd_bwd")
    fb = rec("snnkern", "fwd_bwd")
    fwd = rec("snnkern", "fwd")
    out = [
        _target("LIF fp32 fwd+bwd: SpikingJelly time / snnkern time", _ratio(sj_fb, ours_fb), 1.6, ">=",
                no_row if ours_fb is None else "no SpikingJelly row: its wheel not installed?"),
        _target("LIF fp32 fwd+bwd: GB/s at our byte count / copy GB/s",
                _ratio(fb.get("gb_per_s"), copy_gbs) if fb else None, 0.9, ">=", no_row, ""),
        _target("LIF fp32 fwd: GB/s / copy GB/s", _ratio(fwd.get("gb_per_s"), copy_gbs) if fwd else None, 0.9, ">=",
                no_row, ""),
        _target("LIF fwd: fp32 time / bf16 time", _ratio(ms("snnkern", "fwd"), ms("snnkern", "fwd", "bf16")), 1.8,
                ">=", no_row),
        _target("LIF fwd+bwd: fp32 time / bf16 time",
                _ratio(ms("snnkern", "fwd_bwd"), ms("snnkern", "fwd_bwd", "bf16")), 1.8, ">=", no_row),
        _target("LIF fwd: packed-spike time / fp32-spike time", _ratio(ms("snnkern_packed", "fwd"), ms("snnkern", "fwd")),
                0.7, "<=", no_row),
    ]
    for impl in ("snnkern", "snnkern_cuda"):
        r = _find(records, impl=impl, mode="fwd_grad", dtype="fp32")
        value = r.get("saved_bytes_per_element") if r else None
        out.append(_target(f"saved for backward, {impl} fp32 (B/element)", value, 4, "<=",
                           "no CUDA memory statistics; a GPU session measures them" if r else
                           f"no {impl} saved-bytes row in this run", " B"))
    snn = _find(records, network="vgg-cnn-32x32", kind="snn", T=4, mode="train_step")
    sj = _find(records, network="vgg-cnn-32x32", kind="spikingjelly", T=4, mode="train_step")
    why = "no spiking-CNN train-step rows for both snnkern and SpikingJelly at T=4 in this run"
    out.append(_target("spiking CNN T=4 train step: snnkern time / SpikingJelly time",
                       _ratio(snn and snn.get("ms_median"), sj and sj.get("ms_median")), 0.75, "<=", why))
    out.append(_target("spiking CNN T=4 train step: snnkern peak memory / SpikingJelly's",
                       _ratio(snn and snn.get("peak_mib"), sj and sj.get("peak_mib")), 0.5, "<=",
                       why if not (snn and sj) else "no CUDA memory statistics; a GPU session measures them"))
    return out


def network_rows(records: list[dict]) -> list[dict]:
    """Network, swap and conversion groups: each row's time over its group's baseline (the ANN, or the
    unswapped model), with peak memory and measured energy."""
    groups: dict = {}
    for r in records:
        if r.get("network") or str(r.get("group", "")).startswith(("swap:", "converted")):
            groups.setdefault(r["group"], []).append(r)
    rows = []
    for group, rs in groups.items():
        base = next((r for r in rs if r.get("baseline")), None)
        for r in sorted(rs, key=lambda r: (not r.get("baseline"), str(r.get("impl")))):
            rows.append({"group": group, "impl": r.get("impl"), "ms": r.get("ms_median"),
                         "x_baseline": _ratio(r.get("ms_median"), base and base.get("ms_median")),
                         "baseline": base.get("impl") if base else None, "peak_mib": r.get("peak_mib"),
                         "watts": r.get("watts"), "j_per_sample": r.get("j_per_sample"),
                         "energy": r.get("energy")})
    return rows


def spike_linear_rows(records: list[dict]) -> list[dict]:
    groups: dict = {}
    for r in records:
        if str(r.get("group", "")).startswith("spike_linear"):
            groups.setdefault(r["group"], {})[r.get("impl")] = r
    rows = []
    for group, impls in groups.items():
        ours = {k: v for k, v in impls.items() if k and k.split("_")[0] in ("tiles", "gather", "auto")}
        if not ours:
            continue
        best_name, best = min(ours.items(), key=lambda kv: kv[1].get("ms_median") or float("inf"))
        rows.append({"group": group, "best": best_name, "ms": best.get("ms_median"),
                     "vs": {k: _ratio(v.get("ms_median"), best.get("ms_median")) for k, v in impls.items()
                            if k and k.split("_")[0] in ("dense", "csr")}})
    return rows


# ---- the spike x weight sweep (bench/test_spike_sweep.py) and issue 16's targets ------------------------

TARGET_SHAPE = (8192, 4096, 4096)  # M, K, N: the layer issue 16's targets are stated at
# per TF32 mode: the name suffix, the cuBLAS peer (a plain matmul on the dense spikes), spike_linear's "dense"
# algorithm (the same cuBLAS, fed the bits auto gets: it unpacks them) and auto; auto is compared with the
# fastest of spike_linear's {dense, gather, tiles} (gather and tiles do not read torch's TF32 switch: their
# rows serve both modes), gather with the cuBLAS peer
SWEEP_MODES = (("", "cublas", "dense", "auto"), (" TF32", "cublas_tf32", "dense_tf32", "auto_tf32"))
_MODEL_KEY = {"gather": "gather_model_ms", "tiles": "tiles_model_ms", "dense": "dense_model_ms"}


def _shape(r) -> tuple:
    return r.get("M"), r.get("K"), r.get("N")


def sweep_rows(records: list[dict]) -> list[dict]:
    """One row per (layer, spike pattern, weight dtype, TF32 mode, sparsity) of the sweep: each impl's
    median ms, the fastest of spike_linear's {dense, gather, tiles} (the cuBLAS peer stands in for "dense"
    in a run without that row), auto's time over it and its pick, gather's time over its L2-bound ideal
    and the cuBLAS peer's over gather's, and what the byte model predicts for the same (the model's time
    of its own pick over its least time)."""
    by: dict = {}
    for r in records:
        if r.get("sweep") == "spike_linear" and isinstance(r.get("ms_median"), (int, float)):
            key = (_shape(r), r.get("pattern"), r.get("dtype"), r.get("sparsity"))
            by.setdefault(key, {})[r.get("impl")] = r
    order = {"fp16": 0, "bf16": 1, "fp32": 2}
    rows = []
    for (shape, pattern, dtype, sparsity), impls in by.items():
        for suffix, cublas, dense, auto in SWEEP_MODES:
            if not {cublas, dense, auto} & set(impls):
                continue
            dense_row = dense if dense in impls else cublas
            ms = {k: impls[k]["ms_median"] for k in ("gather", "tiles", dense_row) if k in impls}
            fastest = min(ms, key=ms.get) if ms else None
            a = impls.get(auto)
            model_times = {k: a[v] for k, v in _MODEL_KEY.items() if a and isinstance(a.get(v), (int, float))}
            model_ratio = (_ratio(model_times.get(a.get("model_pick")), min(model_times.values()))
                           if model_times else None)
            g = impls.get("gather")
            any_row = next(iter(impls.values()))
            rows.append({
                "M": shape[0], "K": shape[1], "N": shape[2], "pattern": pattern, "dtype": dtype + suffix,
                "gpu": not str(any_row.get("gpu") or "none").startswith("none"),
                "sparsity": sparsity, "rate": any_row.get("rate"),
                "ms": {{cublas: "cublas", dense: "dense", auto: "auto"}.get(k, k): v["ms_median"]
                       for k, v in impls.items() if k in ("gather", "tiles", cublas, dense, auto, "csr", "auto_norate")
                       and (suffix == "" or k not in ("csr", "auto_norate"))},
                "fastest": "dense" if fastest == dense_row else fastest, "fastest_ms": ms.get(fastest),
                "auto_pick": a.get("auto_pick") if a else None,
                "auto_over_fastest": _ratio(a and a["ms_median"], ms.get(fastest)),
                "model_auto_over_best": model_ratio, "model_best": a.get("model_best") if a else None,
                "gather_frac_ideal": _ratio(g and g.get("gather_ideal_ms"), g and g["ms_median"]),
                "model_gather_frac_ideal": _ratio(g and g.get("gather_ideal_ms"), g and g.get("gather_model_ms")),
                "dense_over_gather": _ratio(impls[cublas]["ms_median"] if cublas in impls else None,
                                            g and g["ms_median"]),
                "model_dense_over_gather": _ratio(impls[cublas].get("dense_model_ms") if cublas in impls else None,
                                                  g and g.get("gather_model_ms")),
                "csr_over_auto": _ratio(impls["csr"]["ms_median"] if "csr" in impls and suffix == "" else None,
                                        a and a["ms_median"]),
            })
    # each TF32 mode's rows together, after the same dtype's without it
    return sorted(rows, key=lambda r: (-r["M"] * r["K"] * r["N"], (r["M"], r["K"], r["N"]), r["pattern"] != "random",
                                       r["pattern"], order.get(r["dtype"].split()[0], 9), r["dtype"], r["sparsity"]))


def _where(row) -> str:
    return (f"M={row['M']} K={row['K']} N={row['N']} {row['pattern']} {row['dtype']} "
            f"sparsity {100 * row['sparsity']:g}%")


def _extreme(rows, key, worst=min):
    """The row with the worst value of ``key`` (min or max) among rows that have it, or None."""
    have = [r for r in rows if r.get(key) is not None]
    return worst(have, key=lambda r: r[key]) if have else None


def model_predictions(shape=TARGET_SHAPE, sparsities=(0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)) -> dict:
    """What the byte model predicts for issue 16's targets at ``shape`` with independent random spikes,
    before any run (each target's "model predicts" when the run has no row for it)."""
    from .spike_model import expected_gather_rows, model

    M, K, N = shape
    m = {(dtype, tf32, s): model(M, K, N, dtype, tf32, 1.0 - s, expected_gather_rows(M, K, 1.0 - s))
         for dtype, tf32 in (("fp16", False), ("bf16", False), ("fp32", False), ("fp32", True)) for s in sparsities}

    def auto_ratio(r):
        times = {k: r[v] for k, v in _MODEL_KEY.items()}
        return times[r["model_pick"]] / min(times.values())

    return {"auto": max(auto_ratio(r) for r in m.values()),
            "gather": min(r["gather_ideal_ms"] / r["gather_model_ms"] for r in m.values()),
            "fp16": min(r["dense_model_ms"] / r["gather_model_ms"] for (d, _, s), r in m.items()
                        if d == "fp16" and s >= 0.995),
            "tf32": min(r["dense_model_ms"] / r["gather_model_ms"] for (d, tf, s), r in m.items() if tf and s >= 0.98),
            "saved": 4 * K / (4 * -(-K // 32))}


def sweep_targets(records: list[dict], rows: list[dict] | None = None) -> list[dict]:
    """Issue 16's targets from the sweep's rows (random spikes), each with the byte model's prediction
    for the same rows beside it, and where the worst case is."""
    rows = sweep_rows(records) if rows is None else rows
    # timings from a GPU only: a CPU run times the Triton interpreter, which says nothing about speed
    rand = [r for r in rows if r["pattern"] == "random" and r["gpu"]]
    big = [r for r in rand if (r["M"], r["K"], r["N"]) == TARGET_SHAPE]
    no_sweep = ("no spike sweep rows in this run (bench/test_spike_sweep.py)" if not rows else
                "no GPU sweep rows in this run: a CPU run times the Triton interpreter" if not rand else "")
    no_big = no_sweep or "no sweep rows at M=8192 K=N=4096 in this run; a GPU run records them"
    out = []
    predicted = model_predictions()  # at the issue's layer, random spikes: where the run has no row

    def add(name, row, key, goal, op, why, model=None, unit="x", fallback=None):
        t = _target(name, row[key] if row else None, goal, op, why, unit)
        model = model if row else predicted.get(fallback, model)
        t["model"] = round(model, 3) if isinstance(model, (int, float)) else model
        t["where"] = _where(row) if row else ""
        out.append(t)

    worst = _extreme(rand, "auto_over_fastest", max)
    model_worst = _extreme(rand, "model_auto_over_best", max)
    add("auto (rate given) / fastest of {dense, gather, tiles}, worst layer, dtype and sparsity", worst,
        "auto_over_fastest", 1.1, "<=", no_sweep or "no auto rows beside gather, tiles and cuBLAS",
        model_worst and model_worst["model_auto_over_best"], fallback="auto")
    hi = [r for r in big if r["sparsity"] >= 0.9 and not r["dtype"].endswith("TF32")]
    row = _extreme(hi, "gather_frac_ideal")
    add("gather: L2-bound ideal / its time, worst at >= 90% sparsity", row, "gather_frac_ideal", 0.5, ">=", no_big,
        row and row["model_gather_frac_ideal"], "", fallback="gather")
    for dtype, at, name, key in (("fp16", 0.995, "fp16 cuBLAS", "fp16"), ("fp32 TF32", 0.98, "TF32 cuBLAS", "tf32")):
        sel = [r for r in big if r["dtype"] == dtype and r["sparsity"] >= at]
        row = _extreme(sel, "dense_over_gather")
        add(f"{name} time / gather time, worst at >= {100 * at:g}% sparsity", row, "dense_over_gather", 1.0, ">=",
            no_big if not big else f"no {dtype} gather and cuBLAS rows at >= {100 * at:g}%",
            row and row["model_dense_over_gather"], fallback=key)
    row = _extreme([r for r in big if r["sparsity"] >= 0.9], "csr_over_auto")
    add("torch CSR time / auto time, worst at >= 90% sparsity", row, "csr_over_auto", 3.0, ">=",
        no_big if not big else "no torch CSR rows (this torch's sparse kernels may lack the dtype)", "not modelled")
    saved = [r for r in records if r.get("sweep") == "saved" and r.get("saved_ratio_fp32") is not None]
    s = min(saved, key=lambda r: r["saved_ratio_fp32"]) if saved else None
    t = _target("saved for backward: fp32 activations / bits, worst layer", s and s["saved_ratio_fp32"], 30, ">=",
                "no saved-for-backward rows in this run (bench/test_spike_sweep.py::test_saved_for_backward)")
    t["model"] = round(s["model_saved_ratio_fp32"] if s and s.get("model_saved_ratio_fp32") else predicted["saved"], 3)
    t["where"] = f"M={s['M']} K={s['K']} N={s['N']}" if s else ""
    out.append(t)
    return out


def summarize(run_dir: str) -> dict:
    session = {}
    if os.path.exists(os.path.join(run_dir, "session.json")):
        with open(os.path.join(run_dir, "session.json")) as f:
            session = json.load(f)
    stages = read_stages(os.path.join(run_dir, "stages.tsv"))
    junits = [read_junit(p) for p in sorted(glob.glob(os.path.join(run_dir, "*.xml")))]
    records = read_records(run_dir)
    meta = next((r for r in records if r.get("gpu")), {})
    copy = next((r for r in records if r.get("impl") == "copy"), None)
    copy_gbs = copy.get("gb_per_s") if copy else None
    overhead = next((r for r in records if r.get("ratios") is not None), None)
    sweep = sweep_rows(records)
    return {
        "run": session.get("run_name"), "mode": session.get("mode"), "budget_s": session.get("budget_s"),
        "elapsed_s": session.get("elapsed_s"),
        "meta": {k: meta.get(k) for k in ("gpu", "driver", "torch", "triton", "commit", "date")}
                | {"commit": meta.get("commit") or session.get("commit")},  # the session's, without records
        "stages": stages,
        "failed_stages": [s["stage"] for s in stages if s["status"] in FAILING],
        "tests": junits, "copy_gb_per_s": copy_gbs,
        "lif": lif_rows(records, copy_gbs), "targets": targets(records, copy_gbs),
        "networks": network_rows(records), "spike_linear": spike_linear_rows(records),
        "sweep": sweep, "sweep_targets": sweep_targets(records, sweep),
        "overhead_ratios": overhead.get("ratios") if overhead else [],
        "records": len(records),
    }


# ---- rendering -----------------------------------------------------------------------------------------


def _f(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def _gbs(value):
    """Three significant digits: a CPU run's 0.4 GB/s must not print as 0."""
    return "—" if value is None else format(value, ".0f" if value >= 100 else ".3g")


def _pct(fraction):
    return "—" if fraction is None else f"{100 * fraction:.0f}%"


def _x(value):
    return "—" if value is None else f"{value:.2f}x"


def render(s: dict) -> str:
    m = s["meta"]
    lines = [f"# GPU session {s.get('run') or ''} ({s.get('mode') or '?'})", "",
             f"GPU: {m.get('gpu') or 'n/a'} · driver {m.get('driver') or 'n/a'} · torch {m.get('torch') or 'n/a'} · "
             f"triton {m.get('triton') or 'n/a'} · commit {m.get('commit') or 'n/a'} · {m.get('date') or ''}", ""]
    failed = s["failed_stages"]
    took = f" in {s['elapsed_s']} s of a {s['budget_s']} s budget" if s.get("elapsed_s") is not None else ""
    lines += [f"**{'FAILED: ' + ', '.join(failed) if failed else 'All stages passed'}**{took}.", ""]
    lines += ["| stage | status | s / cap | note |", "|---|---|---:|---|"]
    lines += [f"| {st['stage']} | {st['status']} | {st['seconds']} / {st['cap']} | {st['note']} |" for st in s["stages"]]
    lines.append("")
    for t in s["tests"]:
        line = (f"Tests ({t['file']}): {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
                f"{t['skipped']} skipped of {t['tests']}")
        if t.get("unreadable"):
            line += f" (unreadable: {t['unreadable']})"
        lines.append(line + (": " + ", ".join(f"`{f}`" for f in t["failures"]) if t["failures"] else "") + ".")
    if not s["tests"]:
        lines.append("Tests: no junit XML in this run.")
    lines += ["", f"Copy bandwidth (same run): **{_gbs(s['copy_gb_per_s'])} GB/s**.", ""]
    if any(r.get("peak_mib") is not None for r in s["lif"] + s["networks"]):
        from .report import PEAK_NOTE
        lines += [f"{PEAK_NOTE}.", ""]
    if s["lif"]:
        peers = [p for p in LIF_PEERS if any(p in r["peers"] for r in s["lif"])]
        lines += ["## LIF kernels (snnkern; peers as their time / snnkern's: > 1 means snnkern is faster)", "",
                  "| mode | T | N | dtype | ms | GB/s | of copy | peak MiB | " + " | ".join(peers) + " |",
                  "|---|---:|---:|---|---:|---:|---:|---:|" + "---:|" * len(peers)]
        for r in s["lif"]:
            lines.append(f"| {r['mode']} | {r['T']} | {r['N']} | {r['dtype']} | {_f(r['ms'])} | {_gbs(r['gb_per_s'])}"
                         f" | {_pct(r['frac_copy'])} | {_f(r['peak_mib'], '.0f')} | "
                         + " | ".join(_x(r["peers"].get(p)) for p in peers) + " |")
        lines.append("")
    lines += ["## Targets (issue 13)", "", "| target | value | goal | status |", "|---|---:|---|---|"]
    for t in s["targets"]:
        status = t["status"] + (f" ({t['why']})" if t["why"] else "")
        lines.append(f"| {t['target']} | {_f(t['value'])} | {t['goal']} | {status} |")
    lines.append("")
    lines += ["## Targets (issue 16: spike x weight sweep; the byte model's prediction beside each)", "",
              "| target | value | goal | model predicts | status | worst at |", "|---|---:|---|---:|---|---|"]
    for t in s["sweep_targets"]:
        status = t["status"] + (f" ({t['why']})" if t["why"] else "")
        model = t["model"] if isinstance(t["model"], str) else _f(t["model"])
        lines.append(f"| {t['target']} | {_f(t['value'])} | {t['goal']} | {model} | {status} | {t['where']} |")
    lines.append("")
    big = [r for r in s["sweep"] if (r["M"], r["K"], r["N"]) == TARGET_SHAPE and r["pattern"] == "random"]
    if big:
        lines += ["## Spike x weight sweep at M=8192 K=N=4096, random spikes (every layer and pattern: report.md)", "",
                  "| weights | sparsity | fastest | ms | auto picks | auto / fastest | gather of ideal | "
                  "cuBLAS / gather | CSR / auto |", "|---|---:|---|---:|---|---:|---:|---:|---:|"]
        for r in big:
            lines.append(f"| {r['dtype']} | {100 * r['sparsity']:g}% | {r['fastest'] or '—'} | "
                         f"{_f(r['fastest_ms'])} | {r['auto_pick'] or '—'} | {_x(r['auto_over_fastest'])} | "
                         f"{_pct(r['gather_frac_ideal'])} | {_x(r['dense_over_gather'])} | {_x(r['csr_over_auto'])} |")
        lines.append("")
    if s["networks"]:
        lines += ["## Networks (time over the group's baseline; energy measured with NVML)", "",
                  "| group | impl | ms | x baseline | peak MiB | W | J/sample |", "|---|---|---:|---:|---:|---:|---:|"]
        for r in s["networks"]:
            lines.append(f"| {r['group']} | {r['impl']} | {_f(r['ms'])} | {_x(r['x_baseline'])} | "
                         f"{_f(r['peak_mib'], '.0f')} | {_f(r['watts'], '.0f')} | {_f(r['j_per_sample'], '.3g')} |")
        no_energy = {r["energy"] for r in s["networks"] if isinstance(r.get("energy"), str) and r["energy"] != "measured"}
        lines += [""] + [f"Energy {e}." for e in sorted(no_energy)] + ([""] if no_energy else [])
    if s["spike_linear"]:
        lines += ["## Spike accumulation (fastest snnkern algorithm; others as their time / its time)", "",
                  "| group | best | ms | vs |", "|---|---|---:|---|"]
        for r in s["spike_linear"]:
            vs = ", ".join(f"{k} {_x(v)}" for k, v in sorted(r["vs"].items()))
            lines.append(f"| {r['group']} | {r['best']} | {_f(r['ms'])} | {vs} |")
        lines.append("")
    if s["overhead_ratios"]:
        lines += ["## Host overhead per call (kernel launch stubbed)", "", "| ratio | value | target |", "|---|---:|---|"]
        for r in s["overhead_ratios"]:
            goal = "—" if r.get("target") is None else f"<= {r['target']} ({'met' if r.get('met') else 'MISSED'})"
            lines.append(f"| {r['ratio']} | {_x(r['value'])} | {goal} |")
        lines.append("")
    lines.append(f"{s['records']} benchmark records; every table in full: report.md in results.tar.gz.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--md", default=None, help="write the markdown here (default: print it)")
    parser.add_argument("--json", default=None, help="write the numbers here as JSON")
    args = parser.parse_args(argv)
    s = summarize(args.run_dir)
    text = render(s)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    else:
        print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(s, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
