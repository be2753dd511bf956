"""Triton, or a stand-in that lets the package import where Triton is not installed.

Triton ships with Linux builds of PyTorch; elsewhere (macOS, Windows) the kernels cannot run, but
``import snnkern`` and the PyTorch reference must still work.  The stand-in only has to survive the
kernel *definitions*; dispatch never launches a kernel when ``HAS_TRITON`` is False.
"""
try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised only on platforms without Triton
    import types

    HAS_TRITON = False

    def _jit(fn=None, **_kwargs):
        return fn if fn is not None else (lambda f: f)

    def _next_power_of_2(n: int) -> int:
        return 1 << max(int(n) - 1, 0).bit_length()

    triton = types.SimpleNamespace(jit=_jit, cdiv=lambda a, b: -(-a // b), next_power_of_2=_next_power_of_2)
    tl = types.SimpleNamespace(constexpr=object)

import contextlib

import torch

_SAME_DEVICE = contextlib.nullcontext()


def on_device(t: torch.Tensor):
    """The context a Triton launch on ``t``'s data runs in: Triton launches on the *current* CUDA device (and
    its current stream), not on the tensors' device, so a layer on cuda:1 while cuda:0 is current would hand
    device-1 pointers to a kernel on device 0 (an illegal address, or another GPU's memory read). That device
    is made current for the launch; where it already is (the common case), nothing is done."""
    if t.is_cuda and t.device.index != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return _SAME_DEVICE


__all__ = ["HAS_TRITON", "triton", "tl", "on_device"]
