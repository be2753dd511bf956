"""Spike x weight accumulation in training: the spike_linear step (forward + backward from the bits)
against dense cuBLAS, plus the saved-activation memory of spike-fed MLP/CNN layers (issue 5's
benchmark). The forward over sparsity 0-99.9% against cuBLAS and CSR is ``test_spike_sweep.py``."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from snnkern import spike_linear
from snnkern.nn import SpikeConv2d, SpikeLinear
from snnkern.ops import spike_linear as SL
from snnkern.ops.spike_linear import weight_parts

from .common import ON_GPU, SESSION, record
from .spike_model import saved_bytes

DEVICE = "cuda" if ON_GPU else "cpu"
M, K, N = (8192, 4096, 4096) if ON_GPU else (64, 128, 96)


TRAIN_IMPLS = ["tiles_fp32", "gather_fp32", "dense_fp32", "tiles_fp16", "dense_fp16"]


@pytest.mark.parametrize("sparsity", [0.99] if SESSION else [0.9, 0.99, 0.999])
@pytest.mark.parametrize("impl", TRAIN_IMPLS)
def test_spike_linear_train_step(benchmark, meta, impl, sparsity):
    """Forward + backward (grad_input dense, grad_weight from the bits) against nn.functional.linear."""
    kind, dtype = impl.split("_")
    if kind != "dense" and not ON_GPU:
        pytest.skip("the Triton kernels are timed on a GPU (CPU runs the reference)")
    g = torch.Generator(device=DEVICE).manual_seed(1)
    s = (torch.rand(M, K, device=DEVICE, generator=g) >= sparsity).float().requires_grad_()
    w = (torch.randn(N, K, device=DEVICE, generator=g) * 0.02).to(torch.float16 if dtype == "fp16" else torch.float32)
    w.requires_grad_()
    dy = torch.randn(M, N, device=DEVICE, generator=g).to(w.dtype)
    parts = weight_parts(w.detach()) if kind == "tiles" else None

    def fn():
        y = (torch.nn.functional.linear(s.to(w.dtype), w) if kind == "dense" else
             spike_linear(s, w, algorithm=kind, assume_binary=True, weight_parts_cache=parts))
        torch.autograd.backward(y, dy)
        s.grad = w.grad = None
    benchmark.group = f"spike_linear train step M={M} K={K} N={N} sparsity={sparsity:.1%}"
    record(benchmark, fn, meta, impl=impl, M=M, K=K, N=N, sparsity=sparsity, dtype=dtype,
           baseline=impl == "dense_fp32")
    if kind == "tiles":
        precision = "fp32" if dtype == "fp32" else "16bit"
        benchmark.extra_info["tile_config"] = str(SL._spike_mm_tiles_tuned[precision].best_config)
        benchmark.extra_info["grad_tile_config"] = str(SL._spike_grad_w_tiles_tuned[precision].best_config)


@pytest.mark.parametrize("layer", ["mlp", "cnn"])
def test_saved_activation_memory(benchmark, meta, layer):
    """Bytes autograd keeps for a spike-fed training step: snnkern layers vs torch layers."""
    B = 256 if ON_GPU else 8
    if layer == "mlp":
        dense = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 10)).to(DEVICE)
        ours = nn.Sequential(*[SpikeLinear.from_linear(m, algorithm="tiles" if ON_GPU else "dense") for m in dense])
        x = (torch.rand(B, 1024, device=DEVICE) < 0.1).float().requires_grad_()
        run = lambda net: net[1]((net[0](x) > 0).float())  # noqa: E731  (spikes into both layers)
    else:
        dense = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)).to(DEVICE)
        ours = nn.Sequential(*[SpikeConv2d.from_conv(m, algorithm="dense") for m in dense])
        x = (torch.rand(B // 8, 64, 32, 32, device=DEVICE) < 0.1).float().requires_grad_()
        run = lambda net: net[1]((net[0](x) > 0).float())  # noqa: E731
    dense_bytes = saved_bytes(lambda: run(dense), dense.parameters())
    ours_bytes = saved_bytes(lambda: run(ours), ours.parameters())
    benchmark.group = f"saved activations: spike-fed {layer}"
    record(benchmark, lambda: run(ours), meta, impl=f"snnkern {layer}", saved_bytes=ours_bytes,
           dense_saved_bytes=dense_bytes, saved_ratio=ours_bytes / dense_bytes)
    assert ours_bytes * 8 <= dense_bytes or not ON_GPU
