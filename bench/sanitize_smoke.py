"""Every snnkern kernel once, on small odd shapes, forward and backward: the workload that
``bench/gpu_session.sh`` runs under ``compute-sanitizer --tool memcheck`` (which slows each launch a
lot, so the shapes are small and each kernel runs once or twice; odd sizes put the tails of vector
and tile loops at the edge of their buffers).

On a GPU it runs the Triton kernels and, when ``snnkern._C`` is built, the C++/CUDA kernels; without
one it runs the reference on CPU (a dry run of the session proves the script itself). Each result is
compared with the reference, so a kernel that reads garbage fails here too. Exit status 0 when all
agree; it prints one line per case and a count.

    python -m bench.sanitize_smoke
"""
from __future__ import annotations

import sys

import torch

import snnkern
from snnkern.functional import if_, lif


def backends() -> list[tuple[str, str]]:
    """(backend, device) pairs this machine can run."""
    if not torch.cuda.is_available():
        return [("torch", "cpu")]
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
    for M, K in ((7, 33), (65, 100)):
        s = (torch.rand(M, K, generator=g) < 0.3).float().to(device)
        w = (torch.randn(19, K, generator=g) * 0.1).to(device)
        yield f"pack/unpack M={M} K={K}", lambda s=s, K=K: (
            snnkern.unpack_spikes(snnkern.pack_spikes(s, backend=backend), K, backend=backend), s)
        if backend == "cuda":  # spike_linear has Triton kernels only
            continue
        for algorithm in (("tiles", "gather") if backend == "triton" else ("dense",)):
            def linear(s=s, w=w, algorithm=algorithm):
                wa, wr = w.clone().requires_grad_(), w.clone().requires_grad_()
                y = snnkern.spike_linear(s, wa, algorithm=algorithm, assume_binary=True, backend=backend)
                y.sum().backward()
                ref = s @ wr.t()
                ref.sum().backward()
                return torch.cat([y.flatten(), wa.grad.flatten()]), torch.cat([ref.flatten(), wr.grad.flatten()])
            yield f"spike_linear {algorithm} fwd+bwd M={M} K={K}", linear


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
