"""ANN -> SNN conversion: BN folding, accuracy against the ANN and against SpikingJelly's converter."""
import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import snnkern
from snnkern.convert import ConvertedSNN, IFNeuron, accuracy_vs_T, fold_batchnorm, plot_accuracy_vs_T

T_LIST = [4, 8, 16, 32, 64]


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's bundled 8x8 digits (1797 images, offline), split 1400 / 397."""
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    X = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    return X[:1400], y[:1400], X[1400:], y[1400:]


def make_cnn(pool=nn.AvgPool2d):
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), pool(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), pool(2),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def train(digits, pool=nn.AvgPool2d):
    Xtr, ytr, Xte, yte = digits
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same summation order, hence the same weights, on every machine
    ann = make_cnn(pool)
    opt = torch.optim.Adam(ann.parameters(), 3e-3)
    for _ in range(15):
        ann.train()
        for i in range(0, len(ytr), 64):
            opt.zero_grad()
            F.cross_entropy(ann(Xtr[i:i + 64]), ytr[i:i + 64]).backward()
            opt.step()
    torch.set_num_threads(threads)
    ann.eval()
    with torch.no_grad():
        acc = (ann(Xte).argmax(1) == yte).float().mean().item()
    loader = [(Xte[i:i + 128], yte[i:i + 128]) for i in range(0, len(yte), 128)]
    return ann, acc, loader


@pytest.fixture(scope="module")
def trained(digits):
    """The CNN with average pooling: converts exactly (max-pooling does not, see below)."""
    return train(digits)


def test_fold_batchnorm_keeps_outputs():
    torch.manual_seed(1)
    ann = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 16),
                        nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    for m in ann.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    ann.eval()
    folded = fold_batchnorm(ann)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    x = torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(folded(x), ann(x), rtol=1e-5, atol=1e-5)


def test_conversion_matches_the_ann_and_rises_with_T(trained, digits, tmp_path):
    ann, ann_acc, loader = trained
    assert ann_acc > 0.95
    snn = snnkern.convert(ann, digits[0][:512], mode="99.9%")
    assert isinstance(snn, ConvertedSNN) and len(snn.neurons) == 3
    assert not any(isinstance(m, (nn.MaxPool2d, nn.Dropout, nn.BatchNorm2d)) for m in snn.modules())
    acc = accuracy_vs_T(snn, loader, T_LIST)
    assert acc[32] >= ann_acc - 0.01, (acc, ann_acc)
    slow = accuracy_vs_T(snnkern.convert(ann, digits[0][:512], init_membrane=0.0), loader, T_LIST)
    assert slow[4] < slow[16] < slow[64] + 1e-9 and acc[4] > slow[4]  # rises with T; threshold/2 start helps
    path = plot_accuracy_vs_T(acc, str(tmp_path / "acc.png"), ann_accuracy=ann_acc)
    assert os.path.getsize(path) > 1000


def test_snnkern_at_least_spikingjelly(trained, digits):
    ann2snn = pytest.importorskip("spikingjelly.activation_based.ann2snn")
    from spikingjelly.activation_based import functional

    ann, _, loader = trained
    Xtr, ytr = digits[0][:512], digits[1][:512]
    ours = accuracy_vs_T(snnkern.convert(ann, Xtr, mode="99.9%"), loader, T_LIST)
    recipe = ann2snn.RateCodingRecipe(dataloader=[(Xtr, ytr)], mode="99.9%")
    sj = ann2snn.FXConverter(recipe).convert(copy.deepcopy(ann))
    with torch.no_grad():
        for T in T_LIST:
            correct = total = 0
            for x, y in loader:
                functional.reset_net(sj)
                out = sum(sj(x) for _ in range(T))
                correct += int((out.argmax(1) == y).sum())
                total += y.numel()
            # At T=64 both converters are within an image or two of the ANN, and which borderline test
            # image flips depends on float summation order (thread count, BLAS build) in the two
            # converters' different arithmetic: allow 2 of the 397 images there. At small T snnkern's
            # half-threshold initial membrane puts it well ahead, so the margin hides nothing.
            assert ours[T] >= correct / total - 2 / total, (T, ours[T], correct / total)


@pytest.mark.triton
def test_converted_snn_runs_on_the_kernel(trained, digits):
    ann, _, loader = trained
    d = "cuda" if torch.cuda.is_available() else "cpu"
    x = loader[0][0][:16].to(d)
    ref = snnkern.convert(copy.deepcopy(ann).to(d), digits[0][:256].to(d), backend="torch")
    ker = snnkern.convert(copy.deepcopy(ann).to(d), digits[0][:256].to(d), backend="triton")
    out = ker(x, 8)
    assert snnkern.last_backend("lif") == "triton"
    torch.testing.assert_close(out, ref(x, 8), rtol=1e-5, atol=1e-5)
    assert 0 < ker.neurons[0].last_rate < 1


def test_options_and_fx_models(trained, digits):
    ann, ann_acc, loader = trained
    Xtr = digits[0][:256]
    per_channel = snnkern.convert(ann, Xtr, per_channel=True, mode=0.9)
    assert per_channel.neurons[0].threshold.shape == (16, 1, 1)
    assert accuracy_vs_T(per_channel, loader, [64])[64] > ann_acc - 0.05
    rate = snnkern.convert(ann, [(Xtr, None)], encoding="rate", T=16)  # a DataLoader-like iterable
    assert rate(Xtr[:8]).shape == (8, 10)

    class FxNet(nn.Module):  # not a Sequential: functional relu, torch.flatten, a residual add
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(256, 10)

        def forward(self, x):
            h = F.relu(self.c1(x))
            h = F.relu(self.c2(h) + h)
            return self.fc(torch.flatten(h, 1))

    snn = snnkern.convert(FxNet().eval(), Xtr)
    assert len(snn.neurons) == 2 and all(isinstance(n, IFNeuron) for n in snn.neurons)
    assert snn(Xtr[:4], 4).shape == (4, 10)


def test_maxpool_networks(digits):
    """A max-pooling ANN keeps its accuracy with the spiking max-pool; maxpool="avg" swaps the layer."""
    ann, ann_acc, loader = train(digits, nn.MaxPool2d)
    pools = lambda snn: {type(m).__name__ for m in snn.modules()} & {"MaxPool2d", "AvgPool2d",  # noqa: E731
                                                                    "SpikingMaxPool2d"}
    snn = snnkern.convert(ann, digits[0][:512])
    assert pools(snn) == {"SpikingMaxPool2d"}
    assert accuracy_vs_T(snn, loader, [64])[64] >= ann_acc - 0.02
    assert pools(snnkern.convert(ann, digits[0][:512], maxpool="avg")) == {"AvgPool2d"}


def test_named_errors(digits):
    Xtr = digits[0][:32]
    with pytest.raises(ValueError, match=r"'1'.*Sigmoid"):
        snnkern.convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid()), Xtr)
    with pytest.raises(ValueError, match="calibration holds no data"):
        snnkern.convert(make_cnn().eval(), [])
    with pytest.raises(ValueError, match="mode"):
        snnkern.convert(make_cnn().eval(), Xtr, mode="99.9")
    with pytest.raises(ValueError, match="maxpool"):
        snnkern.convert(make_cnn().eval(), Xtr, maxpool="min")
    with pytest.raises(TypeError, match="ann"):
        snnkern.convert("model", Xtr)
    with pytest.raises(ValueError, match="T must"):
        snnkern.convert(make_cnn().eval(), Xtr)(Xtr, 0)
