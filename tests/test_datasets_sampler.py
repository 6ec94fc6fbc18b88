"""EpochAwareSampler: DefaultSampler's order and sharding, plus per-sample
seeds that make augmentations independent of workers and resumes."""
import pickle
import random
from unittest import mock

import numpy as np
import pytest
import scipy.io as sio
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import DataLoader

from zeromamba_mm.datasets import EpochAwareSampler, SeededIndex, ZSLDataset
from zeromamba_mm.datasets.samplers import sample_seeds
from zeromamba_mm.engine.hooks import EpochSeedHook
from zeromamba_mm.registry import DATA_SAMPLERS


def _cell(strings):
    cell = np.empty((len(strings), 1), dtype=object)
    cell[:, 0] = strings
    return cell


def draw(results):
    """A 'random augmentation' that records what the three generators give
    (python, numpy, torch - transforms use all three)."""
    return dict(
        results,
        draws=(random.random(), float(np.random.rand()), float(torch.rand(1))))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('mats')
    n = 12
    splits = dict(
        att=np.eye(3),
        allclasses_names=_cell(['a', 'b', 'c']),
        trainval_loc=np.arange(1, n - 1, dtype=np.uint16).reshape(-1, 1),
        test_seen_loc=np.array([[n - 1]], dtype=np.uint16),
        test_unseen_loc=np.array([[n]], dtype=np.uint16))
    labels = np.array([i % 2 for i in range(n - 1)] + [2]) + 1.
    sio.savemat(str(root / 'att_splits.mat'), splits)
    sio.savemat(
        str(root / 'res101.mat'),
        dict(
            image_files=_cell([f'{i}.jpg' for i in range(n)]),
            labels=labels.reshape(-1, 1)))
    return ZSLDataset(
        data_root=str(root),
        check_images=False,
        pipeline=[draw],
        serialize_data=False)


def epoch_draws(loader, epoch):
    loader.sampler.set_epoch(epoch)
    out = {}
    for batch in loader:
        for sample in batch:
            out[sample['sample_idx']] = sample['draws']
    return out


def _loader(dataset, sampler, workers, persistent=False):
    return DataLoader(
        dataset,
        batch_size=3,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=persistent,
        collate_fn=list)


def test_same_order_and_shards_as_default_sampler(dataset):
    for rank in (0, 1, 2):
        with mock.patch(
                'mmengine.dataset.sampler.get_dist_info',
                return_value=(rank, 3)):
            ours = EpochAwareSampler(dataset, shuffle=True, seed=5)
            theirs = DefaultSampler(dataset, shuffle=True, seed=5)
        for epoch in (0, 3):
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            got = list(ours)
            assert got == list(theirs) and len(got) == len(ours) == 4
            table = sample_seeds(5, epoch, len(dataset))
            assert [i.sample_seed for i in got] == [table[i] for i in got]
    sampler = DATA_SAMPLERS.build(
        dict(type='zeromamba_mm.EpochAwareSampler', dataset=dataset, seed=0))
    assert isinstance(sampler, EpochAwareSampler)
    with pytest.raises(TypeError, match="sampler=dict\\(type='Default"):
        EpochAwareSampler(list(range(4)), seed=0)


def test_seeded_index():
    idx = SeededIndex(7, 123)
    assert idx == 7 and isinstance(idx, int) and [0] * 8 == [0] * (idx + 1)
    again = pickle.loads(pickle.dumps(idx))
    assert again.sample_seed == 123 and int(again) == 7
    assert not hasattr(idx + 1, 'sample_seed')  # arithmetic gives an int
    seeds = sample_seeds(0, 0, 100)
    assert seeds.dtype == np.uint64 and seeds.max() < 2**32
    assert len(np.unique(seeds)) == 100
    assert not np.array_equal(seeds, sample_seeds(0, 1, 100))
    assert not np.array_equal(seeds, sample_seeds(1, 0, 100))


def test_draws_depend_on_seed_epoch_index_only(dataset):
    sampler = EpochAwareSampler(dataset, shuffle=True, seed=0)
    # Main process, 0 workers, as reference.
    ref = {e: epoch_draws(_loader(dataset, sampler, 0), e) for e in (0, 1)}
    assert ref[0].keys() == ref[1].keys() == set(range(len(dataset)))
    assert ref[0] != ref[1]  # a new augmentation every epoch
    # Re-derive one sample's draws with plain seeding.
    i = 4
    seed = int(sample_seeds(0, 1, len(dataset))[i])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    assert ref[1][i] == (random.random(), float(np.random.rand()),
                         float(torch.rand(1)))

    # Two persistent workers across two epochs, and a "resumed" fresh
    # loader that starts at epoch 1: both see the reference draws.
    loader = _loader(dataset, sampler, 2, persistent=True)
    assert epoch_draws(loader, 0) == ref[0]
    assert epoch_draws(loader, 1) == ref[1]
    resumed = _loader(dataset, sampler, 2, persistent=True)
    assert epoch_draws(resumed, 1) == ref[1]


def test_without_seeds_a_resume_replays_epoch_0(dataset):
    """Why the sampler exists: with mmengine's DefaultSampler and
    persistent workers, a fresh loader at epoch 1 does not reproduce the
    uninterrupted run's epoch 1."""
    sampler = DefaultSampler(dataset, shuffle=True, seed=0)
    torch.manual_seed(0)
    loader = _loader(dataset, sampler, 2, persistent=True)
    epoch_draws(loader, 0)
    straight = epoch_draws(loader, 1)
    torch.manual_seed(0)
    resumed = epoch_draws(_loader(dataset, sampler, 2, persistent=True), 1)
    assert resumed != straight


def test_main_process_streams_are_untouched(dataset):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    dataset[SeededIndex(2, 99)]
    assert (random.random(), float(np.random.rand()),
            float(torch.rand(1))) == expected
    # Same seed, same draws; a plain index draws from the global streams.
    assert dataset[SeededIndex(2, 99)]['draws'] == dataset[SeededIndex(
        2, 99)]['draws']
    assert dataset[2]['draws'] != dataset[2]['draws']


def test_epoch_seed_hook_seeds_per_iteration():
    runner = mock.Mock(seed=11, epoch=2, iter=17)
    hook = EpochSeedHook()
    hook.before_train_iter(runner, batch_idx=5)
    got = torch.rand(3)
    seed = int(np.random.SeedSequence([11, 17, 0, 1]).generate_state(1)[0])
    torch.manual_seed(seed)
    torch.testing.assert_close(got, torch.rand(3), rtol=0, atol=0)
    hook.before_train_epoch(runner)
    a = np.random.rand()
    np.random.seed((11 * 1_000_003 + 2 * 7919) % 2**32)
    assert a == np.random.rand()
    # per_iter=False leaves the stream alone between iterations.
    torch.manual_seed(0)
    EpochSeedHook(per_iter=False).before_train_iter(runner, batch_idx=0)
    x = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(x, torch.rand(1))
