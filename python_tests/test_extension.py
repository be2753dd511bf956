"""The compiled backend snnkern._C: loaded without touching CUDA, ops registered for CUDA and CPU."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import snnkern
from snnkern.functional import lif

NATIVE_OPS = ("lif_fwd_native", "lif_bwd_native", "pack_spikes_native", "unpack_spikes_native")


@pytest.mark.cuda_ext
@pytest.mark.parametrize("op", NATIVE_OPS)
def test_ops_have_cuda_and_cpu_kernels(op):
    for key in ("CUDA", "CPU"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"snnkern::{op}", key), (op, key)


def test_availability_is_reported():
    assert isinstance(snnkern.cuda_extension_available(), bool)
    status = snnkern.extension_status()
    assert status == "loaded" or status.startswith("not available (")
    if not snnkern.cuda_extension_available():
        with pytest.raises(ValueError, match="backend='cuda' needs the compiled extension"):
            lif(torch.ones(2, 3), backend="cuda")


@pytest.mark.cuda_ext
def test_loading_the_extension_does_not_initialize_cuda():
    code = textwrap.dedent("""
        import torch
        import snnkern
        assert snnkern.cuda_extension_available()
        assert not torch.cuda.is_initialized()
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.cuda_ext
def test_a_kernel_whose_signature_differs_from_the_schema_is_an_error_not_an_abort():
    """An extension built from other csrc/ sources than the package's schemas (an editable install not rebuilt
    after a pull) used to terminate the process while loading (a static registration threw). Now the
    registration raises RuntimeError, registers nothing, and the process goes on."""
    import importlib.util
    path = importlib.util.find_spec("snnkern._C").origin
    code = textwrap.dedent(f"""
        import importlib.util, torch
        spec = importlib.util.spec_from_file_location("_C", {path!r})  # the .so alone: no snnkern schemas
        ext = importlib.util.module_from_spec(spec); spec.loader.exec_module(ext)
        lib = torch.library.Library("snnkern", "DEF")
        lib.define("lif_fwd_native(Tensor x) -> Tensor")  # not the C++ function's signature
        try:
            ext.register_kernels()
        except RuntimeError as e:
            assert "schema" in str(e), e
            assert not torch._C._dispatch_has_kernel_for_dispatch_key("snnkern::lif_fwd_native", "CPU")
            print("refused")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "refused", out.stderr[-3000:]


def test_a_stale_extension_is_reported_with_the_rebuild_command(monkeypatch):
    """What snnkern says when the extension's registration is refused: not available, why, how to rebuild."""
    from snnkern import _extension

    class Stale:
        @staticmethod
        def register_kernels():
            raise RuntimeError("Inferred operator schema for a C++ kernel function doesn't match the expected "
                               "function schema.\n  operator: snnkern::lif_fwd_native")

    monkeypatch.setitem(_extension._status, "loaded", None)
    monkeypatch.setitem(_extension._status, "reason", None)
    monkeypatch.setitem(_extension._status, "stale", False)
    monkeypatch.setattr(_extension.importlib, "import_module", lambda name: Stale)
    assert not snnkern.cuda_extension_available()
    status = snnkern.extension_status()
    assert "built from other sources" in status and "doesn't match" in status and "pip install" in status
    with pytest.raises(ValueError, match="built from other sources"):
        lif(torch.ones(2, 3), backend="cuda")


@pytest.mark.cuda_ext
def test_bad_input_through_the_cuda_backend_raises_the_same_named_errors():
    with pytest.raises(ValueError, match="x_seq"):
        lif(torch.ones(5), backend="cuda")
    with pytest.raises(ValueError, match="threshold"):
        lif(torch.ones(2, 3), threshold=0.0, backend="cuda")
    with pytest.raises(ValueError, match="float64"):
        lif(torch.ones(2, 3, dtype=torch.float64), backend="cuda")


def _at_offset(t: torch.Tensor, offset: int) -> torch.Tensor:
    """A contiguous copy of t that starts `offset` elements past an aligned address."""
    buf = torch.empty(t.numel() + offset, dtype=t.dtype, device=t.device)
    out = buf[offset:].view(t.shape)
    out.copy_(t)
    return out


# (N, x offset, v0 offset in elements) -> neurons a thread lif_fwd_native picks: 16 bytes of x a load (4 fp32,
# 8 bf16/fp16) where N and every base allow it, else 4 (16-bit x: 8-byte loads), else one
_PATHS = {
    torch.float32: [((16, 0, 0), 4), ((12, 0, 0), 4), ((16, 2, 0), 1), ((16, 1, 0), 1)],
    torch.bfloat16: [((16, 0, 0), 8), ((12, 0, 0), 4), ((16, 4, 0), 4), ((16, 0, 4), 4), ((16, 1, 0), 1)],
}
_PATHS[torch.float16] = _PATHS[torch.bfloat16]


@pytest.mark.cuda_ext
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_forward_vector_and_scalar_paths_agree_bitwise(device, dtype):
    """lif_fwd_native runs 8 bf16/fp16 or 4 fp32 neurons at a time when N and every base are aligned to that
    many elements, 4 bf16/fp16 neurons when only 4 fit (N % 8 == 4, or a base aligned to 4 elements but not
    8), one at a time otherwise (the CPU path makes the launcher's choice too). The same inputs at aligned
    and misaligned addresses take each path (snnkern._C.last_forward_vec says which ran) and give the spikes,
    final and per-step membranes and checkpoints of the scalar path, bit for bit."""
    from snnkern import _C
    from snnkern.ops.lif import LifSpec

    T = 35  # two checkpoints
    g = torch.Generator().manual_seed(0)
    fired = False
    for (N, x_offset, v0_offset), vec in _PATHS[dtype]:
        x = (torch.randn(T, N, generator=g) * 0.7 + 0.35).to(dtype).to(device)
        v0 = (torch.randn(N, generator=g) * 0.5).to(device)
        beta = (0.5 + 0.4 * torch.rand(N, generator=g)).to(device)
        for delayed in (False, True):
            for reset in (0, 1, 2):
                for decay_input in (False, True):
                    for spike_dtype in (dtype, torch.uint8, torch.bool):
                        spec = LifSpec(delayed, reset, 0.1, 0.0, decay_input, False, 0, 2.0, 0.9, 1.0, spike_dtype,
                                       True)
                        for per_neuron in (False, True):
                            b = beta if per_neuron else None
                            scalar = torch.ops.snnkern.lif_fwd_native(_at_offset(x, 1), v0, b, None, *spec, True)
                            assert _C.last_forward_vec() == 1
                            out = torch.ops.snnkern.lif_fwd_native(_at_offset(x, x_offset), _at_offset(v0, v0_offset),
                                                                   b, None, *spec, True)
                            case = (N, x_offset, v0_offset, spec, per_neuron)
                            assert _C.last_forward_vec() == vec, case
                            for name, a, s in zip(("spikes", "v_last", "v_seq", "checkpoints"), out, scalar):
                                assert a.shape == s.shape and torch.equal(a, s), (name, case)
                            fired |= bool(out[0].any())
    assert fired


# rest shape, x offset in elements -> neurons a thread of the packed forward (32 | the last dim, so V | N)
_PACKED_PATHS = {
    torch.float32: [((2, 64), 0, 4), ((32,), 0, 4), ((2, 64), 2, 1)],
    torch.bfloat16: [((2, 64), 0, 8), ((32,), 0, 8), ((3, 96), 0, 8), ((2, 64), 4, 4), ((2, 64), 1, 1)],
}
_PACKED_PATHS[torch.float16] = _PACKED_PATHS[torch.bfloat16]


@pytest.mark.cuda_ext
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_forward_packs_spikes_in_the_kernel_as_pack_spikes_does(device, dtype):
    """spike_dtype=int32 with 32 | the last dim: lif_fwd_native writes the words itself (a warp's lanes of one
    word combine their bits on the GPU; the CPU build ORs them in neuron order), on every path (8, 4, 1
    neurons a thread; N = 32 leaves most of a GPU warp idle): exactly pack_spikes of its uint8 spikes, bit 31
    included, with the same membranes and checkpoints."""
    from snnkern import _C
    from snnkern.ops.lif import LifSpec

    T = 35
    g = torch.Generator().manual_seed(1)
    sign_bits = False  # some word has its bit 31 set
    for rest, x_offset, vec in _PACKED_PATHS[dtype]:
        x = (torch.randn(T, *rest, generator=g) * 1.4 + 0.35).to(dtype).to(device)
        beta = (0.5 + 0.4 * torch.rand(rest, generator=g)).to(device).reshape(-1)
        xs = _at_offset(x, x_offset)
        for delayed in (False, True):
            for reset in (0, 1, 2):
                for decay_input in (False, True):
                    for b in (None, beta):
                        spec = LifSpec(delayed, reset, 0.1, 0.0, decay_input, False, 0, 2.0, 0.9, 1.0, torch.int32,
                                       True)
                        packed = torch.ops.snnkern.lif_fwd_native(xs, None, b, None, *spec, True)
                        case = (rest, x_offset, spec, b is not None)
                        assert _C.last_forward_vec() == vec, case
                        spec = spec._replace(spike_dtype=torch.uint8)
                        dense = torch.ops.snnkern.lif_fwd_native(xs, None, b, None, *spec, True)
                        assert packed[0].shape == (T, *rest[:-1], rest[-1] // 32), case
                        assert torch.equal(packed[0], snnkern.pack_spikes(dense[0])), case
                        sign_bits |= bool((packed[0] < 0).any())
                        for name, a, d in zip(("v_last", "v_seq", "checkpoints"), packed[1:], dense[1:]):
                            assert torch.equal(a, d), (name, case)
    assert sign_bits


@pytest.mark.cuda_ext
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_per_channel_parameters_reach_the_cpp_kernels_unexpanded(device):
    """A learnable per-channel beta/threshold ([C, 1, 1] of a conv layer's [B, C, H, W]) goes to the C++ ops as
    its C values with a (div, period) layout, as the Triton kernels read it (mode 3): no expanded copy of N
    floats per forward and backward. The results equal those of the same ops given expanded [N] copies."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace == "snnkern":
                self.calls.append((func.name(), args))
            return func(*args, **(kwargs or {}))

    B, C, H, W, T = 2, 3, 4, 5, 20  # T > one chunk: checkpoints, the backward's recompute from them
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(T, B, C, H, W, generator=g) * 1.2).to(device).requires_grad_()
    beta = (torch.rand(C, 1, 1, generator=g) * 0.5 + 0.45).to(device).requires_grad_()
    thr = (torch.rand(C, 1, 1, generator=g) * 0.5 + 0.6).to(device).requires_grad_()
    with Seen() as seen:
        s, v = lif(x, beta=beta, threshold=thr, backend="cuda")
        (s.sum() + v.square().sum()).backward()
    names = [name for name, _ in seen.calls]
    assert names == ["snnkern::lif_fwd_native", "snnkern::lif_bwd_native"], names
    for name, args in seen.calls:
        b, t, layout = (args[2], args[3], args[-1]) if "fwd" in name else (args[5], args[6], args[-1])
        assert b.numel() == t.numel() == C and list(layout) == [H * W, C, H * W, C], (name, b.shape, layout)
    fwd_args = seen.calls[0][1]
    expanded = [p.detach().expand(B, C, H, W).reshape(-1).contiguous() for p in (beta, thr)]
    ref = torch.ops.snnkern.lif_fwd_native(x.detach(), None, *expanded, *fwd_args[4:-1])
    ours = torch.ops.snnkern.lif_fwd_native(*(a.detach() if isinstance(a, torch.Tensor) else a for a in fwd_args))
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    # a layout whose period does not match the tensor is refused, never read out of bounds
    with pytest.raises(RuntimeError, match="read in place needs"):
        torch.ops.snnkern.lif_fwd_native(x.detach(), None, beta.detach().reshape(-1), None, *fwd_args[4:-1],
                                         [H * W, C + 1, 1, 0])


@pytest.mark.cuda_ext
def test_forward_packs_in_the_kernel_only_whole_words_of_a_row():
    from snnkern.ops.lif import LifSpec

    spec = LifSpec(False, 1, 0.0, 0.0, False, False, 0, 2.0, 0.9, 1.0, torch.int32, False)
    with pytest.raises(RuntimeError, match="multiple of 32"):
        torch.ops.snnkern.lif_fwd_native(torch.ones(4, 2, 48), None, None, None, *spec, False)
    with torch._subclasses.fake_tensor.FakeTensorMode():  # the fake (torch.compile's view) refuses it alike
        with pytest.raises(RuntimeError, match="multiple of 32"):
            torch.ops.snnkern.lif_fwd_native(torch.ones(4, 2, 48), None, None, None, *spec, False)
        assert torch.ops.snnkern.lif_fwd_native(torch.ones(4, 2, 64), None, None, None, *spec, False)[0].shape == \
            (4, 2, 2)
    p, _ = lif(torch.ones(4, 2, 48) * 2, spike_dtype=torch.int32, backend="cuda")  # packed after the kernel
    assert p.shape == (4, 2, 2) and torch.equal(p, snnkern.pack_spikes(torch.ones(4, 2, 48)))


@pytest.mark.cuda_ext
@pytest.mark.gpu
def test_large_tensor_indexing_is_64_bit():
    """More than 2**31 elements (T * N) where memory allows: the last neuron's last step is right."""
    free, _ = torch.cuda.mem_get_info()
    T, N = 2, 2**30 + 3
    if free < 12 * T * N:
        pytest.skip("not enough GPU memory for a > 2**31-element test")
    x = torch.zeros(T, N, device="cuda")
    x[:, -1] = 1.5
    for backend in ("cuda", "triton"):
        with torch.no_grad():
            s, v = lif(x, beta=0.5, threshold=1.0, backend=backend)
        assert s[1, -1].item() == 1.0 and s[1, -2].item() == 0.0, backend
        del s, v


def test_a_skipped_build_says_why_after_install(tmp_path, monkeypatch):
    """`pip install ".[bench]"` builds in isolation (no torch): setup.py skips the extension, and pip hides
    its output. The reason is left in the package, and extension_status() names it and the cure."""
    import shutil

    import snnkern._extension as ext

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(repo, name), tmp_path / name)
    (tmp_path / "snnkern").mkdir()
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "k.cpp").write_text("")
    no_torch = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['setup.py', '--version']; "
                "runpy.run_path('setup.py', run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNNKERN_")}
    done = subprocess.run([sys.executable, "-c", no_torch], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    note = (tmp_path / "snnkern" / "_build_note.txt").read_text()
    assert "torch is not importable in the build environment" in note
    monkeypatch.setattr(ext, "BUILD_NOTE", str(tmp_path / "snnkern" / "_build_note.txt"))
    monkeypatch.setitem(ext._status, "loaded", False)
    monkeypatch.setitem(ext._status, "reason", "No module named 'snnkern._C'")
    status = ext.extension_status()
    assert "torch is not importable" in status and "--no-build-isolation" in status
