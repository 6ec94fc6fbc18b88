"""Fixes for the pinned stack, applied once when ``zeromamba_mm`` is imported.

Two known incompatibilities of mmengine 0.10.7 (see REFERENCE.md section 6):

* torch >= 2.6 loads with ``weights_only=True`` by default, and the runner's
  own checkpoints (message hub, ``HistoryBuffer``, numpy scalars) cannot be
  unpickled that way, so ``resume`` and ``load_from`` fail. Allow-listing
  those types would need ``builtins.getattr``, which is no safer than a full
  unpickle.
  We therefore unpickle fully *only* inside ``Runner.resume`` and
  ``Runner.load_checkpoint`` (files the user produced with this runner) and
  keep ``weights_only=True`` everywhere else (``init_cfg`` pretrained weights,
  third-party release files).
* Distributed runs on machines without CUDA: mmengine calls
  ``torch.cuda.set_device`` and hands ``device_ids=[LOCAL_RANK]`` to DDP. We
  initialise a gloo group instead and give DDP ``device_ids=None``.
"""
import contextlib
import os
import threading

import torch
import torch.distributed as torch_dist

_state = threading.local()
_APPLIED = False


def _trusted() -> bool:
    return getattr(_state, 'trusted', False)


@contextlib.contextmanager
def trusted_checkpoint_loading():
    """Let mmengine fully unpickle checkpoints inside this context.

    Only for checkpoints written by the runner itself (resume/``load_from``).
    """
    previous = _trusted()
    _state.trusted = True
    try:
        yield
    finally:
        _state.trusted = previous


def _patch_checkpoint_loading() -> None:
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return torch.load(
            filename, map_location=map_location, weights_only=not _trusted())

    CheckpointLoader._schemes[''] = load_from_local

    def trusted(method):

        def wrapper(self, *args, **kwargs):
            with trusted_checkpoint_loading():
                return method(self, *args, **kwargs)

        wrapper.__wrapped__ = method
        wrapper.__doc__ = method.__doc__
        return wrapper

    Runner.resume = trusted(Runner.resume)
    Runner.load_checkpoint = trusted(Runner.load_checkpoint)


def _patch_cpu_distributed() -> None:
    import mmengine.dist.utils as dist_utils
    from mmengine.runner import Runner

    original_init = dist_utils._init_dist_pytorch

    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available():
            return original_init(backend, init_backend=init_backend, **kwargs)
        # No CUDA: gloo is the only backend that works, and there is no
        # device to select.
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)

    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_wrap = Runner.wrap_model

    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and not torch.cuda.is_available():
            model_wrapper_cfg = dict(model_wrapper_cfg or {})
            model_wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
            model_wrapper_cfg.setdefault(
                'find_unused_parameters',
                self.cfg.get('find_unused_parameters', False))
            model_wrapper_cfg.setdefault('broadcast_buffers', False)
            model_wrapper_cfg['device_ids'] = None
        return original_wrap(self, model_wrapper_cfg, model)

    Runner.wrap_model = wrap_model


def apply() -> None:
    """Apply every patch once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_checkpoint_loading()
    _patch_cpu_distributed()
    _APPLIED = True
