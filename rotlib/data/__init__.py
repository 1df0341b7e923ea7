"""Datasets held in memory as uint8 tensors, batched, normalised and augmented per batch.

Sources, offline first:
- ``cifar10-5k`` (the quick profile's default): 5,000 training and 1,000 test
  images of real CIFAR-10 shipped with the project in ``data/cifar10-5k/``
  (the first 1,000 images of each official batch; see data/README.md).
- ``fashion-mnist``: the four original .gz files from Debian's package
  ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist) or from
  ``<root>/fashion-mnist``; otherwise torchvision downloads them.
- ``cifar10``: the python-format batches in ``<root>/cifar-10-batches-py``;
  otherwise torchvision downloads them.
- ``folder:PATH``: your own images, one subfolder per class (or flat), with
  ``train/`` and ``test/`` subfolders when present; turned upright by their
  EXIF orientation and centre-cropped to a square (a 90-degree turn of a
  non-square image changes its shape). See :func:`load_folder`.

``<root>`` is ``rotlib.settings.current().data`` (ROTLIB_DATA), read when a dataset is loaded.
Images stay uint8 (N, C, H, W) until a batch is drawn; normalisation,
augmentation and rotation then run on the whole batch at once, on the
training device (no per-sample PIL work, so loading never starves the model).

The modules: :mod:`~rotlib.data.imagedata` (``ImageData``, normalisation), :mod:`~rotlib.data.subsets`,
:mod:`~rotlib.data.batching` (batches, augmentation), :mod:`~rotlib.data.cifar`,
:mod:`~rotlib.data.fashion_mnist`, :mod:`~rotlib.data.folders`, :mod:`~rotlib.data.decoding` (the one
image decoder, shared with ``rotlib.orient``) and :mod:`~rotlib.data.datasets` (``load_dataset``).
"""
from ..settings import current
from .imagedata import DatasetNotFoundError, ImageData, normalize
from .subsets import first_per_class, random_subset
from .batching import augment, batch_slices, batches, draw_augment
from .decoding import (EXIF_ORIENTATION, IMAGE_EXTENSIONS, MAX_PIXELS, Decoded, ImageTooLarge, UnreadableImage,
                       center_crop_square, check_size, decode, to_rgb8)
from .cifar import (CIFAR10_5K_SHA256, CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, cifar10_5k_indices, load_cifar10,
                    load_cifar10_5k, shipped_root)
from .fashion_mnist import (FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, SYSTEM_FASHION_MNIST,
                            load_fashion_mnist)
from .folders import fingerprint, load_folder, load_image
from .datasets import DATASETS, load_dataset

__all__ = ['DatasetNotFoundError', 'ImageData', 'normalize', 'first_per_class', 'random_subset', 'augment', 'batch_slices', 'batches',
           'draw_augment',
           'EXIF_ORIENTATION', 'IMAGE_EXTENSIONS', 'MAX_PIXELS', 'Decoded', 'ImageTooLarge', 'UnreadableImage',
           'center_crop_square', 'check_size', 'decode', 'to_rgb8', 'CIFAR10_5K_SHA256', 'CIFAR10_CLASSES',
           'CIFAR10_MEAN', 'CIFAR10_STD', 'cifar10_5k_indices', 'load_cifar10', 'load_cifar10_5k', 'shipped_root',
           'FASHION_MNIST_CLASSES', 'FASHION_MNIST_MEAN', 'FASHION_MNIST_STD', 'SYSTEM_FASHION_MNIST',
           'load_fashion_mnist', 'fingerprint', 'load_folder', 'load_image', 'DATASETS', 'load_dataset',
           'DEFAULT_ROOT', 'SHIPPED_ROOT']


def __getattr__(name: str):
    """``DEFAULT_ROOT`` and ``SHIPPED_ROOT``, once constants, now read from ``rotlib.settings`` when asked."""
    if name == "DEFAULT_ROOT":
        return current().data
    if name == "SHIPPED_ROOT":
        return shipped_root()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
