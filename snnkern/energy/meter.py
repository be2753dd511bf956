"""Measured GPU energy from NVML, labelled as measured.

``EnergyMeter`` reads NVML's total-energy counter (millijoules since driver load; Volta and newer)
around the work, after synchronizing the GPU, and subtracts an idle baseline measured the same way
just before (optionally after a settle wait), or one measured earlier and passed in:
``measure_idle_watts()`` measures it alone, e.g. once before a process's first GPU work.  NVML's device
is found by the CUDA device's UUID (NVML numbers the GPUs in PCI order, CUDA by default fastest first,
and CUDA_VISIBLE_DEVICES renumbers them), by index where the UUID is not available.  Where the counter
is not supported it integrates power samples from a background thread instead.  Without NVML or a GPU
it reports ``available=False`` with the reason; it never fails the program.
"""
from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass

import torch


@dataclass
class EnergyReading:
    available: bool
    method: str  # "counter", "sampling" or "unavailable"
    joules: float | None = None  # above the idle baseline
    total_joules: float | None = None  # as read, idle included
    seconds: float | None = None
    mean_watts: float | None = None  # total power over the window
    idle_watts: float | None = None
    samples: int | None = None
    gpu: str | None = None
    reason: str | None = None

    @property
    def joules_per_sample(self) -> float | None:
        if self.joules is None or not self.samples:
            return None
        return self.joules / self.samples

    def __str__(self) -> str:
        if not self.available:
            return f"energy: unavailable ({self.reason})"
        per = f", {self.joules_per_sample:.4g} J/sample" if self.samples else ""
        return (f"energy (measured, {self.gpu}, {self.method}): {self.joules:.4g} J above idle in {self.seconds:.3g} s"
                f"{per}; mean {self.mean_watts:.1f} W, idle {self.idle_watts:.1f} W")


def _load_nvml():
    import pynvml

    return pynvml


def _cuda_uuid(device: int) -> str | None:
    """CUDA device ``device``'s UUID as torch gives it ("xxxxxxxx-xxxx-..."), or None."""
    try:
        if not torch.cuda.is_available():
            return None
        uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
        return str(uuid) if uuid is not None else None
    except Exception:  # a torch without the field, or a device that is not there
        return None


def nvml_handle(nvml, device: int):
    """NVML's handle of CUDA device ``device``: by its UUID ("GPU-<uuid>"; a MIG instance's "MIG-<uuid>"
    gives its parent GPU, whose energy and power NVML reports), else by index."""
    uuid = _cuda_uuid(device)
    if uuid:
        bare = uuid[4:] if uuid[:4] in ("GPU-", "MIG-") else uuid
        for prefix in ("GPU-", "MIG-"):
            try:
                handle = nvml.nvmlDeviceGetHandleByUUID(prefix + bare)
            except Exception:
                continue
            if prefix == "MIG-":
                try:
                    handle = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
                except Exception:
                    pass
            return handle
    return nvml.nvmlDeviceGetHandleByIndex(device)


class EnergyMeter:
    """``with EnergyMeter(samples=n) as m: work()`` then ``m.reading`` (an ``EnergyReading``).

    ``device``: CUDA device index.  ``idle_seconds``: length of the idle baseline measurement (or pass
    ``idle_watts`` to reuse a known one); ``settle_seconds``: wait before it, after synchronizing, so that
    the power of work just done has come down.  ``min_seconds``: windows shorter than this warn, since the
    counter updates only every few tens of ms.  ``sample_interval``: power-sampling period of the
    fallback.  ``nvml``, ``clock``, ``sleep``, ``sync`` can be replaced (tests use a fake NVML).
    """

    def __init__(self, device: int = 0, *, samples: int | None = None, idle_seconds: float = 1.0,
                 idle_watts: float | None = None, min_seconds: float = 1.0, sample_interval: float = 0.02,
                 nvml=None, clock=time.perf_counter, sleep=time.sleep, sync=None, settle_seconds: float = 0.0):
        self.device, self.samples = device, samples
        self.idle_seconds, self.idle_watts, self.settle_seconds = idle_seconds, idle_watts, settle_seconds
        self.min_seconds, self.sample_interval = min_seconds, sample_interval
        self._nvml, self._clock, self._sleep = nvml, clock, sleep
        self._sync = sync if sync is not None else self._cuda_sync
        self.reading: EnergyReading | None = None
        self._handle = None

    # -- NVML access ----------------------------------------------------------------------------
    def _cuda_sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize(self.device)

    def _open(self) -> str | None:
        """Initialize NVML; return the reason it cannot measure, or None."""
        try:
            nvml = self._nvml if self._nvml is not None else _load_nvml()
        except ImportError:
            return "pynvml (nvidia-ml-py) is not installed"
        try:
            nvml.nvmlInit()
            self._handle = nvml_handle(nvml, self.device)
            name = nvml.nvmlDeviceGetName(self._handle)
        except Exception as exc:  # NVMLError subclasses, or a driver that is not there at all
            return f"NVML cannot reach GPU {self.device}: {exc}"
        self._nvml, self.gpu = nvml, name.decode() if isinstance(name, bytes) else str(name)
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.method = "counter"
        except Exception:
            try:
                nvml.nvmlDeviceGetPowerUsage(self._handle)
                self.method = "sampling"
            except Exception as exc:
                return f"GPU {self.device} reports neither energy nor power: {exc}"
        return None

    def _energy_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _power_w(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0

    # -- windows --------------------------------------------------------------------------------
    def _start_window(self):
        self._sync()
        self._t0 = self._clock()
        if self.method == "counter":
            self._e0 = self._energy_mj()
        else:
            self._trace = [(self._t0, self._power_w())]
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self):
        while not self._stop.is_set():
            self._sleep(self.sample_interval)
            self._trace.append((self._clock(), self._power_w()))

    def _end_window(self) -> tuple[float, float]:
        """(joules, seconds) of the window since _start_window."""
        self._sync()
        t1 = self._clock()
        if self.method == "counter":
            return (self._energy_mj() - self._e0) / 1000.0, t1 - self._t0
        self._stop.set()
        self._thread.join()
        trace = self._trace + [(t1, self._power_w())]
        joules = sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in zip(trace, trace[1:]))
        return joules, t1 - self._t0

    def _measure_idle(self) -> float:
        self._sync()
        if self.settle_seconds > 0:
            self._sleep(self.settle_seconds)
        self._start_window()
        self._sleep(self.idle_seconds)
        idle_j, idle_s = self._end_window()
        self.idle_watts = idle_j / idle_s if idle_s > 0 else 0.0
        return self.idle_watts

    def __enter__(self) -> "EnergyMeter":
        self.gpu, self.method = None, "unavailable"
        reason = self._open()
        if reason is not None:
            self._reason = reason
            return self
        self._reason = None
        if self.idle_watts is None:
            self._measure_idle()
        self._start_window()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._reason is not None:
            self.reading = EnergyReading(False, "unavailable", samples=self.samples, reason=self._reason)
            return False
        total, seconds = self._end_window()
        if seconds < self.min_seconds:
            warnings.warn(f"EnergyMeter window of {seconds:.3g} s is shorter than {self.min_seconds} s: NVML's "
                          "energy counter updates every few tens of ms, so run the work in a longer loop",
                          stacklevel=2)
        self.reading = EnergyReading(
            True, self.method, joules=total - self.idle_watts * seconds, total_joules=total, seconds=seconds,
            mean_watts=total / seconds if seconds > 0 else None, idle_watts=self.idle_watts, samples=self.samples,
            gpu=self.gpu)
        return False


def measure_idle_watts(device: int = 0, *, seconds: float = 1.0, settle_seconds: float = 0.0,
                       **meter_kwargs) -> float | None:
    """The GPU's idle power in W, measured now as ``EnergyMeter`` measures its baseline (``settle_seconds``
    of waiting, then a ``seconds`` window), to pass later as ``EnergyMeter(idle_watts=...)``; None where NVML
    cannot measure.  Measure it before the process's GPU work: measured right after work, the power has not
    come down yet and the baseline reads high (so the energy above it reads low)."""
    meter = EnergyMeter(device, idle_seconds=seconds, settle_seconds=settle_seconds, **meter_kwargs)
    meter.gpu, meter.method = None, "unavailable"
    if meter._open() is not None:
        return None
    return meter._measure_idle()
