"""N-MNIST through tonic (Luo et al. 2024, experiment 3): the loader on event files this test writes in the
N-MNIST binary format, its offline stand-in, and the experiment-3 presets."""
import sys

import pytest
import torch

from snnkern.data import DatasetUnavailable, EventFrames, load_dataset
from snnkern.experiments.presets import PRESETS, EventSum, build_model
from snnkern.experiments.runner import SNNClassifier

# (x, y, t in us, polarity), time-ordered. Denoise (10,000 us) keeps an event only when a 4-neighbour pixel had
# an event in the 10 ms before it: the first of the cluster (10,10 @ 20,100), the loner at (30,30) and (5,5) go.
EVENTS = [(10, 10, 20_100, 1), (11, 10, 20_600, 0), (11, 10, 20_900, 0), (10, 11, 21_500, 1), (30, 30, 22_000, 1),
          (10, 10, 23_200, 1), (11, 11, 24_999, 0), (11, 10, 25_400, 0), (5, 5, 40_000, 0)]
# kept: 20,600 20,900 21,500 23,200 24,999 25,400. ToFrame(1,000 us) windows start at the first kept event
# (20,600) and only whole windows count: floor((25,400 - 20,600 - 1,000) / 1,000) + 1 = 4 frames.
#   frame 0 [20,600, 21,600): (11,10) OFF twice, (10,11) ON   frame 2 [22,600, 23,600): (10,10) ON
#   frames 1 and 3 empty; 24,999 and 25,400 fall in the incomplete fifth window, dropped
EXPECTED = {(0, 0, 10, 11): 2.0, (0, 1, 11, 10): 1.0, (2, 1, 10, 10): 1.0}  # (frame, polarity, y, x): count


def write_nmnist_bin(path, events):
    """N-MNIST's .bin: 5 bytes an event: x, y, then polarity (bit 7) and the 23-bit microsecond timestamp."""
    raw = bytearray()
    for x, y, t, p in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


@pytest.fixture
def nmnist_dir(tmp_path):
    for split, digit, name in (("Train", 3, "00001.bin"), ("Train", 7, "00002.bin"), ("Test", 5, "00003.bin")):
        write_nmnist_bin(tmp_path / "NMNIST" / split / str(digit) / name, EVENTS)
    return tmp_path


def test_nmnist_loader_frames_equal_a_hand_computation(nmnist_dir):
    pytest.importorskip("tonic", reason="the N-MNIST loader reads through tonic (pip install tonic)")
    data = load_dataset("nmnist", data_dir=str(nmnist_dir), val_fraction=0.0)
    assert isinstance(data.train[0], EventFrames) and data.input_shape == (300, 2, 34, 34)
    assert sorted(data.train[1].tolist()) == [3, 7] and data.test[1].tolist() == [5] and len(data.val[1]) == 0
    expected = torch.zeros(300, 2, 34, 34)
    for where, count in EXPECTED.items():
        expected[where] = count
    frames = data.train[0][torch.arange(2)]
    assert frames.shape == (2, 300, 2, 34, 34) and frames.dtype == torch.float32
    assert torch.equal(frames[0], expected) and torch.equal(frames[1], expected)
    assert torch.equal(data.test[0][0], expected) and torch.equal(data.test[0][:1][0], expected)
    assert "tonic" in data.source and "Denoise(10000 us)" in data.source and "ToFrame(1000 us)" in data.source


def test_nmnist_missing_files_say_how_to_provide_them(tmp_path):
    pytest.importorskip("tonic", reason="without tonic the loader stops earlier (see the next test)")
    with pytest.raises(DatasetUnavailable, match="--data-dir"):
        load_dataset("nmnist", data_dir=str(tmp_path))


def test_nmnist_without_tonic_says_pip_install_tonic(nmnist_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tonic", None)  # import tonic raises ImportError
    monkeypatch.setitem(sys.modules, "tonic.io", None)
    with pytest.raises(DatasetUnavailable, match="pip install tonic"):
        load_dataset("nmnist", data_dir=str(nmnist_dir))


def test_event_standin_is_labelled_and_shaped_like_nmnist():
    data = load_dataset("digits-events", subset=40)
    assert data.source.startswith("NOT N-MNIST") and data.input_shape == (300, 2, 34, 34)
    frames = data.train[0][:3]
    assert frames.shape == (3, 300, 2, 34, 34) and set(frames.unique().tolist()) <= {0.0, 1.0}
    assert frames[:, :, 1].sum() == 0  # OFF channel empty


def _linear_inputs(model):
    return [m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_exp3_mnist_preset_is_the_32x32_cnn():
    """2 conv 5x5 (no padding) + max-pool each, 32 x 5 x 5 = 800 features into the FC classifier."""
    p = PRESETS["luo2024-exp3-mnist"]
    data = load_dataset(p.dataset.replace("mnist", "digits"), subset=40)  # digits-32: the same resize, offline
    assert data.input_shape == (1, 32, 32)
    for spiking in (False, True):
        model = build_model(p, data.input_shape, 10, spiking=spiking)
        assert _linear_inputs(model) == [800]
        # conv 1->12: 312, conv 12->32: 9,632, FC 800->10: 8,010
        assert sum(q.numel() for q in model.parameters()) == 17_954
    assert build_model(p, (1, 32, 32), 10, spiking=False)(data.train[0][:2]).shape == (2, 10)


def test_exp3_nmnist_preset_feeds_frames_as_time_steps():
    p = PRESETS["luo2024-exp3-nmnist"].override(T=6)
    ann = build_model(p, (300, 2, 34, 34), 10, spiking=False)
    snn = SNNClassifier(build_model(p, (300, 2, 34, 34), 10, spiking=True), p.T, p.encoding)
    assert isinstance(ann[0], EventSum) and _linear_inputs(ann) == [800]
    assert sum(q.numel() for q in ann.parameters()) == sum(q.numel() for q in snn.parameters()) == 18_254
    x = torch.rand(3, 300, 2, 34, 34)
    assert torch.equal(snn.encode(x), x[:, :6].transpose(0, 1))  # [T, B, 2, 34, 34]: the data's own first T frames
    assert torch.equal(ann[0](x), x[:, :6].sum(1))  # the ANN sees those frames summed
    assert snn(x).shape == (3, 10) and ann(x).shape == (3, 10)
    with pytest.raises(ValueError, match="event frames"):
        build_model(p, (1, 28, 28), 10, spiking=False)


def test_event_presets_refuse_what_needs_images_before_training(tmp_path, capsys):
    """--robustness perturbs images and `snnkern train` batches tensors: both refuse an event preset in one
    line, before any training (not with a traceback after it)."""
    from snnkern.cli import main

    assert main(["compare", "--preset", "luo2024-exp3-nmnist", "--robustness", "--smoke", "--quiet",
                 "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--preset", "luo2024-exp3-nmnist", "--steps", "1", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "reads event frames" in err and "snnkern compare" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "report.md").exists()
