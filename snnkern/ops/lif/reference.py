"""Plain-PyTorch LIF/IF: the oracle for the kernels and the CPU path (autograd-derived gradients)."""
from __future__ import annotations

import torch

from ..spike_pack import pack_reference
from ..surrogate import SpikeFn
from .spec import LifSpec


def lif_reference(x, v0, beta, threshold, spec: LifSpec):
    """Step-by-step LIF in PyTorch with the kernels' arithmetic, in the kernels' order.

    Computes in fp32 (fp64 for fp64 input); returns (spikes [T,*] in ``spec.spike_dtype``, bit-packed
    for int32; final state [*] in the compute dtype), plus the state after every step [T,*] when
    ``spec.return_membrane``."""
    cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    as_c = lambda p, value: torch.as_tensor(p if p is not None else value, dtype=cdtype, device=x.device)  # noqa: E731
    beta_t, thr = as_c(beta, spec.beta_value), as_c(threshold, spec.threshold_value)
    v_reset = torch.tensor(spec.v_reset, dtype=cdtype, device=x.device)
    one_minus_beta = 1.0 - beta_t
    leak = one_minus_beta * v_reset
    state = v0.to(cdtype) if v0 is not None else torch.full(x.shape[1:], spec.v_init, dtype=cdtype, device=x.device)

    def charge(v, xt):
        h = beta_t * v + (one_minus_beta * xt if spec.decay_input else xt)
        return h + leak if spec.reset == 2 else h

    spikes, states = [], []
    for xt in x.to(cdtype).unbind(0):
        if spec.delayed:  # snnTorch: detached reset signal from the previous membrane, strict '>'
            r = (state.detach() - thr.detach() > 0).to(cdtype)
            if spec.reset == 1:
                h = charge(state, xt) - r * thr
            elif spec.reset == 2:
                h = charge((1.0 - r) * state + r * v_reset, xt)
            else:
                h = charge(state, xt)
            s = SpikeFn.apply(h - thr, spec.alpha, spec.surrogate, True)
            state = h
        else:  # SpikingJelly: '>=' spikes, reset in the same step
            h = charge(state, xt)
            s = SpikeFn.apply(h - thr, spec.alpha, spec.surrogate, False)
            s_r = s.detach() if spec.detach_reset else s
            if spec.reset == 1:
                state = h - s_r * thr
            elif spec.reset == 2:
                state = (1.0 - s_r) * h + s_r * v_reset
            else:
                state = h
        spikes.append(s)
        states.append(state)
    out = torch.stack(spikes)
    out = pack_reference(out) if spec.spike_dtype == torch.int32 else out.to(spec.spike_dtype)
    return (out, state, torch.stack(states)) if spec.return_membrane else (out, state)
