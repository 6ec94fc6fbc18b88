"""A sampler that gives every sample its own seed per epoch.

Random augmentations (``RandomFlip``, ``RandomResizedCrop``...) run in the
dataloader workers, which mmengine seeds once, from the base seed, the
worker id and the rank only. With ``persistent_workers=True`` a worker's
random stream then continues across epochs, and a run resumed after epoch
``k`` starts fresh workers: its epoch ``k + 1`` replays the augmentations of
epoch 0 instead of those of the uninterrupted run. Without persistent
workers every epoch replays epoch 0's stream (same augmentation every
epoch).

:class:`EpochAwareSampler` yields each index as a :class:`SeededIndex`, an
``int`` carrying a seed derived from ``(seed, epoch, index)``. Before running
the pipeline of such an index, :class:`~zeromamba_mm.datasets.ZSLDataset`
seeds python's, numpy's and torch's generators from it (and restores them
afterwards). A sample's augmentation is then a function of ``(seed, epoch,
index)`` only: the same with 0, 2 or 8 workers, persistent or not, resumed
or not.
"""
import random
from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np
import torch
from mmengine.dataset import DefaultSampler

from zeromamba_mm.registry import DATA_SAMPLERS

__all__ = ['SeededIndex', 'EpochAwareSampler', 'seeded_rngs', 'sample_seeds']


class SeededIndex(int):
    """A dataset index that carries the seed of its sample's randomness.

    It is an ``int``, so datasets and wrappers that do not know it index as
    usual (arithmetic on it gives a plain ``int`` and drops the seed).

    Args:
        index (int): The dataset index.
        sample_seed (int): Seed in [0, 2**32).
    """

    def __new__(cls, index: int, sample_seed: int) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.sample_seed = int(sample_seed)
        return obj

    def __reduce__(self):
        # Pickled to the workers: keep the seed.
        return SeededIndex, (int(self), self.sample_seed)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, sample_seed={self.sample_seed})'


def sample_seeds(seed: int, epoch: int, size: int) -> np.ndarray:
    """The (size,) uint32 seeds of all samples of one epoch.

    Args:
        seed (int): Base seed (the runner's).
        epoch (int): Epoch.
        size (int): Dataset length; entry ``i`` is the seed of index ``i``.

    Returns:
        np.ndarray: Seeds drawn from ``SeedSequence([seed, epoch])``, so they
        depend neither on the shuffle nor on the shard of a rank.
    """
    sequence = np.random.SeedSequence([int(seed) % 2**32, int(epoch)])
    rng = np.random.Generator(np.random.PCG64(sequence))
    return rng.integers(0, 2**32, size=size, dtype=np.uint64)


@contextmanager
def seeded_rngs(sample_seed: int):
    """Seed python, numpy and torch (CPU) generators; restore on exit.

    Restoring keeps the main process's streams (dropout, drop path) intact
    when the pipeline runs there (``num_workers=0``).

    Args:
        sample_seed (int): Seed in [0, 2**32).
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(sample_seed)
    np.random.seed(sample_seed)
    # Only the CPU generator: ``torch.manual_seed`` would also reseed CUDA.
    torch.default_generator.manual_seed(sample_seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@DATA_SAMPLERS.register_module()
class EpochAwareSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` whose indices carry per-sample seeds.

    Order, distributed sharding (``rank::world_size``), padding
    (``round_up``), ``shuffle`` and ``set_epoch`` are exactly
    ``DefaultSampler``'s; each index comes as a :class:`SeededIndex` with
    the seed of ``(seed, epoch, index)`` (see :func:`sample_seeds`).
    ``DistSamplerSeedHook`` calls ``set_epoch`` before every epoch, also
    after ``--resume``.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle the order per epoch. Defaults to True.
        seed (int, optional): Base seed of the shuffle and of the sample
            seeds; the runner passes its ``randomness.seed``. Defaults to a
            seed shared by all ranks.
        round_up (bool): Pad to a multiple of the world size. Defaults to
            True.
    """

    def __init__(self,
                 dataset,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(
            dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        if not getattr(dataset, 'accepts_seeded_indices', False):
            raise TypeError(
                f'EpochAwareSampler needs a dataset that seeds its pipeline '
                f'from SeededIndex (zeromamba_mm.ZSLDataset and its '
                f'subclasses); got {type(dataset).__name__}. Use '
                "sampler=dict(type='DefaultSampler') for other datasets.")

    def __iter__(self) -> Iterator[SeededIndex]:
        seeds = sample_seeds(self.seed, self.epoch, len(self.dataset))
        for index in super().__iter__():
            yield SeededIndex(index, seeds[index])
