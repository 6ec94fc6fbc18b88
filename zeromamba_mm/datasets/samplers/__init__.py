from .epoch_aware_sampler import (EpochAwareSampler, SeededIndex, sample_seeds,
                                  seeded_rngs)

__all__ = ['EpochAwareSampler', 'SeededIndex', 'sample_seeds', 'seeded_rngs']
