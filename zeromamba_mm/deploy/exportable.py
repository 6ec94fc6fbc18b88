"""The graph that is exported: preprocessing, model and output mode.

:class:`ExportableClassifier` wraps a built, weight-loaded classifier so
that one ``forward`` holds everything between a resized image and the
answer: the model's own data preprocessor (BGR -> RGB, mean/std), the
backbone and neck, and the head in one of two modes:

- ``'scores'``: the head's ``pred_score`` of the stored classes
  (``raw_scores``) and the scores at the operating point (``scores``:
  softmax or raw space, minus γ on the seen classes, as
  :func:`~zeromamba_mm.evaluation.to_score_space` and calibrated stacking
  define them). A plain ImageClassifier gives its softmax (``scores``).
- ``'attributes'``: the head's attribute prediction (``attributes``) and
  the head's scores of any class-attribute matrix given as a second input
  (``raw_scores``), so classes can be added at deployment time.

Training-only parts are not in the graph: training signals are only called
by ``loss``, and a wrapping head (IDML, PDML-inspired) predicts with its
plain wrapped head (``head.base``).
"""
import contextlib
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zeromamba_mm.evaluation.score_spaces import SCORE_SPACES
from zeromamba_mm.models.heads.head_wrapper import HeadWrapper
from zeromamba_mm.models.utils import dct
from .metadata import MODES


def plain_head(head: nn.Module) -> nn.Module:
    """The head that predicts: the wrapped head of a training wrapper.

    Raises:
        ValueError: If the wrapper predicts with its own branch
            (``test_introspective=True``), which the export leaves out.
    """
    if not isinstance(head, HeadWrapper):
        return head
    if getattr(head, 'test_introspective', False):
        raise ValueError(
            f'{type(head).__name__} has test_introspective=True: it predicts '
            'with its introspective branch, which the export (plain head '
            'only) leaves out, so the ONNX scores would differ. Set '
            'model.head.test_introspective=False (--cfg-options) to export '
            'the plain head.')
    return head.base


def is_zero_shot(model: nn.Module) -> bool:
    """Whether ``model``'s head scores classes by attribute vectors."""
    return callable(getattr(model.head, 'set_class_semantics', None))


@contextlib.contextmanager
def class_matrix(head: nn.Module, matrix: Tensor) -> Iterator[None]:
    """Let ``head`` score the classes of ``matrix`` (a traced input) with
    its own ``predict_scores``, and restore its classes afterwards."""
    saved = head.class_attributes
    head.class_attributes = matrix
    try:
        yield
    finally:
        head.class_attributes = saved


#: Head methods whose result depends on buffers only (constant in a
#: deployed model) through data-dependent Python branches, which
#: ``torch.export`` cannot record: evaluated once before the export.
BUFFER_DECISIONS = ('_global_columns', )


@contextlib.contextmanager
def frozen_decisions(head: nn.Module) -> Iterator[None]:
    """Replace the :data:`BUFFER_DECISIONS` of ``head`` by their values
    (e.g. DRMN's fused global-branch columns) while exporting."""
    frozen = []
    for name in BUFFER_DECISIONS:
        method = getattr(head, name, None)
        if callable(method) and name not in vars(head):
            value = method()
            setattr(head, name, lambda value=value: value)
            frozen.append(name)
    try:
        yield
    finally:
        for name in frozen:
            delattr(head, name)  # the class's method again


#: Per-module attributes holding lazily computed constants (frequency masks,
#: DCT operators) keyed by input size.
MODULE_CACHES = ('_masks', '_ops')


@contextlib.contextmanager
def fresh_caches(model: nn.Module) -> Iterator[None]:
    """Empty the constant caches of ``model`` (and the DCT matrices) before
    and after an export: torch.export fills them with its fake tensors,
    which would break every later PyTorch call."""
    caches = [dct._MATRIX_CACHE] + [
        vars(module)[name] for module in model.modules()
        for name in MODULE_CACHES if isinstance(vars(module).get(name), dict)
    ]
    for cache in caches:
        cache.clear()
    try:
        yield
    finally:
        for cache in caches:
            cache.clear()


class ExportableClassifier(nn.Module):
    """A classifier as one graph from image to outputs (see module doc).

    Args:
        model (nn.Module): A built ``ZeroShotClassifier`` (or mmpretrain
            ``ImageClassifier``) with weights and, for zero-shot models,
            class semantics set.
        mode (str): ``'scores'`` or ``'attributes'``.
        gamma (float): γ of calibrated stacking (``'scores'`` mode).
        score_space (str): ``'softmax'`` or ``'raw'`` (``'scores'`` mode).
    """

    def __init__(self,
                 model: nn.Module,
                 mode: str = 'scores',
                 gamma: float = 0.0,
                 score_space: str = 'softmax') -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}.')
        if score_space not in SCORE_SPACES:
            raise ValueError(f'score_space must be one of {SCORE_SPACES}, got '
                             f'{score_space!r}.')
        self.model = model.eval()
        self.zero_shot = is_zero_shot(model)
        if mode == 'attributes' and not self.zero_shot:
            raise ValueError(
                f'--mode attributes needs a zero-shot head (attribute '
                f'prediction); {type(model.head).__name__} predicts fixed '
                'classes: export it with --mode scores.')
        self.head = plain_head(model.head)
        self.mode = mode
        self.gamma = float(gamma)
        self.score_space = score_space

    @property
    def output_names(self) -> Tuple[str, ...]:
        """Names of the graph outputs, in order."""
        if not self.zero_shot:
            return ('scores', )
        if self.mode == 'scores':
            return ('scores', 'raw_scores')
        return ('attributes', 'raw_scores')

    @property
    def input_names(self) -> Tuple[str, ...]:
        """Names of the graph inputs, in order."""
        if self.mode == 'attributes':
            return ('image', 'class_attributes')
        return ('image', )

    def calibrate(self, raw: Tensor) -> Tensor:
        """Scores at the operating point: the score space over all classes,
        minus γ on the seen ones (the head's ``seen_classes``)."""
        scores = raw.softmax(dim=1) if self.score_space == 'softmax' else raw
        seen = torch.zeros(raw.shape[1], dtype=raw.dtype)
        seen[self.head.seen_classes.cpu()] = 1
        return scores - self.gamma * seen

    def forward(self,
                image: Tensor,
                class_attributes: Optional[Tensor] = None):
        """Outputs named by :attr:`output_names`.

        Args:
            image (Tensor): (B, 3, H, W) float pixels (0-255, the channel
                order of the test pipeline's output, BGR for files).
            class_attributes (Tensor, optional): (C, A) classes to score
                (``'attributes'`` mode).
        """
        data = self.model.data_preprocessor({'inputs': image}, False)
        feats = self.model.extract_feat(data['inputs'])
        if not self.zero_shot:
            return F.softmax(self.model.head(feats), dim=1)
        if self.mode == 'attributes':
            with class_matrix(self.head, class_attributes):
                return self.head(feats), self.head.predict_scores(feats)
        raw = self.head.predict_scores(feats)
        return self.calibrate(raw), raw
