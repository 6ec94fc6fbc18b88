"""A tiny model, dataset and metric to exercise the runner in seconds.

Used in-process by ``tests/test_runner.py`` and as a script by its
kill-during-save test::

    python tests/_toy_runner.py WORK_DIR RUNNER KILL_AT

RUNNER is ``zsl`` (ZSLRunner + SafeCheckpointHook) or ``mmengine`` (MMEngine's
Runner + CheckpointHook); KILL_AT is ``last`` or ``best``: the file write of
the epoch-2 checkpoint (or of the epoch-2 best checkpoint) stops half-way,
prints ``WRITING`` and sleeps, so that the parent can SIGKILL it mid-save.

In-process, the runner's default scope (``'mmengine'``) is current only
while its ``train``, ``val`` or ``test`` runs: MMEngine's Runner makes its
scope the process's current one for good, and the next test's builds would
look in MMEngine's root registries (``tests/conftest.py`` fails a test that
leaves the scope changed).
"""
import functools
import os
import sys
import time

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import METRICS, DefaultScope
from torch.utils.data import Dataset


class ToyModel(BaseModel):

    def __init__(self, width: int = 4):
        super().__init__()
        self.fc = torch.nn.Linear(width, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        out = self.fc(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss=((out - target)**2).mean())
        if mode == 'predict':
            return [dict(pred=p, target=t) for p, t in zip(out, target)]
        return out


class ToyDataset(Dataset):

    def __init__(self, n: int = 16, width: int = 4):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, width, generator=g)
        self.y = self.x.sum(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], target=self.y[i])


@METRICS.register_module(force=True)
class ToyCountingMetric(BaseMetric):
    """``toy/acc`` grows by one at every evaluation (a new best each time)."""
    default_prefix = 'toy'
    count = 0

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        ToyCountingMetric.count += 1
        return dict(acc=float(ToyCountingMetric.count))


@METRICS.register_module(force=True)
class ToyErrorMetric(BaseMetric):
    """``toy/acc``: minus the mean squared error (deterministic)."""
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results += [
            float((s['pred'] - s['target'])**2) for s in data_samples
        ]

    def compute_metrics(self, results):
        return dict(acc=-sum(results) / len(results))


def toy_runner(work_dir: str,
               max_epochs: int = 2,
               runner: str = 'zsl',
               max_keep_ckpts: int = 1,
               metric: str = 'ToyCountingMetric',
               **kwargs):
    """A runner (``'zsl'`` or ``'mmengine'``) training the toy model."""
    from mmengine.runner import Runner

    import zeromamba_mm  # noqa: F401
    from zeromamba_mm.engine import ZSLRunner
    cls = ZSLRunner if runner == 'zsl' else Runner
    hook = 'zeromamba_mm.SafeCheckpointHook' if runner == 'zsl' else \
        'CheckpointHook'
    loader = dict(
        dataset=ToyDataset(),
        # Fixed order: resume exactness of the data order is EpochSeedHook's
        # business; here the optimizer, scheduler and message hub are.
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=4,
        collate_fn=dict(type='default_collate'))
    torch.manual_seed(0)  # the same initial weights in every run
    kwargs.setdefault('experiment_name', f'toy_{os.getpid()}_{time.time_ns()}')
    # end fixed: a run stopped early has the schedule of the full run.
    kwargs.setdefault(
        'param_scheduler',
        dict(type='MultiStepLR', milestones=[1], gamma=0.5, begin=0, end=3))
    saved_scopes = DefaultScope._instance_dict.copy()
    runner = cls(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=dict(type=metric),
        val_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(
                type=hook,
                interval=1,
                max_keep_ckpts=max_keep_ckpts,
                save_best='toy/acc',
                rule='greater'),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        default_scope='mmengine',
        **kwargs)
    DefaultScope._instance_dict = saved_scopes
    for name in ('train', 'val', 'test'):
        setattr(runner, name,
                _in_scope(getattr(runner, name), runner.default_scope))
    return runner


def _in_scope(method, scope: DefaultScope):
    """``method`` run with ``scope`` current, and the scope before it
    current again afterwards (also when it raises)."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        with DefaultScope.overwrite_default_scope(scope.scope_name):
            return method(*args, **kwargs)

    return run


def _stall_mid_write(kill_at: str) -> None:
    """Make the chosen checkpoint write stop half-way and hang."""
    from mmengine.fileio.backends import LocalBackend
    original = LocalBackend.put

    def put(self, obj, filepath):
        name = os.path.basename(str(filepath))
        hit = 'epoch_2' in name and (('best' in name) == (kill_at == 'best'))
        if not hit:
            return original(self, obj, filepath)
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            os.fsync(f.fileno())
        print('WRITING', flush=True)
        time.sleep(120)

    LocalBackend.put = put


if __name__ == '__main__':
    work_dir, runner_name, kill_at = sys.argv[1:4]
    _stall_mid_write(kill_at)
    toy_runner(work_dir, max_epochs=2, runner=runner_name).train()
