"""Run a stack of stateless layers and neurons over a whole sequence at once.

Loop-style SNNs call every layer T times on [B, ...].  ``SpikingSequential`` calls each stateless
layer once on all T*B samples (one big matmul/conv instead of T small ones) and each neuron once on
[T, B, ...] (one fused kernel over all steps).
"""
from __future__ import annotations

import torch
from torch import nn

from .neurons import SpikingNeuron


class Multistep(nn.Module):
    """Apply a stateless layer to every time step at once: [T, B, ...] -> layer([T*B, ...]) -> [T, B, ...]."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not isinstance(x_seq, torch.Tensor) or x_seq.dim() < 2:
            raise ValueError("Multistep expects x_seq of shape [T, B, ...]")
        T, B = x_seq.shape[:2]
        return self.module(x_seq.flatten(0, 1)).unflatten(0, (T, B))


def _is_multistep_neuron(layer: nn.Module) -> bool:
    """snnkern neurons, and SpikingJelly neurons (swapped or not), take [T, B, ...] in step_mode 'm'."""
    if isinstance(layer, SpikingNeuron):
        return True
    return getattr(layer, "step_mode", None) is not None and hasattr(layer, "multi_step_forward")


class SpikingSequential(nn.Sequential):
    """Like ``nn.Sequential`` over ``[T, B, ...]``: neurons see the whole sequence, every other layer
    sees the T*B samples merged (so it must be stateless: Linear, Conv, pooling, BatchNorm, Flatten...).

    Neurons must be in multi-step mode.  snnTorch's ``Leaky`` steps one time step per call and cannot
    sit here: build the layer with ``snnkern.nn.LIF`` (same semantics) instead.
    """

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not isinstance(x_seq, torch.Tensor) or x_seq.dim() < 2:
            raise ValueError("SpikingSequential expects x_seq of shape [T, B, ...]")
        for i, layer in enumerate(self):
            if _is_multistep_neuron(layer):
                if layer.step_mode != "m":
                    raise ValueError(f"layer {i} ({type(layer).__name__}) has step_mode={layer.step_mode!r}; "
                                     "SpikingSequential needs multi-step neurons (step_mode='m')")
                x_seq = layer(x_seq)
            elif type(layer).__module__.startswith("snntorch"):
                raise TypeError(f"layer {i} is snnTorch's {type(layer).__name__}, which steps one time step per "
                                "call; use snnkern.nn.LIF (same semantics) inside SpikingSequential")
            else:
                T, B = x_seq.shape[:2]
                x_seq = layer(x_seq.flatten(0, 1)).unflatten(0, (T, B))
        return x_seq
