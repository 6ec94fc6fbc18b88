"""How the scans' autograd Functions appear in a ``torch.jit`` trace.

The FLOP counters of MMEngine (``mmengine.analysis``) and fvcore trace the
model and count each node of the graph. An autograd Function becomes one
``prim::PythonOp`` node named after the Function, and that node is what a
counting handle sees (:mod:`zeromamba_mm.analysis`). The tracer also
records the operations run *inside* the Function's ``forward`` and moves
them into a subgraph of the node (for ONNX export). That move fails with
``RuntimeError: unordered_map::at`` when ``forward`` uses a tensor created
in an earlier call, as the chunked scan's scratch buffers (kept across
calls on CPU) are; and it leaves operations in the graph beside the node
when ``forward`` updates unbound slices in place, as the chunked scan does
(hundreds of nodes per scan; a matrix product among them would be counted
a second time).

:func:`opaque_to_tracer` runs ``forward`` with the tracer paused, so the
graph holds the node with its inputs and outputs only. During ONNX export,
which inlines that subgraph, ``forward`` is traced as before.
"""
import functools
from typing import Callable, TypeVar

import torch

F = TypeVar('F', bound=Callable)


def opaque_to_tracer(forward: F) -> F:
    """Decorate an autograd Function's ``forward`` so that a jit trace
    records the Function as one ``prim::PythonOp`` node, without the
    operations inside it (except during ONNX export).

    Args:
        forward (callable): The Function's ``forward(ctx, *args)``, returning
            a tensor or a tuple of tensors.

    Returns:
        callable: ``forward``, run untraced while a trace is recorded.
    """

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        state = torch._C._get_tracing_state()
        if state is None or torch.onnx.is_in_onnx_export():
            return forward(*args, **kwargs)
        torch._C._set_tracing_state(None)
        try:
            out = forward(*args, **kwargs)
        finally:
            torch._C._set_tracing_state(state)
        # The tracer closes the node's subgraph by looking up each output;
        # an untraced output would be inserted as a constant, which fails
        # once autograd has marked it as requiring grad. A traced (free)
        # detach gives every output its value in the graph first.
        if isinstance(out, tuple):
            return tuple(t.detach() for t in out)
        return out.detach()

    return wrapped  # type: ignore[return-value]
