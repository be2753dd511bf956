"""Input encoders (values -> spike trains [T, ...]) and output decoding (spikes -> counts, classes).

``rate`` reproduces ``snntorch.spikegen.rate`` (same Bernoulli draws for the same RNG state);
``latency`` reproduces ``snntorch.spikegen.latency`` (log or linear code, no interpolation).
"""
from __future__ import annotations

import torch

from .. import _checks


def _check_steps(num_steps) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    return num_steps


def _check_data(data, name="data"):
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(data).__name__}")
    if not data.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {data.dtype}")


def direct(data: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Direct (constant current) coding: the same analog input at every step, [T, *data.shape]."""
    _check_data(data)
    return data.unsqueeze(0).expand(_check_steps(num_steps), *data.shape)


def rate(data: torch.Tensor, num_steps: int, *, gain: float = 1.0, offset: float = 0.0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Rate (Poisson/Bernoulli) coding: spike with probability clamp(data*gain + offset, 0, 1) at every step.

    Same draws as ``snntorch.spikegen.rate(data, num_steps, gain, offset)`` for the same RNG state."""
    _check_data(data)
    p = data.unsqueeze(0).expand(_check_steps(num_steps), *data.shape) * gain + offset
    return torch.bernoulli(p.clamp(0, 1), generator=generator)


def latency(data: torch.Tensor, num_steps: int, *, threshold: float = 0.01, tau: float = 1.0,
            linear: bool = False, normalize: bool = False, clip: bool = False, epsilon: float = 1e-7) -> torch.Tensor:
    """Latency (time-to-first-spike) coding: one spike per input, earlier for larger values.

    log code: t = tau * ln(x / (x - threshold)) (inputs below threshold saturate);
    linear code: t = tau * (1 - x), capped at tau * (1 - threshold); ``normalize`` stretches the times
    over all ``num_steps``; ``clip`` drops the spikes of inputs below threshold.  Spike times round to
    the nearest step. Matches ``snntorch.spikegen.latency`` with the same arguments."""
    _check_data(data)
    num_steps = _check_steps(num_steps)
    threshold = _checks.check_number(threshold, "threshold", low=0.0, high=1.0)
    tau = _checks.check_number(tau, "tau", low=0.0, low_open=True)
    if data.numel() and (data.min() < 0 or data.max() > 1):
        raise ValueError("latency coding needs data in [0, 1]")
    if linear:
        tau_eff = num_steps - 1 if normalize else tau
        t = torch.clamp_max(-tau_eff * (data - 1), -tau_eff * (threshold - 1))
        if normalize and t.min() < 0:
            t = (t - t.min()) * (1 / (t.max() - t.min())) * (num_steps - 1)
    else:
        clamped = torch.clamp(data, threshold + epsilon)
        t = tau * torch.log(clamped / (clamped - threshold))
        if normalize:
            t = t * (num_steps - 1) / torch.max(t)
    if not normalize and torch.round(t.max()).long() > num_steps - 1:
        raise ValueError(f"latest spike time {torch.round(t.max()).item():.0f} does not fit in num_steps={num_steps}; "
                         "lower tau or pass normalize=True")
    steps = torch.round(t.clamp_max(num_steps - 1)).long()
    out = torch.zeros((num_steps, *data.shape), dtype=data.dtype, device=data.device)
    out.scatter_(0, steps.unsqueeze(0), 1.0)
    if clip:
        out = out * (data >= threshold)
    return out


def spike_count(spikes: torch.Tensor) -> torch.Tensor:
    """Spikes per output over time: [T, B, C] -> [B, C]."""
    _check_data(spikes, "spikes")
    return spikes.sum(0)


def predict(spikes: torch.Tensor) -> torch.Tensor:
    """Rate decoding: the class with the most spikes, [T, B, C] -> [B] (ties: lowest index)."""
    return spike_count(spikes).argmax(-1)
