"""The ANN-vs-SNN study runner behind ``snnkern compare``."""
from .presets import PRESETS, Preset, build_model
from .report import write_report
from .runner import run_study

__all__ = ["PRESETS", "Preset", "build_model", "run_study", "write_report"]
