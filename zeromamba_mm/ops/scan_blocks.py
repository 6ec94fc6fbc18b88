"""How the pure-PyTorch scans cut a problem into chunks and blocks, and
where the blocks' temporaries live.

Both CPU scans (:mod:`.selective_scan_torch` for d_state 1,
:mod:`.selective_scan_states` for d_state > 1) cut the sequence into
``nc`` chunks of ``T`` steps (:func:`chunk_shape`), process the rows
(batch x channel) in blocks small enough to stay in the last-level cache
(:func:`scan_blocks`), and take each block's temporaries from a pool of
buffers handed out by role (:class:`ScanWorkspace`).
"""
import contextlib
import math
import threading
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

# Preferred chunk length (see chunk_shape).
CHUNK_TARGET = 16


def chunk_shape(length: int, target: Optional[int] = None) -> Tuple[int, int]:
    """Chunk length ``T`` and number of chunks ``nc`` for ``length`` steps.

    Short chunks keep the Python loops over ``T`` short and each of their
    steps a wide slab; the carry across the ``nc`` chunks is a log-depth
    scan, so a large ``nc`` is cheap. Prefers a divisor of ``length`` in
    ``[target / 2, 2 * target]`` (``H * W`` sequences usually have one:
    no padding), else pads to a multiple of ``target``.

    Args:
        length (int): Sequence length L.
        target (int, optional): Preferred chunk length; defaults to
            :data:`CHUNK_TARGET`.

    Returns:
        tuple[int, int]: ``(T, nc)`` with ``length <= T * nc < length + T``.
    """
    target = target or CHUNK_TARGET
    if length <= 2 * target:
        return length, 1
    divisors = [
        t for t in range(target // 2, 2 * target + 1) if length % t == 0
    ]
    if divisors:
        t = min(divisors, key=lambda d: (abs(d - target), -d))
        return t, length // t
    return target, math.ceil(length / target)


def _even(n: int, parts: int) -> Iterator[slice]:
    """``parts`` nearly equal slices of ``range(n)``."""
    parts = max(1, min(n, parts))
    size = math.ceil(n / parts)
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def scan_blocks(batch: int, groups: int, per_group: int, length: int,
                budget: Optional[int]) -> Iterator[Tuple[slice, slice, slice]]:
    """Split (batch, group, channel-in-group) rows into blocks of at most
    about ``budget`` elements; a block holds either whole groups or part of
    one group, so its B/C are a plain slice."""
    everything = (slice(0, batch), slice(0, groups), slice(0, per_group))
    if budget is None or batch * groups * per_group * length <= budget:
        yield everything
        return
    item = groups * per_group * length
    group = per_group * length
    if item <= budget:
        for bs in _even(batch, math.ceil(batch * item / budget)):
            yield bs, everything[1], everything[2]
    elif group <= budget:
        for b in range(batch):
            for gs in _even(groups, math.ceil(item / budget)):
                yield slice(b, b + 1), gs, everything[2]
    else:
        for b in range(batch):
            for g in range(groups):
                for ds in _even(per_group, math.ceil(group / budget)):
                    yield slice(b, b + 1), slice(g, g + 1), ds


class ScanWorkspace:
    """Scratch buffers handed out by role and recycled across blocks.

    On CPU a fresh multi-megabyte tensor costs page faults that take longer
    than the arithmetic done on it, so per-block temporaries come from a
    pool of flat buffers kept per thread, device and dtype (a few MB:
    blocks are small there). :meth:`take` gives a role (``'decay'``,
    ``'adjoint'``, ...) its own buffer for as long as the role is live;
    :meth:`release` ends the role and returns the memory to the pool, where
    a role taken later may receive it. A role therefore has one meaning for
    its whole lifetime, and the memory of roles whose lifetimes do not
    overlap is shared, as with a caching allocator. On other devices the
    caching allocator already does this and blocks are whole problems, so
    every take allocates and nothing is kept.
    """

    _local = threading.local()

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.keep = device.type == 'cpu'
        self.free: List[Tensor] = []
        self.live: Dict[str, Tensor] = {}

    @classmethod
    def get(cls, device: torch.device, dtype: torch.dtype) -> 'ScanWorkspace':
        cache = getattr(cls._local, 'cache', None)
        if cache is None:
            cache = cls._local.cache = {}
        key = (device, dtype)
        if key not in cache:
            cache[key] = cls(device, dtype)
        ws = cache[key]
        return ws if ws.keep else cls(device, dtype)

    def take(self, role: str, shape: Tuple[int, ...]) -> Tensor:
        """An uninitialised tensor of ``shape`` for ``role`` until
        :meth:`release`."""
        if role in self.live:
            raise RuntimeError(f'workspace role {role!r} is already live')
        numel = math.prod(shape)
        # Indices, not list.remove: tensors do not compare with ==.
        sizes = [b.numel() for b in self.free]
        fits = [i for i, n in enumerate(sizes) if n >= numel]
        if fits:
            buf = self.free.pop(min(fits, key=sizes.__getitem__))
        else:
            if self.free:  # replace the largest (too small) free buffer
                self.free.pop(max(range(len(sizes)), key=sizes.__getitem__))
            buf = torch.empty(numel, dtype=self.dtype, device=self.device)
        self.live[role] = buf
        return buf[:numel].view(shape)

    def release(self, *roles: str) -> None:
        """End ``roles``; their memory may be handed to later roles."""
        for role in roles:
            buf = self.live.pop(role)
            if self.keep:
                self.free.append(buf)

    def rename(self, role: str, new_role: str) -> None:
        """Hand ``role``'s buffer to ``new_role``, for an in-place update
        that turns the old quantity (no longer needed) into the new one:
        on CPU an in-place product streams two operands instead of three,
        which is measurably faster than writing to a fresh buffer."""
        if new_role in self.live:
            raise RuntimeError(f'workspace role {new_role!r} is already live')
        self.live[new_role] = self.live.pop(role)

    @contextlib.contextmanager
    def scope(self) -> Iterator['ScanWorkspace']:
        """Release every role taken inside (one block), also on error."""
        before = set(self.live)
        try:
            yield self
        finally:
            self.release(*[r for r in self.live if r not in before])
