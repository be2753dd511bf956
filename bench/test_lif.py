"""LIF forward and forward+backward: snnkern against the eager loop, torch.compile, snnTorch, SpikingJelly.

Every record carries T, N, dtype, the bytes the snnkern kernel must move, and the device copy
bandwidth measured in the same run; ``python -m bench.report`` turns the JSON into tables.
``test_lif_saved_bytes`` measures what autograd keeps between forward and backward (CUDA memory
statistics).  A session run (``SNNKERN_BENCH_SESSION=1``) times the targets' shape only: T=16, N=2^22.
"""
from __future__ import annotations

import functools

import pytest
import torch

import snnkern
from snnkern.functional import lif
from snnkern.ops.lif import checkpoint_rows

from .common import FULL, ON_GPU, SESSION, measure, record

DEVICE = "cuda" if ON_GPU else "cpu"
TS = ([16] if SESSION else [4, 16, 64]) if ON_GPU else [4]
NS = ([2**22] if SESSION else [2**20, 2**22]) if ON_GPU else [2**10]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
BETA, THR = 0.9, 1.0
PEERS = ["snnkern", "snnkern_cuda", "eager", "compile", "snntorch", "spikingjelly"]


def bytes_moved(T, N, dtype, mode):
    """What the fused kernels must read and write (checkpoints and per-neuron state included)."""
    e = torch.finfo(dtype).bits // 8
    if mode == "fwd_packed":
        return T * N * e + T * N // 8 + N * 4  # read x, write 1 bit a spike, write v_last
    fwd = T * N * 2 * e + N * 4  # read x, write spikes, write v_last
    if mode == "fwd":
        return fwd
    ckpt = checkpoint_rows(T) * N * 4
    return fwd + 2 * ckpt + T * N * 3 * e + N * 4  # + bwd: read x and grad_s, write grad_x; read grad_v


@pytest.fixture(scope="session")
def copy_bandwidth():
    """Device copy bandwidth (GB/s) in this run: the ceiling for memory-bound kernels."""
    n = (2**28 if ON_GPU else 2**16)  # 1 GiB of fp32 on GPU
    src = torch.empty(n, device=DEVICE)
    dst = torch.empty_like(src)
    stats = measure(lambda: dst.copy_(src))
    return 2 * n * 4 / (stats["ms_median"] * 1e-3) / 1e9


def test_copy_bandwidth(benchmark, meta, copy_bandwidth):
    n = 2**28 if ON_GPU else 2**16
    src = torch.empty(n, device=DEVICE)
    dst = torch.empty_like(src)
    benchmark.group = "copy"
    record(benchmark, lambda: dst.copy_(src), meta, impl="copy", bytes=2 * n * 4, copy_gb_per_s=copy_bandwidth)


def _snnkern(convention, backend="auto"):
    kw = dict(beta=BETA, threshold=THR, convention=convention, backend=backend)
    if convention == "spikingjelly":
        kw.update(beta=None, tau=1 / (1 - BETA), decay_input=False, reset="subtract")
    return lambda x: lif(x, **kw)


@functools.lru_cache(maxsize=None)
def _compiled_reference():
    return torch.compile(lambda x: lif(x, beta=BETA, threshold=THR, backend="torch"))


def make_impl(name):
    """x -> (spikes, state) for each implementation, all with snnTorch Leaky semantics except SpikingJelly."""
    if name == "snnkern":
        return _snnkern("snntorch")
    if name == "snnkern_sj":
        return _snnkern("spikingjelly")
    if name == "snnkern_packed":  # inference spikes bit-packed by the kernel (spike_dtype=torch.int32)
        return lambda x: lif(x, beta=BETA, threshold=THR, spike_dtype=torch.int32)
    if name == "snnkern_cuda":
        if not (ON_GPU and snnkern.cuda_extension_available()):
            pytest.skip("the C++/CUDA backend is timed on a GPU with snnkern._C built")
        return _snnkern("snntorch", backend="cuda")
    if name == "eager":
        return lambda x: lif(x, beta=BETA, threshold=THR, backend="torch")
    if name == "compile":
        if not (ON_GPU or FULL):
            pytest.skip("torch.compile peer runs on GPU (or with SNNKERN_BENCH_FULL=1)")
        return _compiled_reference()
    if name == "snntorch":
        snntorch = pytest.importorskip("snntorch", reason="snnTorch not installed (pip install .[peers])")
        leaky = snntorch.Leaky(beta=BETA, threshold=THR).to(DEVICE)

        def run(x):
            mem, out = torch.zeros_like(x[0]), []
            for t in range(x.shape[0]):
                spk, mem = leaky(x[t], mem)
                out.append(spk)
            return torch.stack(out), mem
        return run
    if name == "spikingjelly":
        neuron = pytest.importorskip("spikingjelly.activation_based.neuron",
                                     reason="SpikingJelly not installed (pip install .[peers])")
        node = neuron.LIFNode(tau=1 / (1 - BETA), decay_input=False, v_reset=None, step_mode="m").to(DEVICE)

        def run(x):
            node.reset()
            return node(x), node.v
        return run
    raise ValueError(name)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("impl", PEERS + ["snnkern_sj", "snnkern_packed"])
def test_lif(benchmark, meta, copy_bandwidth, impl, mode, T, N, dtype):
    if impl == "snnkern_packed" and mode != "fwd":
        pytest.skip("packed spikes are for inference (no gradient)")
    if impl == "compile" and T != 16 and not FULL:
        pytest.skip("torch.compile peer at T=16 only (SNNKERN_BENCH_FULL=1 for all T)")
    fn = make_impl(impl)
    dt = DTYPES[dtype]
    x = torch.randn(T, N, device=DEVICE, dtype=dt) * 0.5 + 0.4
    if mode == "fwd":
        def step():
            with torch.no_grad():
                fn(x)
    else:
        xg = x.clone().requires_grad_()
        grad_s = torch.randn_like(x)

        def step():
            spikes, _ = fn(xg)
            spikes.backward(grad_s.to(spikes.dtype))
            xg.grad = None
    benchmark.group = f"lif {mode} T={T} N={N} {dtype}"
    record(benchmark, step, meta, impl=impl, mode=mode, T=T, N=N, dtype=dtype,
           bytes=bytes_moved(T, N, dt, "fwd_packed" if impl == "snnkern_packed" else mode)
           if impl.startswith("snnkern") else None,
           copy_gb_per_s=copy_bandwidth)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("impl", ["snnkern", "snnkern_cuda", "spikingjelly"])
def test_lif_saved_bytes(benchmark, meta, impl, dtype):
    """Bytes a forward with gradient leaves allocated beyond its input and outputs (what autograd keeps
    for backward), per neuron-step, from CUDA memory statistics; the target is <= 4 B/element for fp32.
    A CPU run has no such statistics: the field is None there."""
    T, N = 16 if ON_GPU else TS[0], NS[-1]
    fn = make_impl(impl)
    xg = (torch.randn(T, N, device=DEVICE, dtype=DTYPES[dtype]) * 0.5 + 0.4).requires_grad_()
    saved = None
    if ON_GPU:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        spikes, v = fn(xg)
        torch.cuda.synchronize()
        outputs = sum(t.numel() * t.element_size() for t in (spikes, v) if isinstance(t, torch.Tensor))
        saved = (torch.cuda.memory_allocated() - before - outputs) / (T * N)
        del spikes, v

    def step():
        fn(xg)
    benchmark.group = f"lif saved for backward T={T} N={N} {dtype}"
    record(benchmark, step, meta, impl=impl, mode="fwd_grad", T=T, N=N, dtype=dtype,
           saved_bytes_per_element=saved)
