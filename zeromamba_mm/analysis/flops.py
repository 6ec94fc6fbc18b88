"""FLOP counting for the plugin's models with MMEngine's analyzer.

``mmengine.analysis`` (fvcore's design, used by mmpretrain's
``tools/analysis_tools/get_flops.py``) traces the model with ``torch.jit``
and counts the graph's nodes with one *handle* per operator; one
multiply-add counts as one FLOP. This module adds the handles the plugin's
operators need:

- **Selective scan** (the ``prim::PythonOp`` node of the torch or Triton
  scan's autograd Function, see :mod:`zeromamba_mm.ops.tracing`): VMamba's
  convention, ``9·B·L·D·N`` per scan of B sequences of L steps with D
  channels and state size N, plus ``B·D·L`` for the skip term ``D·u`` when
  the scan has one (as VMamba's own count, which always has it). The gate
  ``y·silu(z)`` (Vim, V2M) is applied after the scan op, as an
  element-wise product, and like every element-wise op is not counted (it
  would add ``B·D·L``, 1/145 of a scan with skip at N = 16). Reported
  as the operator ``selective_scan``.
- **2-D selective scan** (:func:`zeromamba_mm.ops.selective_scan_2d`,
  V2M): counted as what it runs. It is no single op but, per direction, a
  row pass (B·H sequences of W steps) and a column pass (B·W sequences of
  H steps), each a 1-D selective scan counted as above (the projection
  fixed to ones is an operand like any other), plus the ``x_proj`` and
  ``dt_proj`` projections (``bmm``) and optional causal convolutions,
  counted by MMEngine's handles.
- **Matrix products with broadcasting** (``aten::matmul``), which the DCT
  of GlobalMamba's frequency serialization is made of
  (:mod:`zeromamba_mm.models.utils.dct`: ``M_H x M_Wᵀ`` on (B, C, H, W)
  maps). MMEngine's handle counts ``numel(first operand) × columns`` and
  misses the batch of ``M_H @ x``; this one counts ``numel(output) × K``
  (K the contracted size), the same as MMEngine's wherever that one is
  right.

Element-wise operations (activations, products, additions, softplus, exp)
are not counted, as in MMEngine, fvcore and VMamba's figures.
"""
from collections import Counter
from math import prod
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.analysis import (ActivationAnalyzer, FlopAnalyzer,
                               parameter_count)
from mmengine.analysis.jit_handles import get_shape
from mmengine.analysis.print_helper import (complexity_stats_str,
                                            complexity_stats_table)
from torch import nn

Handle = Callable[[List[Any], List[Any]], Union[int, Counter]]

#: Operator name under which the scans' counts are reported.
SCAN_OP = 'selective_scan'


def selective_scan_flops(batch: int,
                         length: int,
                         channels: int,
                         d_state: int,
                         with_skip: bool = True,
                         with_gate: bool = False) -> int:
    """FLOPs of one selective scan in VMamba's convention.

    Args:
        batch (int): Sequences B.
        length (int): Steps L.
        channels (int): Channels D.
        d_state (int): State size N.
        with_skip (bool): The scan adds ``D·u`` (``B·D·L``).
        with_gate (bool): The scan multiplies by ``silu(z)`` (``B·D·L``).

    Returns:
        int: ``9·B·L·D·N`` plus ``B·D·L`` per extra term.
    """
    flops = 9 * batch * length * channels * d_state
    extras = int(with_skip) + int(with_gate)
    return flops + extras * batch * channels * length


class ScanSignature:
    """Where an autograd Function of a scan takes its arguments.

    Args:
        name (str): The Function's class name (the node's ``pyname``).
        skip_index (int): Position of ``D`` among ``apply``'s arguments.
        gate_index (int, optional): Position of ``z``; None if the Function
            takes no gate.
    """

    def __init__(self,
                 name: str,
                 skip_index: int,
                 gate_index: Optional[int] = None) -> None:
        self.name = name
        self.skip_index = skip_index
        self.gate_index = gate_index

    @property
    def op_name(self) -> str:
        """The operator name MMEngine gives the Function's node."""
        return f'prim::PythonOp.{self.name}'


#: The plugin's scan Functions: ``apply(u, delta, A, B, C, D, delta_bias,
#: ...)`` (the gate is applied by the dispatch, after the Function).
SCAN_SIGNATURES: Tuple[ScanSignature, ...] = (
    ScanSignature('SelectiveScanTorchFn', skip_index=5),
    ScanSignature('SelectiveScanStatesFn', skip_index=5),
    ScanSignature('SelectiveScanCpuFn', skip_index=5),
    ScanSignature('SelectiveScanTritonFn', skip_index=5),
)


def _passes_tensor(node: Any, index: Optional[int]) -> bool:
    """Whether argument ``index`` of a ``prim::PythonOp`` node is a tensor.

    The node's calling convention has one letter per argument of
    ``apply``: ``'d'`` for a traced tensor, ``'c'`` for a constant (None
    included).
    """
    if index is None:
        return False
    cconv = node.cconv()
    return index < len(cconv) and cconv[index] == 'd'


def _scan_shapes(inputs: List[Any]) -> Tuple[int, int, int, int]:
    """(B, L, D, N) from the node's first inputs ``u`` (B, D, L) and ``A``
    (D, N)."""
    u_shape, a_shape = get_shape(inputs[0]), get_shape(inputs[2])
    if u_shape is None or a_shape is None or len(u_shape) != 3 or \
            len(a_shape) != 2:
        raise ValueError(
            'selective-scan FLOP handle: expected u (B, D, L) and A (D, N) '
            f'with known shapes as inputs 0 and 2, got {u_shape} and '
            f'{a_shape}; trace the model with concrete input tensors.')
    batch, channels, length = u_shape
    return batch, length, channels, a_shape[1]


def scan_flop_handle(signature: ScanSignature) -> Handle:
    """The FLOP handle of one scan Function (see the module docstring).

    Args:
        signature (ScanSignature): Where the Function takes ``D`` and ``z``.

    Returns:
        callable: ``handle(inputs, outputs) -> Counter({'selective_scan':
        flops})``.
    """

    def handle(inputs: List[Any], outputs: List[Any]) -> Counter:
        node = outputs[0].node()
        batch, length, channels, d_state = _scan_shapes(inputs)
        flops = selective_scan_flops(
            batch,
            length,
            channels,
            d_state,
            with_skip=_passes_tensor(node, signature.skip_index),
            with_gate=_passes_tensor(node, signature.gate_index))
        return Counter({SCAN_OP: flops})

    return handle


def scan_activation_handle(inputs: List[Any], outputs: List[Any]) -> Counter:
    """Activations of a scan: its output ``y`` (B, D, L) (the last state,
    when also returned, is not counted, as for any op's second output)."""
    batch, length, channels, _ = _scan_shapes(inputs)
    return Counter({SCAN_OP: batch * channels * length})


def matmul_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``torch.matmul`` with broadcasting: ``numel(out) × K``.

    Every output element is one dot product over the contracted size K
    (the last dim of the first operand).
    """
    first, out = get_shape(inputs[0]), get_shape(outputs[0])
    if first is None or out is None:
        raise ValueError('matmul FLOP handle: operand shapes unknown; '
                         'trace the model with concrete input tensors.')
    return prod(out) * first[-1]


def flop_handles() -> Dict[str, Handle]:
    """The handles this module adds to an MMEngine ``FlopAnalyzer``."""
    handles: Dict[str, Handle] = {
        s.op_name: scan_flop_handle(s)
        for s in SCAN_SIGNATURES
    }
    handles['aten::matmul'] = matmul_flop_jit
    return handles


def activation_handles() -> Dict[str, Handle]:
    """The handles this module adds to an MMEngine ``ActivationAnalyzer``."""
    return {s.op_name: scan_activation_handle for s in SCAN_SIGNATURES}


AnalyzerT = Union[FlopAnalyzer, ActivationAnalyzer]


def add_flop_handles(analyzer: AnalyzerT) -> AnalyzerT:
    """Add the plugin's handles to an MMEngine analyzer.

    Args:
        analyzer (FlopAnalyzer | ActivationAnalyzer): Built on the model and
            its inputs, not yet evaluated.

    Returns:
        The same analyzer, for chaining:
        ``add_flop_handles(FlopAnalyzer(model, inputs)).total()``.
    """
    if isinstance(analyzer, FlopAnalyzer):
        return analyzer.set_op_handle(**flop_handles())
    if isinstance(analyzer, ActivationAnalyzer):
        return analyzer.set_op_handle(**activation_handles())
    raise TypeError('add_flop_handles takes an mmengine.analysis '
                    'FlopAnalyzer or ActivationAnalyzer, got '
                    f'{type(analyzer).__name__}')


def format_count(value: float) -> str:
    """``8549000000`` -> ``'8.549G'`` (K, M, G, T; 4 significant digits)."""
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.4g}{unit}'
    return f'{value:.4g}'


def _make_inputs(model: nn.Module, input_shape: Optional[Sequence[int]],
                 inputs: Any) -> Tuple[Any, ...]:
    """MMEngine's rule: ``inputs`` as given, else one random tensor of
    batch 1 and ``input_shape`` on the model's device."""
    if (input_shape is None) == (inputs is None):
        raise ValueError('get_model_complexity_info: give exactly one of '
                         '`input_shape` (e.g. (3, 224, 224)) and `inputs`.')
    if inputs is not None:
        return inputs if isinstance(inputs, tuple) else (inputs, )
    if not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError('get_model_complexity_info: input_shape must be '
                         f'positive ints, e.g. (3, 224, 224); got '
                         f'{input_shape!r}')
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    return (torch.randn(1, *input_shape, device=device), )


def get_model_complexity_info(model: nn.Module,
                              input_shape: Optional[Sequence[int]] = None,
                              inputs: Any = None,
                              show_table: bool = True,
                              show_arch: bool = True) -> Dict[str, Any]:
    """``mmengine.analysis.get_model_complexity_info`` with the plugin's
    handles (the selective scan, broadcasting matmuls).

    The model's ``forward`` is traced on ``inputs`` (or one random tensor
    of ``input_shape`` with batch 1), so set it to the path to count first
    (e.g. :func:`zeromamba_mm.analysis.use_inference_path`).

    Args:
        model (nn.Module): The model, in eval mode.
        input_shape (Sequence[int], optional): Shape of one input without
            the batch dim, e.g. ``(3, 224, 224)``.
        inputs (Tensor | tuple, optional): The inputs of ``forward``.
        show_table (bool): Build the per-module table. Defaults to True.
        show_arch (bool): Build the per-module architecture print-out.
            Defaults to True.

    Returns:
        dict: MMEngine's keys (``flops``, ``flops_str``, ``activations``,
        ``activations_str``, ``params``, ``params_str``, ``out_table``,
        ``out_arch``) plus ``flops_by_operator`` (Counter) and
        ``uncounted_ops`` (Counter of operators that no handle counts,
        with their number of calls).
    """
    inputs = _make_inputs(model, input_shape, inputs)
    # One report in `uncounted_ops` instead of a warning per operator; the
    # modules only training calls (losses) would each warn as uncalled.
    flop_analyzer, act_analyzer = (
        add_flop_handles(analyzer(model, inputs)).unsupported_ops_warnings(
            False).uncalled_modules_warnings(False)
        for analyzer in (FlopAnalyzer, ActivationAnalyzer))
    flops = flop_analyzer.total()
    activations = act_analyzer.total()
    params = parameter_count(model)['']
    table = arch = ''
    if show_table:
        table = '\n' + complexity_stats_table(
            flops=flop_analyzer,
            activations=act_analyzer,
            show_param_shapes=True)
    if show_arch:
        arch = '\n' + complexity_stats_str(
            flops=flop_analyzer, activations=act_analyzer)
    return {
        'flops': flops,
        'flops_str': format_count(flops),
        'activations': activations,
        'activations_str': format_count(activations),
        'params': params,
        'params_str': format_count(params),
        'out_table': table,
        'out_arch': arch,
        'flops_by_operator': flop_analyzer.by_operator(),
        'uncounted_ops': flop_analyzer.unsupported_ops(),
    }
