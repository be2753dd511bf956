"""Registered ops: torch.library.opcheck, torch.compile with no graph break, and a CUDA-free import."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import snnkern
from snnkern.functional import lif
from snnkern.ops.lif import MAX_CHUNK, SPEC_LEN, LifSpec
from snnkern.ops.lif.launch import _native_param


def _device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def _spec(delayed=True, reset=1, spike_dtype=torch.float32, membrane=False):
    return LifSpec(delayed=delayed, reset=reset, v_reset=0.0, v_init=0.0, decay_input=not delayed, detach_reset=delayed,
                   surrogate=0, alpha=2.0, beta_value=0.8, threshold_value=1.0, spike_dtype=spike_dtype,
                   return_membrane=membrane)


def _tensors(T, shape, *, v0=False, beta_tensor=False, thr_tensor=False, grad=False):
    g = torch.Generator().manual_seed(T)
    d = _device()
    x = (torch.randn((T, *shape), generator=g) + 0.3).to(d).requires_grad_(grad)
    v0_t = torch.randn(shape, generator=g).to(d).requires_grad_(grad) if v0 else None
    beta = torch.rand(shape[-1:], generator=g).to(d).requires_grad_(grad) if beta_tensor else None
    thr = torch.tensor(0.9, device=d, requires_grad=grad) if thr_tensor else None
    return x, v0_t, beta, thr


def _fwd_args(T, shape, *, v0=False, beta_tensor=False, thr_tensor=False, grad=False, delayed=True, reset=1,
              spike_dtype=torch.float32, membrane=False, backend="triton"):
    tensors = _tensors(T, shape, v0=v0, beta_tensor=beta_tensor, thr_tensor=thr_tensor, grad=grad)
    return (*tensors, *_spec(delayed, reset, spike_dtype, membrane), grad, backend)


FWD_SAMPLES = [
    dict(T=5, shape=(3, 7)),
    dict(T=MAX_CHUNK + 4, shape=(2, 9), v0=True, beta_tensor=True, thr_tensor=True, grad=True),
    dict(T=3, shape=(4,), v0=True, grad=True, delayed=False, reset=2, membrane=True),
    dict(T=4, shape=(2, 5), spike_dtype=torch.bool),
]


@pytest.mark.triton
@pytest.mark.parametrize("sample", FWD_SAMPLES, ids=str)
def test_opcheck_lif_fwd(sample):
    torch.library.opcheck(torch.ops.snnkern.lif_fwd.default, _fwd_args(**sample))


@pytest.mark.triton
def test_opcheck_lif_bwd():
    x, v0, beta, thr = _tensors(MAX_CHUNK + 2, (2, 6), v0=True, beta_tensor=True, thr_tensor=True)
    spec = _spec()
    _, _, _, ckpt = torch.ops.snnkern.lif_fwd(x, v0, beta, thr, *spec, True, "triton")
    gs, gv, gvs = torch.randn_like(x), torch.randn_like(v0), torch.randn_like(x)
    torch.library.opcheck(torch.ops.snnkern.lif_bwd.default,
                          (gs, gv, gvs, x, v0, beta, thr, ckpt, *spec, True, True, True, "triton"))
    torch.library.opcheck(torch.ops.snnkern.lif_bwd.default,
                          (None, gv, None, x, None, None, None, ckpt, *spec, False, False, False, "triton"))


@pytest.mark.cuda_ext
@pytest.mark.parametrize("sample", FWD_SAMPLES, ids=str)
def test_opcheck_native_ops(sample):
    """The C++ ops, declared in Python (ops/schemas.py) with fake registrations, pass opcheck too."""
    args = _fwd_args(**dict(sample, backend="cuda"))
    torch.library.opcheck(torch.ops.snnkern.lif_fwd.default, args)
    # the native ops are kernels, not differentiable: detached inputs, beta/threshold as the kernels take them
    x, v0, beta, thr = (None if t is None else t.detach() for t in args[:4])
    shape, n = x.shape[1:], x[0].numel()
    beta, thr = _native_param(beta, shape, n), _native_param(thr, shape, n)
    spec = LifSpec(*args[4:4 + SPEC_LEN])
    torch.library.opcheck(torch.ops.snnkern.lif_fwd_native.default, (x, v0, beta, thr, *spec, True))
    spec = spec._replace(spike_dtype=x.dtype)
    ckpt = torch.ops.snnkern.lif_fwd_native(x, v0, beta, thr, *spec, True)[3]
    grads = (torch.randn_like(x), None if v0 is None else torch.randn_like(v0), torch.randn_like(x))
    need = (v0 is not None, beta is not None and beta.numel() > 1, thr is not None)
    torch.library.opcheck(torch.ops.snnkern.lif_bwd_native.default, (*grads, x, v0, beta, thr, ckpt, *spec, *need))
    s = (torch.rand(3, 45) > 0.5).float()
    words = torch.ops.snnkern.pack_spikes_native(s)
    torch.library.opcheck(torch.ops.snnkern.pack_spikes_native.default, (s,))
    torch.library.opcheck(torch.ops.snnkern.unpack_spikes_native.default, (words, 45, torch.float32))


class TinySNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(12, 16), torch.nn.Linear(16, 4)
        self.beta = torch.nn.Parameter(torch.full((16,), 0.8))

    def forward(self, x_seq):  # [T, B, 12]
        s1, _ = lif(self.fc1(x_seq), beta=self.beta, backend="triton")
        s2, v2 = lif(self.fc2(s1), convention="spikingjelly", reset="hard", backend="triton")
        return s2.sum(0) + v2


@pytest.mark.triton
def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = TinySNN().to(_device())
    x = torch.randn(MAX_CHUNK + 3, 5, 12, device=_device()) * 2
    eager_out = model(x)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: any graph break is an error
    out = compiled(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, eager_out, rtol=1e-5, atol=1e-5)
    for g, e in zip([p.grad for p in model.parameters()], eager_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
    assert snnkern.last_backend("lif") == "triton"


def test_import_never_touches_cuda():
    """In a fresh interpreter where any CUDA initialization raises, importing snnkern still works."""
    code = textwrap.dedent("""
        import torch, torch.cuda
        def boom(*a, **k):
            raise RuntimeError("CUDA touched at import")
        torch.cuda._lazy_init = boom
        torch.cuda.init = boom
        torch.cuda.is_available = boom
        torch.cuda.device_count = boom
        torch.cuda.current_device = boom
        import snnkern, snnkern.functional, snnkern.ops
        assert hasattr(torch.ops.snnkern, "lif_fwd") and hasattr(torch.ops.snnkern, "lif_bwd")
        assert not torch.cuda.is_initialized()
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
