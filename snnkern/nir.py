"""``snnkern.nir``: NIR export and import (``export(model, sample)``, ``load(graph_or_path)``).

Needs the optional NIR packages (``pip install nir nirtorch``); ``import snnkern`` never imports them.
The implementation lives in ``snnkern.convert.nir``; its docstring lists what maps exactly.
"""
from .convert.nir import DEFAULT_DT, IF_AS_LIF_TAU_STEPS, export, load

__all__ = ["export", "load", "DEFAULT_DT", "IF_AS_LIF_TAU_STEPS"]
