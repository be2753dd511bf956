"""Bringing models to snnkern.

- ``snnkern.convert(ann, calibration, mode="99.9%", ...)``: ANN -> SNN conversion (this package is
  callable: it forwards to ``ann2snn.convert``); ``accuracy_vs_T``, ``plot_accuracy_vs_T``,
  ``fold_batchnorm``, ``layer_agreement`` (the SNN against the ANN, layer by layer) alongside.
- ``snnkern.swap(model)``: snnTorch / SpikingJelly neuron layers -> snnkern's fused ones.
"""
import sys
import types

from .ann2snn import (ConvertedSNN, IFNeuron, accuracy_vs_T, convert, fold_batchnorm, layer_agreement,
                      plot_accuracy_vs_T)
from .swap import SWAP_TABLE, SwapReport, swap

__all__ = ["convert", "ConvertedSNN", "IFNeuron", "accuracy_vs_T", "plot_accuracy_vs_T", "fold_batchnorm", "layer_agreement",
           "swap", "SwapReport", "SWAP_TABLE"]


class _CallableModule(types.ModuleType):
    """Lets ``snnkern.convert(...)`` convert while ``snnkern.convert.swap`` etc. stay importable."""

    def __call__(self, *args, **kwargs):
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
