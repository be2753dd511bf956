"""Spiking neuron modules: LIF, IF and PLIF over ``snnkern.functional``.

Multi-step by default: ``[T, B, ...]`` in, spikes of the same shape out, one kernel call.  The
membrane state is kept between calls (``v``), so a long sequence can be fed in chunks with
``detach_state()`` between them (truncated BPTT); ``reset()`` clears it.  ``step(x)`` (or
``step_mode="s"``) runs one time step on ``[B, ...]`` for loop-style code.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import _checks
from .._dispatch import BACKENDS, last_backend
from ..functional import CONVENTIONS, RESETS, TENSOR, if_spec, lif_run, lif_spec, sigmoid_decay, spec_value
from ..ops.surrogate import resolve_surrogate


class SpikingNeuron(nn.Module):
    """Base of the snnkern neurons: state handling, step modes and the call into ``functional``."""

    def __init__(self, *, threshold, reset, v_reset, convention, detach_reset, surrogate, alpha, learn_threshold,
                 step_mode, backend, store_v_seq=False):
        super().__init__()
        self.convention = _checks.check_choice(convention, "convention", CONVENTIONS)
        self.reset_mode = _checks.check_choice(reset, "reset", RESETS)
        self.v_reset = _checks.check_number(v_reset, "v_reset")
        self.detach_reset = detach_reset
        resolve_surrogate(surrogate, alpha)  # validate now, not at the first forward
        self.surrogate, self.alpha = surrogate, alpha
        self.step_mode = _checks.check_choice(step_mode, "step_mode", ("m", "s"))
        self.backend = _checks.check_choice(backend, "backend", BACKENDS)
        _set_value(self, "threshold", threshold, learn_threshold, low=0.0, low_open=True)
        self.store_v_seq = _checks.check_flag(store_v_seq, "store_v_seq")
        self.v: torch.Tensor | None = None
        self.v_seq: torch.Tensor | None = None  # membrane after every step of the last call, if store_v_seq
        # True: while autograd is off (no_grad / inference_mode) emit spikes bit-packed along the last dim
        # (int32 words, the pack_spikes layout) for a SpikeLinear that reads them; set by event_driven
        self.packed_output = False

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the membrane state (start of a new sample/sequence)."""
        self.v = None
        self.v_seq = None

    def detach_state(self) -> None:
        """Cut the graph through the stored state (truncated BPTT between chunks)."""
        if self.v is not None:
            self.v = self.v.detach()

    # -- calls -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "m":  # multi_step inlined: one Python call less on every layer call
            _checks.check_sequence(x)
            return self._call(x)
        return self.step(x)

    def multi_step(self, x_seq: torch.Tensor) -> torch.Tensor:
        """[T, B, ...] -> spikes [T, B, ...]; the state continues from the previous call."""
        _checks.check_sequence(x_seq)
        return self._call(x_seq)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One time step: [B, ...] -> spikes [B, ...] (the fused kernel with T=1)."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise ValueError("step() takes one time step of input with at least one dim, [B, ...]")
        x_seq = x.unsqueeze(0)
        _checks.check_sequence(x_seq, "x")
        return self._call(x_seq)[0]

    def _call(self, x_seq):
        # the stored state continues the sequence if it fits; after reset() or a shape change a new one starts
        state = self.__dict__
        v0 = state["v"]
        if v0 is not None and (v0.shape != x_seq.shape[1:] or v0.device != x_seq.device):
            v0 = None
        store = state["store_v_seq"]
        out = self._run(x_seq, v0, store)
        # plain attributes written straight into __dict__: nn.Module.__setattr__ costs microseconds a call
        if store:
            spikes, state["v"], state["v_seq"] = out
        else:
            spikes, state["v"] = out
        if not torch.compiler.is_compiling():
            state["last_backend"] = last_backend("lif")
        return spikes

    def _spike_dtype(self, x_seq):
        # packed words while autograd is off, for the SpikeLinear that reads them (set by event_driven)
        return torch.int32 if self.packed_output and not torch.is_grad_enabled() else x_seq.dtype

    def _run(self, x_seq, v0, return_membrane):
        raise NotImplementedError

    def extra_repr(self) -> str:
        ran = getattr(self, "last_backend", None)
        parts = [self._repr_params(), f"threshold={_show(self.threshold)}", f"reset={self.reset_mode!r}"]
        if self.reset_mode == "hard":
            parts.append(f"v_reset={self.v_reset}")
        alpha = resolve_surrogate(self.surrogate, self.alpha)[1]
        parts += [f"convention={self.convention!r}", f"surrogate={self.surrogate}(alpha={alpha:g})",
                  f"step_mode={self.step_mode!r}", f"backend={self.backend!r}" + (f" (last ran: {ran})" if ran else "")]
        return ", ".join(p for p in parts if p)

    def _repr_params(self) -> str:
        return ""


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire layer (``snnkern.functional.lif``; its docstring has the equations).

    ``beta`` (or ``tau``) and ``threshold`` are floats or tensors broadcastable to the neuron shape;
    ``learn_beta`` / ``learn_threshold`` make them parameters.  Defaults follow snnTorch's ``Leaky``;
    ``convention="spikingjelly"`` gives SpikingJelly's ``LIFNode``.
    """

    def __init__(self, beta=None, *, tau=None, threshold=1.0, reset="subtract", v_reset=0.0,
                 convention="snntorch", decay_input=None, detach_reset=None, surrogate="atan", alpha=None,
                 learn_beta=False, learn_threshold=False, step_mode="m", backend="auto",
                 store_v_seq=False):
        super().__init__(threshold=threshold, reset=reset, v_reset=v_reset, convention=convention,
                         detach_reset=detach_reset, surrogate=surrogate, alpha=alpha,
                         learn_threshold=learn_threshold, step_mode=step_mode, backend=backend, store_v_seq=store_v_seq)
        if beta is not None and tau is not None:
            raise ValueError("pass either beta or tau, not both")
        if tau is not None:
            tau = tau if isinstance(tau, torch.Tensor) else _checks.check_number(tau, "tau", low=1.0)
            beta = 1.0 - 1.0 / tau
        _set_value(self, "beta", 0.9 if beta is None else beta, learn_beta, low=0.0, high=1.0)
        self.decay_input = decay_input

    def _run(self, x_seq, v0, return_membrane):
        spec = lif_spec(self.convention, spec_value(self.beta), None, spec_value(self.threshold), self.reset_mode,
                        self.v_reset, self.decay_input, self.detach_reset, self.surrogate, self.alpha,
                        self._spike_dtype(x_seq), return_membrane)
        return lif_run(x_seq, v0, self.beta, None, self.threshold, False, self.backend, spec)

    def _repr_params(self) -> str:
        return f"beta={_show(self.beta)}"


class IF(SpikingNeuron):
    """Integrate-and-fire layer (no leak), ``snnkern.functional.if_``."""

    def __init__(self, *, threshold=1.0, reset="subtract", v_reset=0.0, convention="snntorch", detach_reset=None,
                 surrogate="atan", alpha=None, learn_threshold=False, step_mode="m", backend="auto",
                 store_v_seq=False):
        super().__init__(threshold=threshold, reset=reset, v_reset=v_reset, convention=convention,
                         detach_reset=detach_reset, surrogate=surrogate, alpha=alpha,
                         learn_threshold=learn_threshold, step_mode=step_mode, backend=backend, store_v_seq=store_v_seq)

    def _run(self, x_seq, v0, return_membrane):
        spec = if_spec(self.convention, spec_value(self.threshold), self.reset_mode, self.v_reset, self.detach_reset,
                       self.surrogate, self.alpha, self._spike_dtype(x_seq), return_membrane)
        return lif_run(x_seq, v0, None, None, self.threshold, False, self.backend, spec)


class PLIF(SpikingNeuron):
    """Parametric LIF (Fang et al. 2021): a learnable time constant, ``1/tau = sigmoid(w)``.

    Defaults follow SpikingJelly's ``ParametricLIFNode``: same-step hard reset to 0, ``decay_input``,
    sigmoid surrogate with alpha=4.  ``w`` is one scalar per layer, or per neuron with ``shape``.
    """

    def __init__(self, init_tau=2.0, *, shape=(), threshold=1.0, reset="hard", v_reset=0.0,
                 convention="spikingjelly", decay_input=True, detach_reset=None, surrogate="sigmoid", alpha=4.0,
                 learn_threshold=False, step_mode="m", backend="auto",
                 store_v_seq=False):
        super().__init__(threshold=threshold, reset=reset, v_reset=v_reset, convention=convention,
                         detach_reset=detach_reset, surrogate=surrogate, alpha=alpha,
                         learn_threshold=learn_threshold, step_mode=step_mode, backend=backend, store_v_seq=store_v_seq)
        init_tau = _checks.check_number(init_tau, "init_tau", low=1.0, low_open=True)
        self.w = nn.Parameter(torch.full(tuple(shape), -math.log(init_tau - 1.0)))
        self.decay_input = _checks.check_flag(decay_input, "decay_input")

    @property
    def tau(self) -> torch.Tensor:
        return 1.0 / self.w.detach().sigmoid()

    def _run(self, x_seq, v0, return_membrane):
        spec = lif_spec(self.convention, TENSOR, None, spec_value(self.threshold), self.reset_mode, self.v_reset,
                        self.decay_input, self.detach_reset, self.surrogate, self.alpha, self._spike_dtype(x_seq),
                        return_membrane)
        return lif_run(x_seq, v0, sigmoid_decay(self.w), None, self.threshold, False, self.backend, spec)

    def _repr_params(self) -> str:
        tau = self.tau
        return f"tau={tau.item():.4g}" if tau.numel() == 1 else f"tau=<{tuple(tau.shape)} learnable>"


def _set_value(module: nn.Module, name: str, value, learn: bool, **bounds) -> None:
    """Store beta/threshold: a parameter when learnable, a buffer when a fixed tensor (so it follows
    .to()), else a plain float (the kernels then take it as an argument: no tensor reads)."""
    _checks.check_flag(learn, f"learn_{name}")
    if isinstance(value, torch.Tensor):
        if value.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be a floating tensor, got {value.dtype}")
        if learn:
            setattr(module, name, nn.Parameter(value.detach().clone()))
        else:
            module.register_buffer(name, value.detach().clone())
        return
    value = _checks.check_number(value, name, **bounds)
    setattr(module, name, nn.Parameter(torch.tensor(value)) if learn else value)


def _show(value) -> str:
    if isinstance(value, torch.Tensor):
        kind = "learnable" if value.requires_grad else "fixed"
        return f"{value.item():.4g} ({kind})" if value.numel() == 1 else f"<{tuple(value.shape)} {kind}>"
    return f"{value:g}"


def reset_states(model: nn.Module) -> None:
    """Reset the state of every snnkern neuron in ``model`` (call between samples/sequences)."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.reset()


def detach_states(model: nn.Module) -> None:
    """Detach the state of every snnkern neuron in ``model`` (truncated BPTT)."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.detach_state()
