"""Energy accounting: synaptic-operation counts with pJ estimates, and measured joules from NVML."""
from .counting import LayerOps, OpsReport, count_ops
from .meter import EnergyMeter, EnergyReading, measure_idle_watts
from .presets import PRESETS, EnergyPreset, estimate_energy, get_preset
from .table import energy_table

__all__ = ["count_ops", "OpsReport", "LayerOps", "EnergyPreset", "PRESETS", "get_preset", "estimate_energy",
           "EnergyMeter", "EnergyReading", "measure_idle_watts", "energy_table"]
