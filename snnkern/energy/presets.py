"""Energy per operation, and the estimate they give: labelled as an estimate everywhere it is shown.

45 nm CMOS figures from Horowitz, "Computing's energy problem", ISSCC 2014: a MAC costs a multiply
plus an add (FP32 3.7 + 0.9 pJ; FP16 1.1 + 0.4 pJ; INT8 0.2 + 0.03 pJ), an AC only the add.
"""
from __future__ import annotations

from dataclasses import dataclass

from .counting import OpsReport


@dataclass(frozen=True)
class EnergyPreset:
    name: str
    mac_pj: float  # one multiply-accumulate
    ac_pj: float  # one accumulate (a spike arriving at a synapse)
    neuron_pj: float = 0.0  # one membrane update; 0 leaves neuron dynamics out, as the seeds do
    source: str = ""


HOROWITZ = "Horowitz, ISSCC 2014, 45 nm"
PRESETS = {
    "45nm-fp32": EnergyPreset("45nm-fp32", 4.6, 0.9, source=HOROWITZ),
    "45nm-fp16": EnergyPreset("45nm-fp16", 1.5, 0.4, source=HOROWITZ),
    "45nm-int8": EnergyPreset("45nm-int8", 0.23, 0.03, source=HOROWITZ),
}


def get_preset(preset) -> EnergyPreset:
    if isinstance(preset, EnergyPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown energy preset {preset!r}; presets: {', '.join(PRESETS)} (or an EnergyPreset)")
    return PRESETS[preset]


def estimate_energy(counts: OpsReport, preset="45nm-fp32") -> float:
    """Estimated joules per sample: MACs x E_MAC + ACs x E_AC (+ neuron updates x E_neuron)."""
    if not isinstance(counts, OpsReport):
        raise TypeError("counts must be the OpsReport of count_ops()")
    p = get_preset(preset)
    t = counts.totals
    pj = t["macs"] * p.mac_pj + t["acs"] * p.ac_pj + t["neuron_updates"] * p.neuron_pj
    return pj * 1e-12 / counts.samples
