"""Fast drop-in subclasses of snnTorch's and SpikingJelly's neuron layers.

``swap`` turns a foreign neuron into one of these by changing its class in place: the object, its
parameters and buffers (so optimizers keep them), hooks, device, dtype and every attribute stay;
only the forward pass now runs snnkern's fused LIF/IF op with the same semantics.  The library's
own machinery keeps working: ``snntorch.utils.reset``, ``init_leaky``/``reset_mem``, SpikingJelly's
``functional.reset_net``/``detach_net``/``set_step_mode``.

Options are read at every call (as the originals do), so changing e.g. ``reset_mechanism`` or
``v_threshold`` after the swap is honoured; an option that becomes unsupported after the swap
(snnTorch ``inhibition``, ``graded_spikes_factor``, ``reset_delay=False``, ...) raises a named
ValueError at the next call. SpikingJelly's ``store_v_seq=True`` fills ``v_seq`` (multi-step: the sequence;
single-step: each step appended, as SpikingJelly does); one neuron without a neuron dimension (0-d
single-step input, ``[T]`` multi-step) runs as in the originals; half-precision
SpikingJelly input is computed in float32 (announced once per layer with a warning).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.modules.module as _torch_module

from ..functional import if_, lif, sigmoid_decay

# snnTorch builds its surrogates as closures; (qualname, parameter) -> snnkern surrogate name
SNNTORCH_SURROGATES = {
    "atan.<locals>.inner": ("atan", "alpha"),
    "sigmoid.<locals>.inner": ("sigmoid", "slope"),
    "fast_sigmoid.<locals>.inner": ("fast_sigmoid", "slope"),
    "triangular.<locals>.inner": ("snntorch_triangular", "threshold"),
    "straight_through_estimator.<locals>.inner": ("straight_through", None),
}
SNNTORCH_RESETS = {"subtract": "subtract", "zero": "zero", "none": "none"}
# SpikingJelly surrogate classes -> snnkern surrogate name (all take ``alpha``)
SPIKINGJELLY_SURROGATES = {"Sigmoid": "sigmoid", "ATan": "atan", "Rect": "rectangle", "PiecewiseQuadratic": "triangle"}


def snntorch_surrogate(fn):
    """(name, alpha) of an snnTorch spike_grad, or None when snnkern has no exact twin."""
    if getattr(fn, "__module__", None) != "snntorch.surrogate":
        return None
    entry = SNNTORCH_SURROGATES.get(getattr(fn, "__qualname__", ""))
    if entry is None:
        return None
    name, param = entry
    if param is None:
        return name, None
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
    value = cells.get(param)
    return (name, float(value)) if isinstance(value, (int, float)) else None


def spikingjelly_surrogate(fn):
    """(name, alpha) of a SpikingJelly surrogate_function, or None when snnkern has no exact twin."""
    cls = type(fn)
    if not cls.__module__.startswith("spikingjelly.") or cls.__name__ not in SPIKINGJELLY_SURROGATES:
        return None
    if not getattr(fn, "spiking", False) or not isinstance(getattr(fn, "alpha", None), (int, float)):
        return None
    return SPIKINGJELLY_SURROGATES[cls.__name__], float(fn.alpha)


def _is_one(t) -> bool:
    return t.numel() == 1 and float(t) == 1.0


def snntorch_leaky_unsupported(m) -> list[str]:
    problems = []
    if m.surrogate_disable:
        problems.append("surrogate_disable=True")
    if snntorch_surrogate(m.spike_grad) is None:
        problems.append(f"spike_grad={getattr(m.spike_grad, '__qualname__', m.spike_grad)!r} (not an exact snnkern surrogate)")
    if m.inhibition:
        problems.append("inhibition=True")
    if m.state_quant:
        problems.append("state_quant")
    if not getattr(m, "reset_delay", True):
        problems.append("reset_delay=False")
    if m._reset_mechanism not in SNNTORCH_RESETS:
        problems.append(f"reset_mechanism={m._reset_mechanism!r}")
    gsf = m.graded_spikes_factor
    if gsf.requires_grad or not _is_one(gsf):
        problems.append("graded_spikes_factor != 1")
    return problems


def spikingjelly_node_unsupported(m) -> list[str]:
    problems = []
    if spikingjelly_surrogate(m.surrogate_function) is None:
        problems.append(f"surrogate_function={m.surrogate_function!r} (not an exact snnkern surrogate)")
    if getattr(m, "_neuron_precision", None) is not None:
        problems.append("custom neuron precision")
    if not isinstance(m.v_threshold, (int, float)):
        problems.append("non-float v_threshold")
    if m.v_reset is not None and not isinstance(m.v_reset, (int, float)):
        problems.append("non-float v_reset")
    return problems


def _resolve(resolver, fn, what):
    found = resolver(fn)
    if found is None:
        raise ValueError(f"{what} {fn!r} has no exact snnkern equivalent")
    return found


def _refuse(layer, problems):
    raise ValueError(f"{type(layer).__name__} (swapped by snnkern) has option(s) set after the swap that snnkern "
                     f"cannot reproduce exactly: {'; '.join(problems)} (a layer configured this way before the swap "
                     f"is left as it is by snnkern.swap)")


class SnnkernLeaky:
    """Mixin for ``snntorch.Leaky``: its ``forward`` on the fused single-step kernel."""

    snnkern_backend = "auto"

    def snnkern_options(self):
        """(surrogate, alpha) of the current options, re-validated whenever one changed since the last call:
        a swapped layer reproduces the original exactly or refuses with a named error. The check runs
        once per change (reading graded_spikes_factor syncs a GPU), and is skipped while torch.compile
        traces (``swap`` ran it, so the cache is there)."""
        cached = self.__dict__.get("_snnkern_checked")
        if cached is not None and torch.compiler.is_compiling():
            return cached[1]
        gsf = self.graded_spikes_factor
        # an inference tensor has no version counter: a fresh object, never equal, re-checks every call
        version = object() if gsf.is_inference() else gsf._version
        key = (self.spike_grad, self.inhibition, self.state_quant, getattr(self, "reset_delay", True),
               self._reset_mechanism, self.surrogate_disable, gsf, version, gsf.requires_grad)
        if cached is not None and _same(cached[0], key):
            return cached[1]
        problems = snntorch_leaky_unsupported(self)
        if problems:
            _refuse(self, problems)
        options = _resolve(snntorch_surrogate, self.spike_grad, "spike_grad")
        self.__dict__["_snnkern_checked"] = (key, options)  # holds the objects: their ids cannot be reused
        return options

    def forward(self, input_, mem=None):
        # the same control flow as snntorch.Leaky.forward (reset_delay=True)
        if mem is not None:
            _set_buffer(self, "mem", mem)
        if self.init_hidden and mem is not None:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        if self.mem.shape != input_.shape:
            self.mem = torch.zeros_like(input_)
        surrogate, alpha = self.snnkern_options()
        spk, mem = _over_scalar_neurons(
            lambda x_seq, v0: lif(x_seq, v0, beta=self.beta, threshold=self.threshold,
                                  reset=SNNTORCH_RESETS[self._reset_mechanism], convention="snntorch",
                                  surrogate=surrogate, alpha=alpha, backend=self.snnkern_backend),
            input_.unsqueeze(0), self.mem)
        _set_buffer(self, "mem", mem)
        spk = spk[0]
        if self.output or not self.init_hidden:
            return spk, self.mem
        return spk

    def extra_repr(self):
        return f"snnkern backend={self.snnkern_backend!r}"


def _set_buffer(module, name: str, value) -> None:
    """``module.<name> = value`` for a registered buffer and a plain tensor, as nn.Module.__setattr__ stores it,
    without its generic path (a few microseconds, twice a step of a stepped loop); the generic path when
    buffer-registration hooks are installed (it runs them) or the name is not a buffer."""
    buffers = module.__dict__.get("_buffers")
    if (buffers is None or name not in buffers or type(value) is not torch.Tensor
            or getattr(value, "_is_buffer", False)  # an nn.Buffer carries its own persistence
            or getattr(_torch_module, "_global_buffer_registration_hooks", True)):
        setattr(module, name, value)
    else:
        buffers[name] = value


def _over_scalar_neurons(call, x_seq, v0):
    """``call(x_seq, v0)`` (the fused ops take ``[T, *neurons]`` with at least one neuron dimension) also for
    one neuron with no neuron dimension, ``x_seq`` of shape ``[T]``, which the peers accept: the results
    come back without the added dimension."""
    if x_seq.dim() != 1:
        return call(x_seq, v0)
    out = call(x_seq.unsqueeze(-1), None if v0 is None else v0.reshape(1))
    return tuple(o.squeeze(-1) for o in out)


def _same(a: tuple, b: tuple) -> bool:
    """Option keys equal: objects by identity, plain values by value (a tensor's == is elementwise)."""
    return len(a) == len(b) and all(x is y or (not isinstance(x, torch.Tensor) and x == y) for x, y in zip(a, b))


class _SnnkernNode:
    """Mixin for SpikingJelly nodes: single- and multi-step forward on the fused kernel."""

    snnkern_backend = "auto"

    def _neuron_call(self, x_seq, v0, kw):
        raise NotImplementedError

    def snnkern_options(self):
        """(surrogate, alpha), with the options re-checked at every call (attribute reads only)."""
        if not torch.compiler.is_compiling():
            problems = spikingjelly_node_unsupported(self)
            if problems:
                _refuse(self, problems)
        return _resolve(spikingjelly_surrogate, self.surrogate_function, "surrogate_function")

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        return self._forward(x_seq, bool(getattr(self, "store_v_seq", False)), args, kwargs)

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        spikes = self._forward(x.unsqueeze(0), False, args, kwargs)[0]
        if getattr(self, "store_v_seq", False) and hasattr(self, "_append_v_seq"):
            self._append_v_seq(self.v)  # SpikingJelly's own: each step's membrane appended, restarted on a new shape
        return spikes

    def _forward(self, x_seq: torch.Tensor, store: bool, args, kwargs):
        """Run ``x_seq`` ([T, *neurons]) from the layer's state; with ``store`` also fill ``v_seq``."""
        if args or kwargs:
            raise TypeError(f"{type(self).__name__} takes only the input sequence")
        surrogate, alpha = self.snnkern_options()
        if x_seq.dtype in (torch.float16, torch.bfloat16) and not self.__dict__.get("_snnkern_half_announced"):
            warnings.warn(f"{type(self).__name__} (swapped by snnkern): {x_seq.dtype} input; snnkern computes the "
                          "membrane in float32 and returns it as float32 (SpikingJelly computes in the input dtype), "
                          "so a spike at an exact threshold tie can differ", stacklevel=4)
            self.__dict__["_snnkern_half_announced"] = True
        kw = dict(threshold=self.v_threshold, reset="subtract" if self.v_reset is None else "hard",
                  v_reset=0.0 if self.v_reset is None else self.v_reset, convention="spikingjelly",
                  detach_reset=self.detach_reset, surrogate=surrogate, alpha=alpha, backend=self.snnkern_backend,
                  return_membrane=store)
        out = _over_scalar_neurons(lambda xs, v0: self._neuron_call(xs, v0, kw), x_seq, self._initial_state(x_seq[0]))
        if store:  # SpikingJelly's v_seq: the membrane after every step's reset
            spikes, self.v, self.v_seq = out
        else:
            spikes, self.v = out
        return spikes

    def _initial_state(self, x0):
        """SpikingJelly keeps v as a float until the first step, and starts again from it when the stored
        state does not have the input's shape (a new batch size); None lets the kernel start from it."""
        v = self.v
        default = 0.0 if self.v_reset is None else self.v_reset
        if isinstance(v, (int, float)):
            return None if float(v) == default else torch.full_like(x0, float(v), dtype=torch.float32)
        if v.shape != x0.shape:
            return None
        return v

    def extra_repr(self):
        return super().extra_repr() + f", snnkern backend={self.snnkern_backend!r}"


class SnnkernLIFNode(_SnnkernNode):
    def _neuron_call(self, x_seq, v0, kw):
        return lif(x_seq, v0, tau=self.tau, decay_input=self.decay_input, **kw)


class SnnkernIFNode(_SnnkernNode):
    def _neuron_call(self, x_seq, v0, kw):
        return if_(x_seq, v0, **kw)


class SnnkernParametricLIFNode(_SnnkernNode):
    def _neuron_call(self, x_seq, v0, kw):
        return lif(x_seq, v0, beta=sigmoid_decay(self.w), decay_input=self.decay_input, **kw)
