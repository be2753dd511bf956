"""``snnkern.swap``: replace snnTorch / SpikingJelly neuron layers by snnkern's fused ones, exactly.

One table (``SWAP_TABLE``) lists, per foreign class, where its fast subclass lives and which of
its options snnkern reproduces.  A layer with an option outside that set is left untouched and
reported (with a warning naming the option): never swapped approximately.
"""
from __future__ import annotations

import copy
import importlib
import sys
import warnings
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .._dispatch import BACKENDS
from .._checks import check_choice
from .compat import snntorch_leaky_unsupported, spikingjelly_node_unsupported


@dataclass(frozen=True)
class SwapRule:
    library: str  # top-level package; the rule applies only once the user has imported it
    foreign: str  # class name, as the report shows it
    fast_module: str  # module holding FAST = {foreign class: snnkern subclass}
    unsupported: Callable[[nn.Module], list]  # options snnkern cannot reproduce exactly

    @property
    def class_name(self) -> str:
        return self.foreign.rsplit(" ", 1)[-1].rsplit(".", 1)[-1]


SWAP_TABLE = [
    SwapRule("snntorch", "snntorch.Leaky", "snnkern.convert._snntorch", snntorch_leaky_unsupported),
    SwapRule("spikingjelly", "spikingjelly LIFNode", "snnkern.convert._spikingjelly", spikingjelly_node_unsupported),
    SwapRule("spikingjelly", "spikingjelly IFNode", "snnkern.convert._spikingjelly", spikingjelly_node_unsupported),
    SwapRule("spikingjelly", "spikingjelly ParametricLIFNode", "snnkern.convert._spikingjelly",
             spikingjelly_node_unsupported),
]


@dataclass
class SwapReport:
    """What ``swap`` did: ``swapped`` as (name, foreign class, snnkern class), ``left`` as
    (name, foreign class, [reasons]); ``model`` is the swapped model (a copy when inplace=False)."""

    model: nn.Module
    swapped: list = field(default_factory=list)
    left: list = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"snnkern.swap: {len(self.swapped)} swapped, {len(self.left)} left as they were"]
        lines += [f"  swapped {name or '<root>'}: {src} -> {dst}" for name, src, dst in self.swapped]
        lines += [f"  left    {name or '<root>'}: {src} ({'; '.join(why)})" for name, src, why in self.left]
        return "\n".join(lines)


def _fast_classes() -> dict:
    """foreign class -> (rule, snnkern subclass), for the libraries the user has imported."""
    table = {}
    for rule in SWAP_TABLE:
        if rule.library in sys.modules:
            for foreign, fast in importlib.import_module(rule.fast_module).FAST.items():
                if foreign.__name__ == rule.class_name:  # exact: "LIFNode" is part of "ParametricLIFNode"
                    table[foreign] = (rule, fast)
    return table


def _register_snntorch_copies(model: nn.Module) -> None:
    """snnTorch finds its neurons for ``snntorch.utils.reset`` (init_hidden state) in a class-level registry
    that a deep copy does not join: add the copies, or their state would leak across batches."""
    if "snntorch" not in sys.modules:
        return
    from snntorch._neurons.neurons import SpikingNeuron

    for m in model.modules():
        if isinstance(m, SpikingNeuron) and not any(m is i for i in SpikingNeuron.instances):
            SpikingNeuron.instances.append(m)


def swap(model: nn.Module, inplace: bool = True, *, backend: str = "auto") -> SwapReport:
    """Swap every snnTorch ``Leaky`` and SpikingJelly ``LIFNode``/``IFNode``/``ParametricLIFNode`` in
    ``model`` for snnkern's fused equivalent with identical semantics, and return a ``SwapReport``.

    The swap changes each layer's class in place (a subclass of the original), so parameters,
    buffers, hooks, device, dtype, state and the library's own reset utilities all carry over.
    Layers whose options snnkern cannot reproduce exactly stay as they are, with a warning.
    ``inplace=False`` swaps a deep copy (``report.model``).  ``backend`` is passed to the kernels.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice(backend, "backend", BACKENDS)
    if not inplace:
        model = copy.deepcopy(model)
        _register_snntorch_copies(model)
    report = SwapReport(model)
    table = _fast_classes()
    for name, module in model.named_modules():
        entry = table.get(type(module))  # exact class: a user subclass may change the semantics
        if entry is None:
            continue
        rule, fast = entry
        problems = rule.unsupported(module)
        if problems:
            warnings.warn(f"snnkern.swap left {name or '<root>'} ({rule.foreign}) as it was: {'; '.join(problems)}",
                          stacklevel=2)
            report.left.append((name, rule.foreign, problems))
            continue
        module.__class__ = fast
        module.snnkern_backend = backend
        module.snnkern_options()  # validates now and caches what a compiled forward reads
        report.swapped.append((name, rule.foreign, f"{fast.__module__}.{fast.__name__}"))
    return report
