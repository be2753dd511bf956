"""Timing, byte accounting and run metadata shared by the benchmarks.

GPU timing uses ``triton.testing.do_bench`` (CUDA events, L2 flushed between runs, median and
20/80% quantiles); every record also gets pytest-benchmark's own synchronized timing.  On CPU the
suite is a smoke test: tiny sizes, wall-clock timing.

``SNNKERN_BENCH_SESSION=1`` (set by ``bench/gpu_session.sh``) bounds a run so that it fits one call of a
lent GPU: shorter do_bench windows, fewer pedantic rounds, a shorter energy window with the idle
baseline measured once per process before its first GPU work (``measure_idle_baseline``, which
``bench/conftest.py`` calls after collection when a collected test is marked ``energy``), no energy for
training steps, and each file's shapes cut to the rows the targets are stated at (each test module says
which).
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time

import torch

ON_GPU = torch.cuda.is_available()
FULL = os.environ.get("SNNKERN_BENCH_FULL", "0") == "1"
SESSION = os.environ.get("SNNKERN_BENCH_SESSION", "0") == "1"
# do_bench windows (ms of warm-up, ms of timed repeats) and pytest-benchmark rounds
BENCH_WARMUP_MS, BENCH_REP_MS = (10, 40) if SESSION else (25, 200)
PEDANTIC_ROUNDS = 3 if SESSION or not ON_GPU else 10
ENERGY_SECONDS = 1.0 if SESSION else 2.0
IDLE_SECONDS = 0.5  # the idle baseline's window
IDLE_SETTLE_SECONDS = 0.5  # wait before it, after a sync, so that the power of earlier work has come down
_IDLE_WATTS: list = []  # the idle baseline, measured once per process in a session run


def run_metadata() -> dict:
    import triton

    meta = {
        "torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name() if ON_GPU else "none (CPU smoke run)",
    }
    meta["commit"] = commit()
    if ON_GPU:
        try:
            import pynvml

            pynvml.nvmlInit()
            meta["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception as exc:  # NVML is optional for timing
            meta["driver"] = f"unavailable ({type(exc).__name__})"
    return meta


def commit() -> str:
    """The commit measured: ``SNNKERN_COMMIT`` when set (the device gets the working tree without .git, so
    ``bench/gpu_session.sh`` passes it), else ``git rev-parse --short HEAD``, else "unknown"."""
    env = os.environ.get("SNNKERN_COMMIT", "").strip()
    if env:
        return env
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sync():
    if ON_GPU:
        torch.cuda.synchronize()


def peak_mib(fn) -> float:
    """CUDA memory fn allocates at its peak above what is allocated before it (MiB), in a call of its own
    after a warm-up call: the first call's compiles, autotuning (whose timing allocates its own L2-flush
    buffer) and lazily made state (cached weight parts, optimizer state) are in the baseline, not the peak."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure(fn) -> dict:
    """Median and 20/80% quantiles of fn in ms, plus fn's peak memory above the baseline in MiB.

    The peak is measured before the timing, by ``peak_mib``: ``do_bench`` allocates a 256 MiB buffer to
    flush L2 between runs, which would otherwise be in every peak."""
    if ON_GPU:
        import triton.testing

        peak = peak_mib(fn)
        q20, med, q80 = triton.testing.do_bench(fn, warmup=BENCH_WARMUP_MS, rep=BENCH_REP_MS,
                                                quantiles=[0.2, 0.5, 0.8])
        return {"ms_median": med, "ms_q20": q20, "ms_q80": q80, "peak_mib": peak}
    fn()  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"ms_median": statistics.median(times), "ms_q20": times[1], "ms_q80": times[-2], "peak_mib": None}


def measure_idle_baseline() -> float | None:
    """The session's idle baseline in W, measured once per process (later calls return it): call it before
    the process's first GPU work. Measured after a benchmark instead, the GPU still draws the power of the
    work just done, so the baseline reads high and J/sample above idle low. None on CPU or without NVML."""
    if _IDLE_WATTS:
        return _IDLE_WATTS[0]
    if not ON_GPU:
        return None
    from snnkern.energy import measure_idle_watts

    watts = measure_idle_watts(seconds=IDLE_SECONDS, settle_seconds=IDLE_SETTLE_SECONDS)
    if watts is not None:
        _IDLE_WATTS.append(watts)
    return watts


def measure_energy(fn, samples_per_call: int, seconds: float = ENERGY_SECONDS) -> dict:
    """Mean W and J/sample of fn looped for ~``seconds`` (NVML; "unavailable" on CPU), labelled measured.

    The idle baseline: in a session, the one ``measure_idle_baseline`` took before the process's GPU work;
    else (or where it was not taken) one measured just before the window, after a settle wait."""
    from snnkern.energy import EnergyMeter

    calls = 0
    idle = _IDLE_WATTS[0] if SESSION and _IDLE_WATTS else None
    idle_when = ("before the process's GPU work" if idle is not None
                 else f"before this window, after a {IDLE_SETTLE_SECONDS:g} s settle")
    with EnergyMeter(samples=None, idle_seconds=IDLE_SECONDS, idle_watts=idle,
                     settle_seconds=0.0 if idle is not None else IDLE_SETTLE_SECONDS) as meter:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            calls += 1
            if ON_GPU and calls % 10 == 0:
                torch.cuda.synchronize()
    r = meter.reading
    if not r.available:
        return {"energy": f"unavailable ({r.reason})"}
    if r.idle_watts is not None and not _IDLE_WATTS:
        _IDLE_WATTS.append(r.idle_watts)
    return {"energy": "measured", "watts": r.mean_watts, "idle_watts": r.idle_watts, "idle_measured": idle_when,
            "j_per_sample": r.joules / (calls * samples_per_call), "energy_method": r.method}


def record(benchmark, fn, meta: dict, *, samples_per_call: int | None = None, **info):
    """Time fn both ways (and, given ``samples_per_call`` on a GPU, measure its energy) and attach
    everything a reader needs to the benchmark record."""
    stats = measure(fn)
    if samples_per_call and ON_GPU and not (SESSION and info.get("mode") == "train_step"):
        benchmark.extra_info.update(measure_energy(fn, samples_per_call))
    benchmark.extra_info.update(meta)
    benchmark.extra_info.update(info)
    benchmark.extra_info.update(stats)
    if info.get("bytes"):
        benchmark.extra_info["gb_per_s"] = info["bytes"] / (stats["ms_median"] * 1e-3) / 1e9

    def synced():
        fn()
        sync()

    benchmark.pedantic(synced, rounds=PEDANTIC_ROUNDS, warmup_rounds=1 if SESSION else 2, iterations=1)
    return stats
