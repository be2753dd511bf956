"""The host path of a call: one resolved LifSpec, the eager autograd Function, the registered ops under
torch.compile (also dynamic=True and a first-ever backend="cuda" call inside a compiled region), and
torch.func transforms."""
import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import snnkern
from snnkern.functional import TENSOR, if_, if_spec, lif, lif_spec
from snnkern.ops.lif import SPEC_LEN, LifSpec
from snnkern.ops.schemas import SPEC_SCHEMA

KERNEL_BACKENDS = [pytest.param("triton", marks=pytest.mark.triton), pytest.param("cuda", marks=pytest.mark.cuda_ext)]


def _device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def test_schema_is_generated_from_the_spec():
    """The option list exists once: LifSpec's fields, in order, are the ops' (and the C++ ops') arguments."""
    names = [a.name for a in torch.ops.snnkern.lif_fwd.default._schema.arguments]
    assert names[4:4 + SPEC_LEN] == list(LifSpec._fields)
    assert names[4 + SPEC_LEN:] == ["save_for_backward", "backend"]
    native = [a.name for a in torch.ops.snnkern.lif_fwd_native.default._schema.arguments]
    # the C++ op: the same arguments without the backend, plus where it reads a per-channel beta/threshold
    assert native == names[:-1] + ["param_layout"]
    assert SPEC_SCHEMA.startswith("bool delayed, int reset, float v_reset")


def test_spec_is_resolved_once_and_cached():
    args = ("snntorch", 0.8, None, 1.0, "subtract", 0.0, None, None, "atan", None, torch.float32, False)
    assert lif_spec(*args) is lif_spec(*args)
    spec = lif_spec(*args)
    assert spec.beta_value == 0.8 and spec.delayed and spec.threshold_value == 1.0
    assert lif_spec("snntorch", TENSOR, None, TENSOR, "subtract", 0.0, None, None, "atan", None, torch.float32,
                    False).beta_value == 0.0
    assert if_spec("spikingjelly", 1.0, "hard", 0.0, None, "atan", None, torch.float32, False).beta_value == 1.0


@pytest.mark.parametrize("bad, match", [
    (dict(surrogate=["atan"]), "surrogate"),  # unhashable: the cache steps aside, the check still names it
    (dict(reset={"subtract"}), "reset"),
    (dict(threshold=-1.0), "threshold"),
    (dict(beta=float("nan")), "beta"),
    (dict(alpha=[2.0]), "alpha"),
])
def test_named_errors_survive_the_cache(bad, match):
    x = torch.randn(3, 4)
    for _ in range(2):  # a second, possibly cached, call raises the same
        with pytest.raises((TypeError, ValueError), match=match):
            lif(x, **bad)


def test_module_option_changed_after_construction_is_honoured():
    x = torch.full((2, 1, 3), 0.6)
    layer = snnkern.nn.IF(threshold=1.0)
    assert layer(x).sum() == 3  # 0.6, 1.2 -> one spike per neuron at step 2
    layer.reset()
    layer.threshold = 0.5
    assert layer(x).sum() == 6


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_eager_calls_run_the_autograd_function_not_the_op(backend):
    x = torch.randn(5, 2, 8, device=_device(), requires_grad=True)
    spikes, v = lif(x, backend=backend)
    assert type(spikes.grad_fn).__name__ == "LifFunctionBackward"
    spikes.sum().backward()
    assert x.grad is not None
    with torch.no_grad():  # no autograd: the launcher itself, nothing to save
        spikes, v = lif(x, backend=backend)
    assert spikes.grad_fn is None


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_compile_fullgraph_dynamic(backend):
    """dynamic=True turns float options into symbols: the checks must trace, not call math.isfinite."""
    torch._dynamo.reset()
    beta = torch.full((8,), 0.8, device=_device(), requires_grad=True)

    def f(x, beta):
        s, v = lif(x, beta=beta, threshold=0.5, backend=backend)
        s2, _ = if_(s, convention="spikingjelly", backend=backend)
        return s2.sum(0) + v

    x = torch.randn(5, 3, 8, device=_device(), requires_grad=True)
    eager = f(x, beta)
    compiled = torch.compile(f, fullgraph=True, dynamic=True)
    for T in (5, 7):  # a second length reuses the dynamic graph
        xt = torch.randn(T, 3, 8, device=_device())
        torch.testing.assert_close(compiled(xt, beta), f(xt, beta))
    out = compiled(x, beta)
    torch.testing.assert_close(out, eager)
    (g_c,) = torch.autograd.grad(out.sum(), beta)
    (g_e,) = torch.autograd.grad(eager.sum(), beta)
    torch.testing.assert_close(g_c, g_e, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda_ext
def test_first_cuda_backend_call_inside_a_compiled_region():
    """The extension is loaded at import, so a compiled function may make the process's first
    backend='cuda' call (tracing an import would fail)."""
    code = textwrap.dedent("""
        import torch, snnkern
        from snnkern.functional import lif
        f = torch.compile(lambda x: lif(x, backend="cuda")[0].sum(), fullgraph=True)
        x = torch.randn(4, 2, 8, device="cuda" if torch.cuda.is_available() else "cpu")
        assert float(f(x)) == float(lif(x, backend="torch")[0].sum())
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_torch_func_on_the_reference():
    x = torch.randn(4, 3, 8, dtype=torch.float64)

    def f(x):
        s, v = lif(x, beta=0.8, threshold=0.5, backend="torch")
        return s.sum() + v.sum()

    xg = x.clone().requires_grad_()
    f(xg).backward()
    torch.testing.assert_close(torch.func.grad(f)(x), xg.grad)
    batched = torch.func.vmap(lambda xi: lif(xi, backend="torch")[0])(torch.randn(2, 4, 3, 8))
    assert batched.shape == (2, 4, 3, 8)
    assert torch.func.grad(f)(x).shape == x.shape  # "auto" on CPU is the reference too


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_torch_func_on_a_kernel_backend_is_a_named_error(backend):
    x = torch.randn(4, 3, 8, device=_device())
    with pytest.raises(ValueError, match="torch.func"):
        torch.func.grad(lambda x: lif(x, backend=backend)[0].sum())(x)


def _count_value_checks(monkeypatch) -> list:
    """Each real check of a tensor beta/threshold's values (``_checks.check_param_values``: one device sync on
    a GPU) calls torch.isfinite once; nothing else on these paths does (check_finite is off)."""
    calls, isfinite = [], torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: calls.append(tuple(t.shape)) or isfinite(t))
    return calls


def _parametric_layer(kind: str):
    """A parametric LIF as a user holds it: snnkern's PLIF, or SpikingJelly's ParametricLIFNode swapped."""
    if kind == "plif":
        return snnkern.nn.PLIF(init_tau=2.0, backend="torch"), lambda layer: layer.reset()
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    node = neuron.ParametricLIFNode(init_tau=2.0, step_mode="m")
    snnkern.swap(node, backend="torch")
    return node, lambda layer: layer.reset()


@pytest.mark.parametrize("kind", ["plif", "spikingjelly"])
def test_parametric_decay_is_derived_every_call_without_a_value_check(monkeypatch, kind):
    """Inference through a parametric LIF derived ``1 - sigmoid(w)`` per call and checked the fresh tensor's
    values (a GPU sync) on every call. It is in range by construction: no check now. And derived every call,
    it follows every write of ``w``: in place, through ``.data``, and a fused optimizer step (which counts no
    version)."""
    torch.manual_seed(0)
    layer, reset = _parametric_layer(kind)
    x = torch.rand(5, 3, 7) * 2
    calls = _count_value_checks(monkeypatch)

    def run():
        reset(layer)
        with torch.no_grad():
            return layer(x)

    outs = [run() for _ in range(3)]
    assert calls == [] and all(torch.equal(o, outs[0]) for o in outs)
    reset(layer)
    fresh = layer(x)  # grad enabled and w requires grad: derived in the graph
    assert fresh.requires_grad and torch.equal(fresh.detach(), outs[0])
    seen = [outs[0]]
    for write in (lambda: layer.w.data.add_(1.5), lambda: torch.optim.SGD([layer.w], lr=2.0, fused=True).step()):
        layer.w.grad = torch.ones_like(layer.w)
        write()
        out = run()
        with torch.no_grad():
            expected = lif(x, beta=1.0 - layer.w.sigmoid(), convention="spikingjelly", decay_input=True, reset="hard",
                           surrogate="sigmoid", alpha=4.0, backend="torch")[0]
        assert torch.equal(out, expected) and not torch.equal(out, seen[-1])
        seen.append(out)


def test_swapped_leaky_stores_mem_as_its_buffer_and_runs_buffer_hooks():
    """The swapped Leaky writes ``mem`` straight into its buffers (nn.Module.__setattr__'s generic path costs a
    few microseconds a step): the same buffer as before (non-persistent, so not in state_dict), and while a
    buffer-registration hook is installed the generic path runs, hook included."""
    snntorch = pytest.importorskip("snntorch")
    neuron = snntorch.Leaky(beta=0.9)
    snnkern.swap(neuron, backend="torch")
    x = torch.rand(2, 3)
    spk, mem = neuron(x, neuron.init_leaky())
    assert neuron._buffers["mem"] is mem and "mem" not in neuron.state_dict()
    seen = []
    handle = torch.nn.modules.module.register_module_buffer_registration_hook(lambda m, name, t: seen.append(name))
    try:
        neuron(x, mem)
    finally:
        handle.remove()
    assert seen == ["mem", "mem"]  # the state passed in, then the new one
    neuron(x, torch.nn.Buffer(torch.zeros(2, 3), persistent=True))  # a Buffer carries its persistence, as in
    assert "mem" in neuron.state_dict()  # nn.Module.__setattr__ (the generic path)


@pytest.mark.parametrize("kind", ["plif", "spikingjelly"])
def test_parametric_lif_under_inference_mode_then_training(kind):
    """torch.inference_mode (an eval loop) then training: the decay derived inside inference mode must not be
    an inference tensor kept for later (autograd cannot save one), and inference tensors, which have no
    version counter, are checked without one."""
    layer, reset = _parametric_layer(kind)
    x = torch.rand(5, 3, 7) * 2
    with torch.inference_mode():  # the first call of the layer: the decay is first derived in here
        first = layer(x)
        reset(layer)
        assert torch.equal(layer(x), first)
    reset(layer)
    with torch.no_grad():
        assert torch.equal(layer(x), first)
    reset(layer)
    layer(x.clone().requires_grad_()).sum().backward()
    assert layer.w.grad is not None


def test_tensor_beta_kept_from_inference_mode_still_trains():
    """snnTorch convention, fixed tensor beta: its clamp, first made inside torch.inference_mode, is kept as a
    normal tensor, so a training call after it can save it for backward (it raised before)."""
    x = torch.rand(6, 2, 5) * 2
    beta = torch.tensor(0.8)
    with torch.inference_mode():
        spikes_inf = lif(x, beta=beta, backend="torch")[0]
        made_inside = torch.tensor(0.8)  # an inference tensor: no version counter, checked every call
        assert torch.equal(lif(x, beta=made_inside, backend="torch")[0], spikes_inf)
        with pytest.raises(ValueError, match="beta"):
            lif(x, beta=torch.tensor(float("nan")), convention="spikingjelly", backend="torch")
    xg = x.clone().requires_grad_()
    spikes, v_last = lif(xg, beta=beta, backend="torch")
    (spikes.sum() + v_last.sum()).backward()
    assert torch.equal(spikes.detach(), spikes_inf) and xg.grad is not None


def test_snntorch_leaky_built_under_inference_mode_swaps_and_runs():
    """A Leaky constructed inside torch.inference_mode holds inference tensors (graded_spikes_factor has no
    version counter): the swapped layer re-checks its options each call instead of failing."""
    snntorch = pytest.importorskip("snntorch")
    x = torch.rand(2, 3) * 2
    with torch.inference_mode():
        neuron = snntorch.Leaky(beta=0.9)
        reference = neuron(x, neuron.init_leaky())
        snnkern.swap(neuron, backend="torch")
        for got, want in zip(neuron(x, neuron.init_leaky()), reference):
            assert torch.equal(got, want)


def test_every_triton_launch_runs_on_its_tensors_device():
    """Triton launches on the current CUDA device, not the tensors': every launch in snnkern/ops sits in a
    `with on_device(...)` block (a layer on cuda:1 while cuda:0 is current would otherwise hand device-1
    pointers to a kernel on device 0). Read from the source: a new launch without it fails here."""
    import ast
    import inspect

    import snnkern.ops.lif.launch as launch
    import snnkern.ops.spike_linear as spike_linear
    import snnkern.ops.spike_pack as spike_pack

    launches = unguarded = 0
    for module in (launch, spike_linear, spike_pack):
        tree = ast.parse(inspect.getsource(module))
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.With) and any(isinstance(i.context_expr, ast.Call) and
                                                  getattr(i.context_expr.func, "id", None) == "on_device"
                                                  for i in node.items):
                guarded.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):  # kernel[grid](...): a call of a subscript
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript):
                launches += 1
                unguarded += id(node) not in guarded
    assert launches >= 11 and unguarded == 0, (launches, unguarded)


def test_on_device_makes_the_tensors_device_current_only_when_it_is_not(monkeypatch):
    from snnkern.ops._triton import on_device

    class OnGPU:  # what on_device reads of a CUDA tensor
        is_cuda = True

        def __init__(self, index):
            self.device = torch.device("cuda", index)

    entered = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", lambda d: entered.append(d) or contextlib.nullcontext())
    with on_device(OnGPU(0)):
        pass
    with on_device(torch.zeros(1)):  # CPU (the interpreter): nothing to switch
        pass
    assert entered == []
    with on_device(OnGPU(1)):
        pass
    assert entered == [torch.device("cuda", 1)]


@pytest.mark.gpu
def test_kernels_run_on_a_second_gpu_while_the_first_is_current():
    """A layer on cuda:1 while cuda:0 is current: the Triton kernels launch there (needs two GPUs)."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    from snnkern import spike_linear
    torch.cuda.set_device(0)
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(6, 4, 96, generator=g), torch.randn(8, 96, generator=g)
    s_ref, v_ref = lif(x, backend="torch")
    s, v = lif(x.to("cuda:1").requires_grad_(), backend="triton")
    (s.sum() + v.sum()).backward()
    assert torch.equal(s.cpu(), s_ref) and torch.equal(v.cpu(), v_ref)
    for algorithm in ("tiles", "gather"):
        y = spike_linear(s_ref.reshape(-1, 96).to("cuda:1"), w.to("cuda:1"), algorithm=algorithm, backend="triton")
        torch.testing.assert_close(y.cpu(), s_ref.reshape(-1, 96) @ w.t(), rtol=1e-5, atol=1e-5)
