"""Reseed the main process's generators so that resuming is exact."""
from typing import Optional

import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed

from zeromamba_mm.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed python, numpy and torch from (seed, epoch | iteration, rank).

    mmengine seeds the generators once, at start-up. Dropout, drop path and
    batch augments in the main process then draw from a state that depends
    on everything that ran before, so a run resumed after epoch ``k`` sees
    other random numbers than an uninterrupted run. Two things consume the
    main stream between epochs differently in the two runs: evaluation, and
    the dataloader, whose iterator draws a base seed from torch's generator
    when it is created - every epoch, or once per run with
    ``persistent_workers=True`` (so at a different epoch after a resume).

    The hook therefore reseeds before every epoch and, after the batch has
    been fetched, before every iteration, from the epoch / the global
    iteration alone. Augmentations in the dataloader workers are seeded per
    sample by :class:`~zeromamba_mm.datasets.EpochAwareSampler`; the
    shuffle order by ``DistSamplerSeedHook``.

    Args:
        seed (int, optional): Base seed. Defaults to the runner's seed.
        per_iter (bool): Also reseed before every training iteration.
            Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 seed: Optional[int] = None,
                 per_iter: bool = True) -> None:
        self.seed = seed
        self.per_iter = per_iter

    def _base(self, runner) -> Optional[int]:
        base = self.seed if self.seed is not None else runner.seed
        return None if base is None else int(base)

    def before_train_epoch(self, runner) -> None:
        base = self._base(runner)
        if base is None:
            return
        set_random_seed(
            (base * 1_000_003 + runner.epoch * 7919 + get_rank()) % (2**32))

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        base = self._base(runner)
        if base is None or not self.per_iter:
            return
        # A stream apart from the epoch seeds: hash (base, iter, rank).
        sequence = np.random.SeedSequence(
            [base % 2**32, runner.iter,
             get_rank(), 1])
        set_random_seed(int(sequence.generate_state(1)[0]))
