"""Bringing models to snnkern: ``swap`` for snnTorch / SpikingJelly neuron layers."""
from .swap import SWAP_TABLE, SwapReport, swap

__all__ = ["swap", "SwapReport", "SWAP_TABLE"]
