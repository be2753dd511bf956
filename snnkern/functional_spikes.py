"""Functional API for binary spikes: bit packing and event-driven spike x weight accumulation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks
from ._per_version import new_store, per_version, version_key
from ._dispatch import select_backend
from .ops.spike_linear import cached_weight_parts, spike_linear_apply, spike_linear_reference
from .ops.spike_pack import pack_forward, pack_reference, packed_words, unpack_forward, unpack_reference

SPIKE_INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.bool, torch.uint8)
PACK_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.bool, torch.uint8)
WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
ALGORITHMS = ("auto", "tiles", "gather", "dense")

# ---- what "auto" runs: a byte / throughput model of H100 / H200 (sm_90) ---------------------------------
#
# For spikes [M, K] at firing rate r and weights [N, K] of b bytes each:
# - dense / tiles do the whole product: 2*M*K*N flops at the throughput F of that path, whatever r is;
# - gather reads, per row block, the weight rows of the inputs that spiked in it: r*M*K rows of N*b bytes
#   when spikes are sparse (at higher rates the row blocks share rows and it reads fewer), from L2 (a
#   layer's weights stay L2-resident: 50 MB on H100/H200), at a fraction E of L2 bandwidth B.
#   time_gather = r*M*K*N*b / (E*B),  time_dense = 2*M*K*N / F,  equal at  r* = 2*E*B / (b*F).
# M, K and N cancel: one crossover rate per weight dtype and competitor. Gather runs below r*, the faster of
# dense and tiles above it. The numbers (M=8192, K=N=4096 where a time is quoted):
L2_BYTES_PER_S = 6.9e12  # L2 read bandwidth: the ideal gather's 13.7 GB at 95% sparsity in ~2 ms
GATHER_L2_EFFICIENCY = 0.5  # the fraction of it the gather kernel is held to (its target: >= 50% of ideal)
# dense-path throughputs (flop/s): cuBLAS fp16/bf16 0.33 ms (830 TFLOP/s of 989 peak); cuBLAS TF32 0.8 ms;
# cuBLAS fp32 without TF32 (torch's default for fp32 matmul) on CUDA cores, ~75% of 67 TFLOP/s; the tiles
# kernel: 16-bit weights 2-3x slower than cuBLAS, fp32 weights as three bf16 passes 1.8-3.3 ms (2.5 ms)
FLOPS = {"16bit": {"dense": 8.3e14, "tiles": 3.3e14},
         "fp32": {"dense": 5.0e13, "tiles": 1.1e14},
         "fp32_tf32": {"dense": 3.4e14, "tiles": 1.1e14}}
WEIGHT_BYTES = {"16bit": 2, "fp32": 4, "fp32_tf32": 4}


def _crossover(precision: str, competitor: str) -> float:
    """r* = 2*E*B / (b*F): the firing rate below which gather beats ``competitor`` ("dense" or "tiles")."""
    return round(2 * GATHER_L2_EFFICIENCY * L2_BYTES_PER_S / (WEIGHT_BYTES[precision] * FLOPS[precision][competitor]),
                 4)


def _rule(precision: str) -> tuple[float, str]:
    above = max(FLOPS[precision], key=FLOPS[precision].get)
    return _crossover(precision, above), above


# precision -> (gather below this firing rate, the algorithm at and above it):
#   16bit      (0.0042, "dense")  gather vs cuBLAS fp16/bf16 (ideal gather, E=1: 0.83%, the 99.2% sparsity quoted)
#   fp32       (0.0157, "tiles")  gather vs tiles; fp32 cuBLAS without TF32 is the slowest
#   fp32_tf32  (0.0051, "dense")  with torch.backends.cuda.matmul.allow_tf32 the caller accepted TF32: cuBLAS
# Weights too large for L2 (e.g. fp32 4096 x 4096, 64 MB) stream the gather's rows from HBM (3.35 TB/s H100,
# 4.8 TB/s H200): their crossover is lower by that ratio. A GPU sweep replaces these with measured ones.
AUTO_RULES = {precision: _rule(precision) for precision in FLOPS}
# "auto" with no rate known and none measurable without a device sync: the above-crossover choice
AUTO_WITHOUT_RATE = 1.0
# SpikeConv2d's gather threshold at torch's defaults (im2col + gather vs cuDNN, which runs TF32 by default)
GATHER_BELOW_RATE = AUTO_RULES["fp32_tf32"][0]


def conv_gather_below(weight_dtype: torch.dtype) -> float:
    """SpikeConv2d "auto": the firing rate below which im2col + gather beats cuDNN, by the model above
    (cuDNN is the only dense path of a convolution; fp32 follows cuDNN's own TF32 switch)."""
    if weight_dtype != torch.float32:
        precision = "16bit"
    else:
        precision = "fp32_tf32" if tf32_allowed("conv") else "fp32"
    return _crossover(precision, "dense")


def tf32_allowed(kind: str) -> bool:
    """Whether torch lets fp32 ``"matmul"`` (cuBLAS) or ``"conv"`` (cuDNN) run in TF32: a host flag, no sync.
    Read through the per-backend ``fp32_precision`` (torch >= 2.9), which resolves the global setting;
    the legacy ``allow_tf32`` raises a RuntimeError once a program has used both APIs, so it is only the
    fallback for older torch."""
    backend = torch.backends.cuda.matmul if kind == "matmul" else torch.backends.cudnn
    precision = getattr(backend.conv if kind == "conv" else backend, "fp32_precision", None)
    if precision in ("tf32", "ieee"):
        return precision == "tf32"
    try:  # "none" (defer to the legacy flag) or a torch without the new API
        return bool(backend.allow_tf32)
    except RuntimeError:  # both APIs used: torch itself will not say; assume exact fp32
        return False


def auto_precision(weight_dtype: torch.dtype) -> str:
    """The AUTO_RULES row for a weight dtype (fp32 reads torch's TF32 switch for matmuls)."""
    if weight_dtype != torch.float32:
        return "16bit"
    return "fp32_tf32" if tf32_allowed("matmul") else "fp32"


def auto_algorithm(rate: float, weight_dtype: torch.dtype) -> str:
    """What ``algorithm="auto"`` runs at a firing rate: ``gather`` below its AUTO_RULES crossover for the
    weight dtype, else that row's faster dense path (cuBLAS ``dense`` for fp16/bf16 weights and for fp32
    under TF32, ``tiles`` for fp32 weights at fp32 accuracy). The model behind the table is above it."""
    gather_below, above = AUTO_RULES[auto_precision(weight_dtype)]
    return "gather" if rate < gather_below else above


def is_binary(s: torch.Tensor) -> bool:
    """True when every element is 0 or 1 (one pass over s, and a device sync)."""
    if s.dtype == torch.bool:
        return True
    return bool(((s == 0) | (s == 1)).all())


def _binary_and_rate(x: torch.Tensor) -> tuple[bool, float]:
    if x.numel() == 0:
        return True, 0.0
    binary = torch.ones((), device=x.device) if x.dtype == torch.bool else ((x == 0) | (x == 1)).all().float()
    binary, rate = torch.stack([binary, (x != 0).float().mean()]).tolist()
    return binary == 1.0, rate


def count_spikes(bits: torch.Tensor) -> torch.Tensor:
    """Set bits of packed spikes, summed (int64 scalar, on bits' device; no sync). A bit-parallel
    popcount on the words: temporaries of one int64 per 32 spikes, never the unpacked spikes."""
    w = bits.to(torch.int64) & 0xFFFFFFFF  # the 32 bits as unsigned
    w = w - ((w >> 1) & 0x55555555)
    w = (w & 0x33333333) + ((w >> 2) & 0x33333333)
    w = (w + (w >> 4)) & 0x0F0F0F0F
    return ((w * 0x01010101) >> 24 & 0xFF).sum()


def firing_rate(bits: torch.Tensor, k: int) -> float:
    """Fraction of set bits among k spikes per row of packed spikes (a device sync)."""
    if bits.numel() == 0 or k == 0:
        return 0.0
    rows = bits.numel() // bits.shape[-1]
    return count_spikes(bits).item() / (rows * k)


def _unpack_native(p, n, dtype):
    # the C++ kernels write the spike dtypes (bool, uint8, fp32/bf16/fp16); others convert exactly from bytes
    if dtype in (torch.bool, torch.uint8, torch.float32, torch.bfloat16, torch.float16):
        return torch.ops.snnkern.unpack_spikes_native(p, n, dtype)
    return torch.ops.snnkern.unpack_spikes_native(p, n, torch.uint8).to(dtype)


def _pack_triton(s):
    # the registered op while torch.compile traces; eagerly the launcher (an op call costs host time)
    return torch.ops.snnkern.pack_spikes(s) if torch.compiler.is_compiling() else pack_forward(s)


def _unpack_triton(p, n, dtype):
    return torch.ops.snnkern.unpack_spikes(p, n, dtype) if torch.compiler.is_compiling() else unpack_forward(p, n, dtype)


# backend (resolved by select_backend) -> implementation
PACK = {"torch": pack_reference, "triton": _pack_triton, "cuda": torch.ops.snnkern.pack_spikes_native}
UNPACK = {"torch": unpack_reference, "triton": _unpack_triton, "cuda": _unpack_native}


def _checked_parts(parts, weight: torch.Tensor) -> torch.Tensor:
    """A weight_parts_cache that was made from this weight, as it is now."""
    if not isinstance(parts, torch.Tensor):
        raise TypeError(f"weight_parts_cache must be the tensor weight_parts(weight) returned, got {type(parts).__name__}")
    n_parts, dtype = (3, torch.bfloat16) if weight.dtype == torch.float32 else (1, weight.dtype)
    if parts.shape != (n_parts, *weight.shape) or parts.dtype != dtype or parts.device != weight.device:
        raise ValueError(f"weight_parts_cache must be weight_parts(weight): shape {(n_parts, *weight.shape)}, "
                         f"{dtype}, on {weight.device}; got {tuple(parts.shape)}, {parts.dtype}, on {parts.device}")
    if not torch.compiler.is_compiling() and getattr(parts, "_snnkern_source", None) != version_key(weight):
        raise ValueError("weight_parts_cache is stale: it was not made by weight_parts() from this weight as it "
                         "is now (the weight changed since, or a torch.optim optimizer stepped since: fused ones "
                         "write weights without a trace snnkern can see); compute it again")
    return parts.contiguous()


def pack_spikes(s: torch.Tensor, *, check: bool = True, backend: str = "auto") -> torch.Tensor:
    """Pack binary spikes along the last dim: ``[..., K]`` -> int32 ``[..., ceil(K/32)]``.

    Bit j of word w holds ``s[..., 32*w + j]`` (LSB first); padding bits are 0. ``check`` raises
    ValueError on values other than 0/1 (``check=False``: any nonzero counts as a spike)."""
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"s must be a torch.Tensor, got {type(s).__name__}")
    if s.dtype not in SPIKE_INPUT_DTYPES:
        raise TypeError(f"s must be a float, bool or uint8 tensor, got {s.dtype}")
    if s.dim() < 1:
        raise ValueError("s must have at least one dim (the packed one)")
    if check and not is_binary(s):
        raise ValueError("s holds values other than 0 and 1 (pass check=False to treat nonzero as a spike)")
    return PACK[select_backend("pack_spikes", backend, s, PACK_KERNEL_DTYPES, "s")](s.detach())


def unpack_spikes(p: torch.Tensor, n: int, *, dtype: torch.dtype = torch.float32, backend: str = "auto") -> torch.Tensor:
    """Inverse of ``pack_spikes``: int32 ``[..., W]`` -> ``[..., n]`` spikes of ``dtype``."""
    if not isinstance(p, torch.Tensor) or p.dtype != torch.int32:
        raise TypeError("p must be an int32 tensor from pack_spikes")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or packed_words(n) != (p.shape[-1] if p.dim() else -1):
        raise ValueError(f"n must be the unpacked length: an int with ceil(n/32) == {p.shape[-1] if p.dim() else 0}; "
                         f"got {n!r}")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    return UNPACK[select_backend("unpack_spikes", backend, p, (torch.int32,), "p")](p, n, dtype)


def spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, strict: bool = False,
                 assume_binary: bool = False, algorithm: str = "auto", weight_parts_cache: torch.Tensor | None = None,
                 rate: float | None = None, backend: str = "auto") -> torch.Tensor:
    """``x @ weight.T + bias`` for binary spikes ``x`` ``[..., K]``, accumulating only what spiked.

    ``x`` may also be its packed form (int32 ``[..., ceil(K/32)]`` from ``pack_spikes``; no gradient
    then flows to x).  Weights fp32/bf16/fp16, accumulation fp32, output in the weight's dtype.
    Gradients: ``grad_x = dY @ W`` (dense), ``grad_W = dY.T @ S`` from the saved bits, ``grad_b``.

    ``algorithm``: ``"tiles"`` (tensor cores on unpacked bits, empty tiles skipped), ``"gather"``
    (per block of rows, only the weight rows of the inputs that spiked in it), ``"dense"`` (cuBLAS on the spikes; still saves only bits), or
    ``"auto"`` (``auto_algorithm``: gather below the firing rate of the ``AUTO_RULES`` row for the
    weight dtype, else cuBLAS, or tiles for fp32 weights without TF32). ``rate``: the firing rate "auto"
    decides on, when the caller knows it (``SpikeLinear`` passes its previous call's, delivered without
    a sync). "auto" never syncs to learn it: without ``rate`` it uses the rate the binary check measured
    (that check syncs anyway), and where no check ran (packed ``x``, ``assume_binary=True``) it takes the
    dense-rate choice (``AUTO_WITHOUT_RATE``).
    Non-binary ``x``: ``strict=True`` raises ValueError, otherwise a plain ``F.linear`` runs.
    ``assume_binary=True`` skips the binary check (a sync) for inputs you know are spikes.
    """
    return spike_linear_run(x, weight, bias, strict, assume_binary, algorithm, weight_parts_cache, rate, backend)


# weight -> (version key, its poison vector), as ops.spike_linear keeps W.T and the weight parts
_POISON = new_store()


def _poison_of(weight: torch.Tensor) -> torch.Tensor:
    return weight.mul(0).sum(1, dtype=torch.float32).to(weight.dtype)


def nonfinite_poison(weight: torch.Tensor) -> torch.Tensor:
    """``[N]``: NaN where row n of ``weight`` holds a NaN or inf, else 0 (``0 * w`` summed over the row).

    Added to the output of ``tiles``/``gather``, which skip the weights of inputs that did not spike, it
    makes an output non-finite exactly where a dense product's is (``0 * inf`` is NaN there; the finite
    values are unchanged; where dense gives +-inf this gives NaN). Computed on the device once per weight
    version (for any tensor: it replaced a check that ran once per version), so it costs no host sync."""
    return per_version(_POISON, weight, _poison_of, parameters_only=False)


def spike_linear_run(x, weight, bias, strict, assume_binary, algorithm, weight_parts_cache, rate, backend,
                     on_bits=None):
    """``spike_linear`` with ``on_bits(bits, k)``: called with the packed spikes when "auto" decided, so a
    caller can measure this call's firing rate for the next decision."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError("weight must be a 2-D tensor [out_features, in_features]")
    if weight.dtype not in WEIGHT_DTYPES:
        raise TypeError(f"weight must be float32, bfloat16 or float16, got {weight.dtype}")
    N, K = weight.shape
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (N,):
            raise ValueError(f"bias must be a tensor of shape ({N},)")
        if bias.device != weight.device:
            raise ValueError(f"bias is on {bias.device} but weight is on {weight.device}")
        if not bias.dtype.is_floating_point:
            raise TypeError(f"bias must be a floating tensor, got {bias.dtype}")
        if bias.dtype != weight.dtype:  # the output is in the weight's dtype on every path
            bias = bias.to(weight.dtype)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.device != weight.device:
        raise ValueError(f"x is on {x.device} but weight is on {weight.device}")
    algorithm = _checks.check_choice(algorithm, "algorithm", ALGORITHMS)
    if rate is not None:
        rate = _checks.check_number(rate, "rate", low=0.0, high=1.0)
    packed = x.dtype == torch.int32
    if packed:
        if x.dim() < 1 or x.shape[-1] != packed_words(K):
            raise ValueError(f"packed x must have {packed_words(K)} int32 words in its last dim for K={K}")
    else:
        if x.dtype not in SPIKE_INPUT_DTYPES:
            raise TypeError(f"x must be a float, bool or uint8 spike tensor (or int32 packed), got {x.dtype}")
        if x.dim() < 1 or x.shape[-1] != K:
            raise ValueError(f"x must have shape [..., {K}] to match weight {tuple(weight.shape)}; got {tuple(x.shape)}")
    if not packed and not assume_binary:
        binary, measured = _binary_and_rate(x)  # one sync for both questions
        rate = measured if rate is None else rate
        if not binary:
            if strict:
                raise ValueError("x holds values other than 0 and 1 (strict=True)")
            return F.linear(x.to(weight.dtype), weight, bias)  # not spikes: plain dense layer
    lead = x.shape[:-1]
    # the accumulation kernels are Triton only (the C++ backend packs and unpacks)
    if select_backend("spike_linear", backend, weight, WEIGHT_DTYPES, "weight", ("auto", "triton", "torch")) == "torch":
        dense = unpack_spikes(x, K, dtype=weight.dtype, backend="torch") if packed else x
        return spike_linear_reference(dense, weight, bias)
    x2 = x.reshape(lead.numel(), x.shape[-1])  # not -1: K may be 0
    if not packed and x2.dtype not in PACK_KERNEL_DTYPES:  # float64 spikes: bytes, exactly (nonzero = spike)
        x2 = (x2 != 0).to(torch.uint8)
    bits = x2 if packed else pack_spikes(x2, check=False, backend="triton")
    if algorithm == "auto":
        if on_bits is not None:
            on_bits(bits, K)
        if rate is None:  # measuring it here would sync the host
            rate = AUTO_WITHOUT_RATE
        algorithm = auto_algorithm(rate, weight.dtype)
    if algorithm in ("tiles", "gather"):
        # the event-driven kernels never read the weights of inputs that did not spike, so a NaN/inf there
        # would vanish where a dense product gives NaN: the row's poison (NaN or 0) enters through the bias
        poison = nonfinite_poison(weight)
        bias = poison if bias is None else bias + poison
    parts = None
    if algorithm == "tiles":
        if weight_parts_cache is None:
            parts = cached_weight_parts(weight)
        else:
            parts = _checked_parts(weight_parts_cache, weight)
    y = spike_linear_apply(None if packed else x2, bits, K, weight, bias, parts, algorithm)
    return y.reshape(*lead, N)
