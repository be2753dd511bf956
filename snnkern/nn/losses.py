"""Spike-count losses with snnTorch's semantics (``snntorch.functional.mse_count_loss``/``ce_rate_loss``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(spikes, targets):
    if not isinstance(spikes, torch.Tensor) or spikes.dim() != 3:
        raise ValueError("spikes must have shape [T, B, C]")
    if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long or targets.shape != spikes.shape[1:2]:
        raise ValueError(f"targets must be class indices, a long tensor of shape [{spikes.shape[1]}]")


def mse_count_loss(spikes: torch.Tensor, targets: torch.Tensor, *, correct_rate: float = 1.0,
                   incorrect_rate: float = 0.0) -> torch.Tensor:
    """MSE between spike counts and target counts, over T.

    The correct class should fire ``int(T*correct_rate)`` times, the others ``int(T*incorrect_rate)``
    (e.g. 0.8 / 0.2 as in Luo et al. 2024); returns mean((count - target)^2) / T, as snnTorch does."""
    _check(spikes, targets)
    T, _, C = spikes.shape
    on, off = int(T * correct_rate), int(T * incorrect_rate)
    target = torch.full(spikes.shape[1:], float(off), dtype=spikes.dtype, device=spikes.device)
    target.scatter_(1, targets.unsqueeze(1), float(on))
    return F.mse_loss(spikes.sum(0), target) / T


def ce_rate_loss(spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the spikes at every step (as logits), averaged over T."""
    _check(spikes, targets)
    T, B, C = spikes.shape
    return F.cross_entropy(spikes.reshape(T * B, C), targets.repeat(T))
