"""The chunk layout of the d_state-1 scan and the carry across chunks.

:mod:`.selective_scan_torch` lays a block out as ``(..., T, nc)`` (step
``t`` of chunk ``c`` at ``c * T + t``) and runs the recurrence
``h_t = a_t h_{t-1} + b_t`` (and its adjoint) in two loops over ``T``
with a carry across the ``nc`` chunks in between (:func:`scan_forward_`,
:func:`scan_backward_`). :func:`carry_`, the carry, also serves the
time-major scan of :mod:`.selective_scan_states`.
"""
import torch
from torch import Tensor


def carry_(total: Tensor,
           end: Tensor,
           dim: int = 0,
           reverse: bool = False) -> Tensor:
    """Inclusive linear scan along ``dim`` by recursive doubling, in place.

    ``e_c <- e_c + t_c e_{c-1}`` (or, with ``reverse``,
    ``e_c <- e_c + t_c e_{c+1}``): ``log2(n)`` steps of whole-tensor ops
    that only multiply decays (<= 1), so as stable as the sequential
    form.

    Args:
        total (Tensor): ``t``, each chunk's total decay; consumed.
        end (Tensor): ``e``, overwritten with the scan.
        dim (int): The chunk dimension.
        reverse (bool): Scan from the last chunk to the first.

    Returns:
        Tensor: ``end``.
    """
    n, k = end.shape[dim], 1
    while k < n:
        head, tail = (lambda x, k=k: x.narrow(dim, 0, n - k),
                      lambda x, k=k: x.narrow(dim, k, n - k))
        near, far = (head, tail) if reverse else (tail, head)
        near(end).copy_(torch.addcmul(near(end), near(total), far(end)))
        if 2 * k < n:
            near(total).copy_(near(total) * far(total))
        k *= 2
    return end


def chunked(x: Tensor, T: int, nc: int) -> Tensor:
    """View ``(..., T * nc)`` as ``(..., T, nc)``: step t of chunk c is at
    position ``c * T + t``."""
    return x.unflatten(-1, (nc, T)).transpose(-1, -2)


def scan_forward_(a: Tensor, b: Tensor) -> None:
    """In place ``b <- h`` for ``h_t = a_t h_{t-1} + b_t``, ``h_{-1} = 0``.

    ``a`` and ``b`` are ``(..., T, nc)`` (see :func:`chunked`).
    """
    T, nc = a.shape[-2], a.shape[-1]
    av, bv = a.unbind(-2), b.unbind(-2)
    if nc > 1:
        # Chunk-local end states, starting every chunk from zero.
        end = bv[0].clone()
        for t in range(1, T):
            torch.addcmul(bv[t], av[t], end, out=end)
        # True end states: scan over chunks with each chunk's total decay.
        carry_(torch.prod(a, dim=-2), end, dim=-1)
        bv[0][..., 1:].addcmul_(av[0][..., 1:], end[..., :-1])
    for t in range(1, T):
        bv[t].addcmul_(av[t], bv[t - 1])


def scan_backward_(a: Tensor, lam: Tensor) -> None:
    """In place ``lam <- l`` for ``l_t = lam_t + a_{t+1} l_{t+1}``.

    The adjoint of :func:`scan_forward_` (same layout, reversed).
    """
    T, nc = a.shape[-2], a.shape[-1]
    av, lv = a.unbind(-2), lam.unbind(-2)
    if nc > 1:
        # Chunk-local value at t = 0 with nothing coming from the right.
        first = lv[T - 1].clone()
        for t in range(T - 2, -1, -1):
            torch.addcmul(lv[t], av[t + 1], first, out=first)
        # True first values: l_first[c] = local[c] + alpha_c l_first[c+1]
        # with alpha_c = (decay of steps 1..T-1 of c) * a_first[c+1].
        alpha = torch.prod(a[..., 1:, :], dim=-2)
        alpha[..., :-1].mul_(av[0][..., 1:])
        alpha[..., -1] = 0
        first = carry_(alpha.flip(-1), first.flip(-1), dim=-1).flip(-1)
        # What chunk c's last step receives from the right.
        lv[T - 1][..., :-1].addcmul_(av[0][..., 1:], first[..., 1:])
    for t in range(T - 2, -1, -1):
        lv[t].addcmul_(av[t + 1], lv[t + 1])


def to_chunks(x: Tensor, T: int, nc: int, out: Tensor) -> Tensor:
    """Copy ``x`` (..., T * nc) into ``out`` in the (..., T, nc) layout."""
    return out.view(x.shape[:-1] + (T, nc)).copy_(chunked(x, T, nc))
