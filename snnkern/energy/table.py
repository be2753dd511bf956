"""The side-by-side table: estimated J/sample (labelled, with its preset) next to measured J/sample
(labelled, with the GPU)."""
from __future__ import annotations

from .counting import OpsReport
from .meter import EnergyReading
from .presets import estimate_energy, get_preset


def energy_table(rows: dict[str, tuple[OpsReport, EnergyReading | None]], preset="45nm-fp32") -> str:
    """Markdown table: one row per model name -> (its OpsReport, its EnergyReading or None)."""
    p = get_preset(preset)
    lines = ["| model | MACs/sample | ACs/sample | estimated J/sample | measured J/sample | measured on |",
             "|---|---:|---:|---:|---:|---|"]
    for name, (counts, reading) in rows.items():
        est = estimate_energy(counts, p)
        if reading is not None and reading.available and reading.joules_per_sample is not None:
            measured, where = f"{reading.joules_per_sample:.4g} (measured)", f"{reading.gpu} ({reading.method})"
        else:
            measured, where = "unavailable", (reading.reason if reading is not None else "not measured")
        lines.append(f"| {name} | {counts.per_sample('macs'):.4g} | {counts.per_sample('acs'):.4g} | "
                     f"{est:.4g} (estimate, {p.name}: MAC {p.mac_pj} pJ, AC {p.ac_pj} pJ) | {measured} | {where} |")
    return "\n".join(lines)
