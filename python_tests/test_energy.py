"""Energy accounting: hand-counted operations, presets, and the NVML meter against a fake NVML."""
import itertools
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import snnkern
from snnkern.energy import EnergyMeter, PRESETS, count_ops, energy_table, estimate_energy
from snnkern.nn import LIF, SpikingSequential


def test_ann_mlp_counts_dense_macs():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    report = count_ops(mlp, torch.randn(2, 4))
    assert report.samples == 2 and report.totals["params"] == 4 * 3 + 3 + 3 * 2 + 2
    assert [r.macs for r in report.layers] == [2 * 4 * 3, 2 * 3 * 2] and report.totals["acs"] == 0
    assert report.per_sample("macs") == 18
    assert estimate_energy(report, "45nm-fp32") == pytest.approx(18 * 4.6e-12)


def test_snn_mlp_counts_acs_from_the_actual_spikes():
    fc1, fc2 = nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)
    nn.init.ones_(fc1.weight)
    net = SpikingSequential(fc1, LIF(beta=0.0, threshold=1.5), fc2)
    x = torch.tensor([[[1.0, 0, 1, 0], [0, 0, 0, 1]]])  # [T=1, B=2, 4]: 3 active inputs
    report = count_ops(net, x, batch_dim=1)
    fc1_row, lif_row, fc2_row = report.layers
    assert fc1_row.acs == 3 * 3 and fc1_row.macs == 0 and fc1_row.input_rate == pytest.approx(3 / 8)
    # fc1 outputs 2 (sample 1) and 1 (sample 2): only sample 1 crosses 1.5, all 3 neurons
    assert lif_row.neuron_updates == 6 and lif_row.spikes == 3 and lif_row.firing_rate == 0.5
    assert fc2_row.acs == 3 * 2
    assert report.per_sample("acs") == (9 + 6) / 2 and report.per_sample("neuron_updates") == 3
    est = estimate_energy(report, "45nm-int8")
    assert est == pytest.approx(7.5 * 0.03e-12)
    assert "| 0 | Linear |" in report.to_markdown()


def naive_conv_acs(x_active, cout, k, stride, padding, groups=1):
    """Brute force: count (output channel, output position, tap) whose input is active."""
    _, cin, H, W = x_active.shape
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    cin_g, cout_g = cin // groups, cout // groups
    count = 0
    for b, o, c, i, j, di, dj in itertools.product(range(x_active.shape[0]), range(cout), range(cin_g), range(Ho),
                                                   range(Wo), range(k), range(k)):
        r, q = i * stride - padding + di, j * stride - padding + dj
        if 0 <= r < H and 0 <= q < W and x_active[b, (o // cout_g) * cin_g + c, r, q]:
            count += 1
    return count


def test_conv_counts_by_hand_and_brute_force():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 1  # a corner input reaches 4 outputs, an inner one 9
    assert count_ops(conv, x).layers[0].acs == (4 + 9) * 2
    assert count_ops(conv, torch.rand(1, 1, 4, 4) + 0.1).layers[0].macs == 2 * 16 * 9
    g = torch.Generator().manual_seed(1)
    for stride, padding, groups in [(1, 0, 1), (2, 1, 1), (2, 0, 1), (1, 1, 2)]:
        conv = nn.Conv2d(4, 6, 3, stride=stride, padding=padding, groups=groups)
        x = (torch.rand(2, 4, 7, 6, generator=g) < 0.3).float()
        assert count_ops(conv, x).layers[0].acs == naive_conv_acs(x.bool(), 6, 3, stride, padding, groups)


def test_converted_and_swapped_models():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5)).eval()
    x = torch.rand(8, 1, 6, 6)
    snn = snnkern.convert(ann, x)
    report = count_ops(snn, x, forward_kwargs={"T": 4})
    conv, neuron, fc = report.layers
    assert conv.macs == 4 * 8 * (4 * 36 * 9) and conv.acs == 0  # analog input: dense, every step
    assert neuron.neuron_updates == 4 * 8 * 4 * 36 and 0 < neuron.firing_rate < 1
    assert fc.macs == 0 and fc.acs == neuron.spikes * 5  # threshold-valued spikes are events
    snntorch = pytest.importorskip("snntorch")
    net = nn.Sequential(nn.Linear(6, 6), snntorch.Leaky(beta=0.9, init_hidden=True))
    snnkern.swap(net)
    rows = count_ops(net, torch.rand(3, 6) * 3).layers
    assert rows[1].neuron_updates == 18


def test_presets_and_errors():
    assert (PRESETS["45nm-fp32"].mac_pj, PRESETS["45nm-fp32"].ac_pj) == (4.6, 0.9)
    assert (PRESETS["45nm-fp16"].mac_pj, PRESETS["45nm-int8"].ac_pj) == (1.5, 0.03)
    report = count_ops(nn.Linear(2, 2), torch.randn(1, 2))
    custom = snnkern.energy.EnergyPreset("mine", mac_pj=2.0, ac_pj=1.0)
    assert estimate_energy(report, custom) == pytest.approx(4 * 2e-12)
    with pytest.raises(ValueError, match="unknown energy preset"):
        estimate_energy(report, "7nm")
    with pytest.raises(TypeError, match="model"):
        count_ops("model", torch.ones(1))
    with pytest.raises(ValueError, match="batch_dim"):
        count_ops(nn.Linear(2, 2), torch.ones(1, 2), batch_dim=3)


# ---------------------------------------------------------------------------------------------
# EnergyMeter against a fake NVML
# ---------------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


class FakeNVML:
    """Enough of pynvml: a GPU drawing ``idle`` W, or ``busy`` W while ``working``; energy in mJ."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    def __init__(self, clock, idle=50.0, busy=200.0, counter=True):
        self.clock, self.idle, self.busy, self.counter = clock, idle, busy, counter
        self.working = False
        self._energy_mj, self._last = 0.0, clock()
        self.lock = threading.Lock()

    def _advance(self):
        with self.lock:
            now = self.clock()
            self._energy_mj += (now - self._last) * (self.busy if self.working else self.idle) * 1000
            self._last = now

    def set_working(self, on):
        self._advance()
        self.working = on

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"gpu{i}"

    def nvmlDeviceGetName(self, handle):
        return b"Fake GPU"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter:
            raise self.NVMLError_NotSupported("Not Supported")
        self._advance()
        return int(self._energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle):
        return int((self.busy if self.working else self.idle) * 1000)


def test_meter_counter_delta_minus_idle_baseline():
    clock = FakeClock()
    nvml = FakeNVML(clock)
    with EnergyMeter(samples=10, idle_seconds=1.0, nvml=nvml, clock=clock, sleep=clock.sleep, sync=lambda: None) as m:
        nvml.set_working(True)
        clock.sleep(2.0)  # "work" for 2 s at 200 W
        nvml.set_working(False)
    r = m.reading
    assert r.available and r.method == "counter" and r.gpu == "Fake GPU"
    assert r.idle_watts == pytest.approx(50.0) and r.seconds == pytest.approx(2.0)
    assert r.total_joules == pytest.approx(400.0, abs=1e-3) and r.joules == pytest.approx(300.0, abs=1e-3)
    assert r.mean_watts == pytest.approx(200.0, abs=1e-3) and r.joules_per_sample == pytest.approx(30.0, abs=1e-3)
    assert "measured" in str(r)


class CoolingNVML(FakeNVML):
    """A GPU that still draws ``hot`` W until ``hot_until`` (work just finished), then its idle power."""

    def __init__(self, clock, hot_until, hot=150.0, **kw):
        super().__init__(clock, **kw)
        self.hot_until, self.hot = hot_until, hot

    def _advance(self):
        now, last = self.clock(), self._last
        hot_s = max(0.0, min(now, self.hot_until) - last)
        self._energy_mj += (hot_s * self.hot + (now - last - hot_s) * (self.busy if self.working else self.idle)) * 1000
        self._last = now


def test_idle_baseline_after_a_settle_wait():
    """Measured while the power of earlier work has not come down, the baseline reads high (and the energy
    above it low); settle_seconds waits that out, and measure_idle_watts measures the baseline alone."""
    from snnkern.energy import measure_idle_watts
    clock = FakeClock()
    kw = dict(seconds=1.0, clock=clock, sleep=clock.sleep, sync=lambda: None)
    assert measure_idle_watts(nvml=CoolingNVML(clock, hot_until=clock() + 1.0), **kw) == pytest.approx(150.0, abs=1e-2)
    assert measure_idle_watts(nvml=CoolingNVML(clock, hot_until=clock() + 1.0), settle_seconds=1.0,
                              **kw) == pytest.approx(50.0, abs=1e-2)
    with EnergyMeter(idle_seconds=1.0, settle_seconds=1.0, nvml=CoolingNVML(clock, hot_until=clock() + 1.0),
                     clock=clock, sleep=clock.sleep, sync=lambda: None) as m:
        clock.sleep(1.0)
    assert m.reading.idle_watts == pytest.approx(50.0, abs=1e-2)

    class Broken(FakeNVML):
        def nvmlInit(self):
            raise self.NVMLError("Driver Not Loaded")
    assert measure_idle_watts(nvml=Broken(clock), **kw) is None


class UuidNVML(FakeNVML):
    """NVML that also finds GPUs (and MIG instances, whose parent it returns) by UUID."""

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid in ("GPU-0b1e", "MIG-7c2d"):
            return f"by-uuid:{uuid}"
        raise self.NVMLError("Not Found")

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle):
        return f"parent of {handle}"


@pytest.mark.parametrize("uuid, handle", [("0b1e", "by-uuid:GPU-0b1e"), ("GPU-0b1e", "by-uuid:GPU-0b1e"),
                                          ("7c2d", "parent of by-uuid:MIG-7c2d"), ("ffff", "gpu1"), (None, "gpu1")])
def test_meter_finds_the_cuda_device_by_uuid(monkeypatch, uuid, handle):
    """NVML numbers GPUs in PCI order, CUDA fastest first (and CUDA_VISIBLE_DEVICES renumbers them): the meter
    asks NVML for the CUDA device's UUID, by index only where the UUID is not available or not found."""
    from snnkern.energy import meter as meter_module
    monkeypatch.setattr(meter_module, "_cuda_uuid", lambda device: uuid if device == 1 else None)
    clock = FakeClock()
    with EnergyMeter(device=1, idle_watts=50.0, min_seconds=0.0, nvml=UuidNVML(clock), clock=clock,
                     sleep=clock.sleep, sync=lambda: None) as m:
        pass
    assert m.reading.available and m._handle == handle


@pytest.mark.filterwarnings("ignore:EnergyMeter window")
def test_bench_session_measures_idle_before_the_first_gpu_work(monkeypatch):
    """bench/: in a session the idle baseline is measured once per process, after collection and before the
    first test (bench/conftest.py); the energy rows then use it. Measured (as before) at the first energy
    row, after that row's timing, it read the power of the work just done."""
    from types import SimpleNamespace

    from bench import common
    from bench import conftest as bench_conftest
    from snnkern.energy import meter as meter_module

    class HotAfterWork(FakeNVML):  # idle 50 W until the first work, then (still hot) 200 W
        def nvmlDeviceGetPowerUsage(self, handle):
            return int(200_000 if self.working else 50_000)

    nvml = HotAfterWork(time.perf_counter, counter=False)
    monkeypatch.setattr(meter_module, "_load_nvml", lambda: nvml)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    for name, value in (("ON_GPU", True), ("SESSION", True), ("_IDLE_WATTS", []), ("IDLE_SECONDS", 0.1),
                        ("IDLE_SETTLE_SECONDS", 0.01)):
        monkeypatch.setattr(common, name, value)
    energy_test = SimpleNamespace(get_closest_marker=lambda name: name == "energy" or None)
    bench_conftest.pytest_collection_finish(SimpleNamespace(items=[energy_test]))
    assert common._IDLE_WATTS == [pytest.approx(50.0, rel=1e-6)]

    def work():
        nvml.working = True
    work()  # the row's timing ran before its energy window
    row = common.measure_energy(work, samples_per_call=1, seconds=0.05)
    assert row["idle_watts"] == pytest.approx(50.0, rel=1e-6) and row["watts"] == pytest.approx(200.0, rel=1e-3)
    assert row["idle_measured"] == "before the process's GPU work"


def test_meter_warns_on_short_windows():
    clock = FakeClock()
    nvml = FakeNVML(clock)
    with pytest.warns(UserWarning, match="shorter than"):
        with EnergyMeter(idle_watts=50.0, nvml=nvml, clock=clock, sleep=clock.sleep, sync=lambda: None):
            clock.sleep(0.05)


def test_meter_falls_back_to_power_sampling():
    nvml = FakeNVML(time.perf_counter, idle=40.0, busy=140.0, counter=False)
    with EnergyMeter(samples=1, idle_seconds=0.2, min_seconds=0.1, sample_interval=0.005, nvml=nvml,
                     sync=lambda: None) as m:
        nvml.working = True
        time.sleep(0.4)
        nvml.working = False
    r = m.reading
    assert r.method == "sampling" and r.idle_watts == pytest.approx(40.0, rel=0.05)
    assert r.joules == pytest.approx(100.0 * r.seconds, rel=0.15)


def test_meter_unavailable_does_not_fail():
    class Broken(FakeNVML):
        def nvmlInit(self):
            raise self.NVMLError("Driver Not Loaded")

    with EnergyMeter(nvml=Broken(FakeClock()), samples=3) as m:
        pass
    assert not m.reading.available and "Driver Not Loaded" in m.reading.reason
    assert m.reading.joules_per_sample is None and "unavailable" in str(m.reading)
    if not torch.cuda.is_available():  # the real pynvml on a machine without a GPU
        with EnergyMeter() as m:
            pass
        assert not m.reading.available


def test_energy_table_labels_estimate_and_measurement():
    clock = FakeClock()
    nvml = FakeNVML(clock)
    report = count_ops(nn.Linear(4, 4), torch.randn(2, 4))
    with EnergyMeter(samples=2, idle_watts=50.0, nvml=nvml, clock=clock, sleep=clock.sleep, sync=lambda: None) as m:
        clock.sleep(1.0)
    table = energy_table({"ANN": (report, m.reading), "SNN": (report, None)}, preset="45nm-fp16")
    assert "(estimate, 45nm-fp16" in table and "(measured)" in table and "Fake GPU (counter)" in table
    assert "not measured" in table


@pytest.mark.gpu
def test_meter_on_a_real_gpu():
    a = torch.randn(4096, 4096, device="cuda")
    with EnergyMeter(samples=200, idle_seconds=0.5) as m:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 2.0:
            for _ in range(20):
                a @ a
            torch.cuda.synchronize()
    r = m.reading
    assert r.available and r.joules > 0 and 20 < r.mean_watts < 1500, str(r)


def test_counts_unchanged_by_event_driven_packed_spikes():
    """event_driven(packed=True): a LIF hands packed words to a SpikeLinear; the counts stay the same."""
    import copy

    from snnkern.nn import LIF, SpikingSequential, event_driven
    torch.manual_seed(0)
    net = SpikingSequential(nn.Linear(20, 64), LIF(backend="torch"), nn.Linear(64, 10), LIF(backend="torch"))
    event = copy.deepcopy(net)
    assert event_driven(event, backend="torch") == ["2"] and event[1].packed_output
    x = torch.rand(6, 3, 20) * 3
    plain, packed = count_ops(net, x, batch_dim=1), count_ops(event, x, batch_dim=1)
    assert packed.totals == plain.totals and plain.totals["acs"] > 0 and plain.totals["spikes"] > 0


def test_spikes_through_a_spiking_max_pool_are_still_events():
    """A converted SNN's max-pool makes a new tensor of the same threshold-valued spikes: the layer after it
    counts accumulates, as it does once event_driven has made it a spike layer."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(6 * 9, 5)).eval()
    x = torch.rand(8, 1, 6, 6)
    snn = snnkern.convert(ann, x)
    layers = {r.name: r for r in count_ops(snn, x, forward_kwargs={"T": 4}).layers}
    after_pool = [r for r in layers.values() if r.kind == "Conv2d"][1]
    assert after_pool.macs == 0 and after_pool.acs > 0
    fc = [r for r in layers.values() if r.kind == "Linear"][0]
    assert fc.macs == 0 and fc.acs > 0
