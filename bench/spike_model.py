"""The byte model behind ``spike_linear``'s "auto" as times, and the bytes autograd keeps for backward:
the one place the spike sweep (``bench/test_spike_sweep.py``), the report and the summary get them from.

The constants are ``snnkern.functional_spikes``' own (L2 bandwidth, the gather's L2 efficiency, the
throughput of each dense path, bytes per weight), so the bench measures the very model "auto" decides
by. Per layer (spikes [M, K] at firing rate r, weights [N, K] of b bytes, output in the weight's dtype):

- gather, ideal: every byte it must move, at L2 bandwidth (``L2_BYTES_PER_S``, efficiency 1) — the weight
  rows of the distinct inputs that spiked in each block of ``GATHER_ROWS`` rows (counted from the very
  spikes timed; ~ r*M*K rows when sparse) x N*b bytes, plus the packed spikes (M*ceil(K/32)*4 B) and the
  output (M*N*b B). The index lists are left out (< 1% of it). A lower bound: the target holds gather to
  >= 50% of it, the model's ``GATHER_L2_EFFICIENCY``, which gives the model's gather time.
- dense (cuBLAS) and tiles: 2*M*K*N flops at the model's throughput of that path (``FLOPS``: cuBLAS
  fp16/bf16, TF32, fp32 without TF32 on CUDA cores; the tiles kernel). The model ignores the tiles the
  kernel skips, so at high sparsity tiles can beat its model time.
"""
from __future__ import annotations

import torch

from snnkern.functional_spikes import AUTO_RULES, FLOPS, GATHER_L2_EFFICIENCY, L2_BYTES_PER_S, WEIGHT_BYTES
from snnkern.ops.spike_linear import GATHER_ROWS

IDEAL_COUNTS = (f"gather ideal = (weight rows of the distinct inputs that spiked per {GATHER_ROWS}-row block x N x "
                f"bytes/weight + packed spikes + output) / L2 {L2_BYTES_PER_S / 1e12:g} TB/s; the model's gather "
                f"time is that over {GATHER_L2_EFFICIENCY:g} (its L2 efficiency); cuBLAS and tiles: 2*M*K*N flops "
                "at the model's throughput of that path (snnkern.functional_spikes.FLOPS)")


def precision(dtype: str, tf32: bool = False) -> str:
    """The ``AUTO_RULES`` row of a weight dtype name ("fp16", "bf16", "fp32") with TF32 on or off."""
    if dtype != "fp32":
        return "16bit"
    return "fp32_tf32" if tf32 else "fp32"


def gather_rows(s: torch.Tensor, rows: int = GATHER_ROWS) -> int:
    """Weight rows the gather reads for spikes ``s`` [M, K]: per block of ``rows`` rows, the inputs that
    spiked in any of them (each is read once and serves the whole block). A device sync."""
    M, K = s.shape
    full = M // rows * rows
    count = (s[:full].reshape(-1, rows, K) != 0).any(1).sum()
    if full < M:
        count = count + (s[full:] != 0).any(0).sum()
    return int(count)


def expected_gather_rows(M: int, K: int, rate: float, rows: int = GATHER_ROWS) -> float:
    """``gather_rows`` expected for independent random spikes at ``rate``: K*(1-(1-rate)^rows) a block."""
    blocks, tail = divmod(M, rows)
    return K * (blocks * (1 - (1 - rate) ** rows) + (1 - (1 - rate) ** tail if tail else 0.0))


def model(M: int, K: int, N: int, dtype: str, tf32: bool, rate: float, rows_read: float) -> dict:
    """The byte model's times (ms) for one layer, and what it picks: ``gather_ideal_ms`` (all the gather's
    bytes at L2 bandwidth), ``gather_model_ms`` (at the model's L2 efficiency), ``dense_model_ms`` (cuBLAS)
    and ``tiles_model_ms`` (flops at the model's throughput); ``model_pick``: what the ``AUTO_RULES`` row
    gives at this firing rate (auto's choice); ``model_best``: the path with the least model time."""
    p = precision(dtype, tf32)
    b = WEIGHT_BYTES[p]
    gather_bytes = rows_read * N * b + M * -(-K // 32) * 4 + M * N * b
    flops = 2.0 * M * K * N
    ideal = gather_bytes / L2_BYTES_PER_S * 1e3
    times = {"gather": ideal / GATHER_L2_EFFICIENCY, "dense": flops / FLOPS[p]["dense"] * 1e3,
             "tiles": flops / FLOPS[p]["tiles"] * 1e3}
    gather_below, above = AUTO_RULES[p]
    return {"precision": p, "gather_bytes": gather_bytes, "gather_ideal_ms": ideal,
            "gather_model_ms": times["gather"], "dense_model_ms": times["dense"], "tiles_model_ms": times["tiles"],
            "model_pick": "gather" if rate < gather_below else above, "model_best": min(times, key=times.get)}


# ---- what autograd keeps for backward ------------------------------------------------------------------


class Spike(torch.autograd.Function):
    """Heaviside spikes with a straight-through gradient that saves nothing: the spikes a layer gets are
    then kept alive only by what that layer saves (as they are in a network, where the neuron frees them)."""

    @staticmethod
    def forward(ctx, v):
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


def saved_bytes(fn, params=()) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn()`` runs, the parameters (and tensors
    saved twice) counted once or not at all: activations only. Counts through
    ``torch.autograd.graph.saved_tensors_hooks``, so it works on CPU too."""
    skip = {p.data_ptr() for p in params}
    seen: dict = {}

    def pack(t):
        if t.data_ptr() not in skip:
            seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def retained_bytes(forward) -> dict | None:
    """On a GPU: the memory a forward leaves allocated for backward (``memory_allocated`` after it, less
    before, less its output), then the peak above the start through a real backward. None on CPU.
    ``forward()`` must build its spikes inside (e.g. ``Spike.apply(v)``) and return the output."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    y = forward()
    torch.cuda.synchronize()
    kept = torch.cuda.memory_allocated() - base - y.numel() * y.element_size()
    y.backward(torch.ones_like(y))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del y
    return {"retained_bytes": kept, "peak_fwd_bwd_bytes": peak}
