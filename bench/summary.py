"""The one-page summary of a GPU session (``bench/gpu_session.sh``): what a person reads in 30 seconds.

    python -m bench.summary RUN_DIR [--md summary.md] [--json summary.json]

RUN_DIR holds what the session wrote: ``stages.tsv`` (one line per stage: name, status, exit code,
seconds, cap, note), ``session.json`` (mode, budget, run name), the pytest-benchmark JSONs
(``*.json``) and the junit XMLs (``*.xml``). The summary states, from this run alone: which stages
failed or timed out and the test counts; the copy bandwidth; per LIF kernel and dtype the median ms,
GB/s as a fraction of the copy bandwidth and each peer's time over snnkern's (> 1: snnkern faster);
what autograd keeps for backward; the issue's targets, each met / missed / unavailable (with why);
network step times over the dense ANN's with peak memory, W and J/sample (measured, NVML); the
spike-accumulation and host-overhead ratios. ``summary.json`` holds the same numbers.
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
    return {
        "run": session.get("run_name"), "mode": session.get("mode"), "budget_s": session.get("budget_s"),
        "elapsed_s": session.get("elapsed_s"),
        "meta": {k: meta.get(k) for k in ("gpu", "driver", "torch", "triton", "commit", "date")},
        "stages": stages,
        "failed_stages": [s["stage"] for s in stages if s["status"] in FAILING],
        "tests": junits, "copy_gb_per_s": copy_gbs,
        "lif": lif_rows(records, copy_gbs), "targets": targets(records, copy_gbs),
        "networks": network_rows(records), "spike_linear": spike_linear_rows(records),
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
