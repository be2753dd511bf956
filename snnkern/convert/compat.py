"""Fast drop-in subclasses of snnTorch's and SpikingJelly's neuron layers.

``swap`` turns a foreign neuron into one of these by changing its class in place: the object, its
parameters and buffers (so optimizers keep them), hooks, device, dtype and every attribute stay;
only the forward pass now runs snnkern's fused LIF/IF op with the same semantics.  The library's
own machinery keeps working: ``snntorch.utils.reset``, ``init_leaky``/``reset_mem``, SpikingJelly's
``functional.reset_net``/``detach_net``/``set_step_mode``.

Options are read at every call (as the originals do), so changing e.g. ``reset_mechanism`` or
``v_threshold`` after the swap is honoured; an option that becomes unsupported raises.
"""
from __future__ import annotations

import torch

from ..functional import if_, lif

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


def _resolve(resolver, fn, what):
    found = resolver(fn)
    if found is None:
        raise ValueError(f"{what} {fn!r} has no exact snnkern equivalent")
    return found


class SnnkernLeaky:
    """Mixin for ``snntorch.Leaky``: its ``forward`` on the fused single-step kernel."""

    snnkern_backend = "auto"

    def forward(self, input_, mem=None):
        # the same control flow as snntorch.Leaky.forward (reset_delay=True)
        if mem is not None:
            self.mem = mem
        if self.init_hidden and mem is not None:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        if self.mem.shape != input_.shape:
            self.mem = torch.zeros_like(input_)
        surrogate, alpha = _resolve(snntorch_surrogate, self.spike_grad, "spike_grad")
        spk, self.mem = lif(input_.unsqueeze(0), self.mem, beta=self.beta, threshold=self.threshold,
                            reset=SNNTORCH_RESETS[self._reset_mechanism], convention="snntorch", surrogate=surrogate,
                            alpha=alpha, backend=self.snnkern_backend)
        spk = spk[0]
        if self.output or not self.init_hidden:
            return spk, self.mem
        return spk

    def extra_repr(self):
        return f"snnkern backend={self.snnkern_backend!r}"


class _SnnkernNode:
    """Mixin for SpikingJelly nodes: single- and multi-step forward on the fused kernel."""

    snnkern_backend = "auto"

    def _neuron_call(self, x_seq, v0, kw):
        raise NotImplementedError

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__} takes only the input sequence")
        surrogate, alpha = _resolve(spikingjelly_surrogate, self.surrogate_function, "surrogate_function")
        kw = dict(threshold=self.v_threshold, reset="subtract" if self.v_reset is None else "hard",
                  v_reset=0.0 if self.v_reset is None else self.v_reset, convention="spikingjelly",
                  detach_reset=self.detach_reset, surrogate=surrogate, alpha=alpha, backend=self.snnkern_backend)
        spikes, self.v = self._neuron_call(x_seq, self._initial_state(x_seq[0]), kw)
        return spikes

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs):
        return self.multi_step_forward(x.unsqueeze(0), *args, **kwargs)[0]

    def _initial_state(self, x0):
        """SpikingJelly keeps v as a float until the first step; None lets the kernel start from it."""
        v = self.v
        default = 0.0 if self.v_reset is None else self.v_reset
        if isinstance(v, (int, float)):
            return None if float(v) == default else torch.full_like(x0, float(v), dtype=torch.float32)
        return v.expand_as(x0) if v.shape != x0.shape else v

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
        return lif(x_seq, v0, beta=1.0 - self.w.sigmoid(), decay_input=self.decay_input, **kw)
