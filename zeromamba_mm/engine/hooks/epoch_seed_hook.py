"""Reseed the random generators at every epoch so that resuming is exact."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from zeromamba_mm.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed python, numpy and torch from (seed, epoch, rank) per epoch.

    mmengine seeds the generators once, at start-up. Augmentations running in
    the main process (``num_workers=0``), dropout and drop-path then draw
    from a state that depends on everything that ran before, so a run resumed
    after epoch ``k`` sees different random numbers from an uninterrupted run
    and ends with different weights. Deriving the state from the epoch alone
    makes epoch ``k + 1`` identical in both. Dataloader workers are seeded by
    mmengine's ``worker_init_fn`` and the sampler by ``DistSamplerSeedHook``.

    Args:
        seed (int, optional): Base seed. Defaults to the runner's seed.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def before_train_epoch(self, runner) -> None:
        base = self.seed if self.seed is not None else runner.seed
        if base is None:
            return
        epoch_seed = (int(base) * 1_000_003 + runner.epoch * 7919 +
                      get_rank()) % (2**32)
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)
