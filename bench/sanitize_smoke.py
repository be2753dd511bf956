"""Every snnkern kernel once, on small odd shapes, forward and backward: the workload that
``bench/gpu_session.sh`` runs under ``compute-sanitizer --tool memcheck`` (which slows each launch a
lot, so the shapes are small and each kernel runs once or twice; odd sizes put the tails of vector
and tile loops at the edge of their buffers). The session runs it with PYTORCH_NO_CUDA_MEMORY_CACHING=1,
so that every tensor is its own allocation and memcheck sees an overrun past its end (inside the caching
allocator's 2 MiB segments it would not).

The tiles kernels never go through Triton's autotuner here (under memcheck, timing every config would take
minutes): for each precision, each entry of ``TILE_CONFIGS[precision]`` in turn is made the only one (which
makes ``launch_tiles`` launch the plain kernel with it) and the tiles cases run once per entry, with 16-bit
and fp32 weights, so memcheck sees every tile shape the autotuner may pick.

On a GPU it runs the Triton kernels and, when ``snnkern._C`` is built, the C++/CUDA kernels; without
one it runs the reference on CPU, and with TRITON_INTERPRET=1 the Triton kernels in the interpreter too
(the session's dry run does, which proves the script itself, its tile-config loop included). Each result is
compared with the reference, so a kernel that reads garbage fails here too. Exit status 0 when all
agree; it prints one line per case and a count.

    python -m bench.sanitize_smoke
"""
from __future__ import annotations

import contextlib
import importlib
import sys

import torch

import snnkern
from snnkern._dispatch import triton_interpret
from snnkern.functional import if_, lif

SL = importlib.import_module("snnkern.ops.spike_linear")  # the module (snnkern.spike_linear is the function)
# weight dtype of each tiles precision's cases: 16-bit weights (one operand part), fp32 (three bf16 parts)
PRECISION_DTYPES = {"16bit": torch.float16, "fp32": torch.float32}


@contextlib.contextmanager
def one_tile_config(precision: str, config):
    """Make ``config`` the only entry of ``TILE_CONFIGS[precision]`` (launch_tiles then launches the plain
    kernel with it, no autotuner), restoring the list afterwards."""
    saved = SL.TILE_CONFIGS[precision]
    SL.TILE_CONFIGS[precision] = [config]
    try:
        yield
    finally:
        SL.TILE_CONFIGS[precision] = saved


def backends() -> list[tuple[str, str]]:
    """(backend, device) pairs this machine can run."""
    if not torch.cuda.is_available():
        return [("torch", "cpu")] + ([("triton", "cpu")] if triton_interpret() else [])
    pairs = [("triton", "cuda")]
    if snnkern.cuda_extension_available():
        pairs.append(("cuda", "cuda"))
    return pairs


def cases(backend: str, device: str):
    """(name, fn) pairs: fn() returns (result, reference) to compare."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        for T, N in ((3, 37), (5, 1029)):
            x = (torch.randn(T, N, generator=g) * 0.6 + 0.4).to(device, dtype)

            def lif_fwd_bwd(x=x, fn=lif, kw=None):
                kw = kw or {"beta": 0.9}
                xa = x.clone().requires_grad_()
                xr = x.float().clone().requires_grad_()
                spikes, v = fn(xa, backend=backend, **kw)
                ref_spikes, ref_v = fn(xr, backend="torch", **kw)
                grad = torch.ones_like(ref_spikes)
                spikes.float().backward(grad)
                ref_spikes.backward(grad)
                return (torch.cat([v.float().flatten(), xa.grad.float().flatten()]),
                        torch.cat([ref_v.flatten(), xr.grad.flatten()]))
            name = f"{str(dtype)[6:]} T={T} N={N}"
            yield f"lif fwd+bwd {name}", lif_fwd_bwd
            yield f"if fwd+bwd {name}", lambda x=x: lif_fwd_bwd(x, if_, {"threshold": 1.0})
            yield f"lif packed fwd {name}", lambda x=x: (
                lif(x, beta=0.9, spike_dtype=torch.int32, backend=backend)[0].float(),
                lif(x, beta=0.9, spike_dtype=torch.int32, backend="torch")[0].float())
    # every entry of each precision's list, taken now (the cases swap the lists while they run)
    tile_configs = {p: list(SL.TILE_CONFIGS[p]) for p in PRECISION_DTYPES}
    for M, K in ((7, 33), (65, 100)):
        s = (torch.rand(M, K, generator=g) < 0.3).float().to(device)
        w = (torch.randn(19, K, generator=g) * 0.1).to(device)
        yield f"pack/unpack M={M} K={K}", lambda s=s, K=K: (
            snnkern.unpack_spikes(snnkern.pack_spikes(s, backend=backend), K, backend=backend), s)
        if backend == "cuda":  # spike_linear has Triton kernels only
            continue

        def linear(s, w, algorithm, tile=None):
            """spike_linear fwd+bwd against the fp32 reference; ``tile``: (precision, config) to run with."""
            wa, wr = w.clone().requires_grad_(), w.float().clone().requires_grad_()
            with one_tile_config(*tile) if tile else contextlib.nullcontext():
                y = snnkern.spike_linear(s, wa, algorithm=algorithm, assume_binary=True, backend=backend)
                y.float().sum().backward()
            ref = s @ wr.t()
            ref.sum().backward()
            return (torch.cat([y.float().flatten(), wa.grad.float().flatten()]),
                    torch.cat([ref.flatten(), wr.grad.flatten()]))
        if backend != "triton":
            yield f"spike_linear dense fwd+bwd M={M} K={K}", lambda s=s, w=w: linear(s, w, "dense")
            continue
        for precision, dtype in PRECISION_DTYPES.items():
            wd = w.to(dtype)
            name = f"{precision} M={M} K={K}"
            yield f"spike_linear gather fwd+bwd {name}", lambda s=s, wd=wd: linear(s, wd, "gather")
            for i, config in enumerate(tile_configs[precision]):
                yield (f"spike_linear tiles fwd+bwd {name} config {i} {config}",
                       lambda s=s, wd=wd, tile=(precision, config): linear(s, wd, "tiles", tile))


def main() -> int:
    failed = total = 0
    for backend, device in backends():
        for name, fn in cases(backend, device):
            total += 1
            got, ref = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            err = ((got.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-12)).item()
            ok = err < 5e-2  # spikes may flip at the threshold in bf16; this catches garbage, not rounding
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {backend:6s} {name}: relative error {err:.2e}")
    print(f"{total} cases, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
