"""The path a classifier runs at inference time, as one traceable forward.

mmpretrain's ``get_flops.py`` counts ``extract_feat`` only. A zero-shot
model's prediction also needs its head (SLP/GRL/SeF, DRMN's attention,
...), which scores every class of the class-attribute matrix, so the
plugin counts ``extract_feat`` followed by the head's class scores, and
nothing that only training runs (losses, ``train_signals``, IDML's and
the PDML-inspired head's training branches).
"""
from typing import Callable, Optional

import torch
from torch import Tensor, nn


def _num_seen_classes(head: nn.Module) -> Optional[int]:
    """The seen-class count a head was built for (DRMN's global branch),
    if any of its modules declares one."""
    for module in head.modules():
        value = getattr(module, 'num_seen_classes', None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _needs_semantics(head: nn.Module) -> bool:
    """Whether ``head`` scores classes by attributes and has none set."""
    if not hasattr(head, 'set_class_semantics'):
        return False
    try:
        head.check_class_attributes()
    except RuntimeError:  # not set (other problems are ValueErrors)
        return True
    return False


def set_placeholder_semantics(model: nn.Module, num_classes: int) -> None:
    """Give the model's attribute head ``num_classes`` placeholder classes.

    The class scores cost ``B·A·C`` multiply-adds for C classes of A
    attributes, whatever their values, so a counted model needs C classes
    but no real attributes: every class gets the all-ones vector, and the
    first ``num_seen_classes`` (DRMN's global branch) or all classes are
    marked seen.

    Args:
        model (nn.Module): A classifier with an attribute head.
        num_classes (int): C, all classes (seen and unseen).
    """
    head = model.head
    num_attributes = int(head.num_attributes)
    seen = _num_seen_classes(head) or num_classes
    if num_classes < seen:
        raise ValueError(
            f'{type(head).__name__} was built with num_seen_classes={seen}, '
            f'more than the {num_classes} classes given; pass the number of '
            'all classes (seen and unseen).')
    attributes = torch.ones(num_classes, num_attributes)
    head.set_class_semantics(attributes, seen_classes=list(range(seen)))


def use_inference_path(model: nn.Module,
                       num_classes: Optional[int] = None) -> nn.Module:
    """Make ``model(images)`` run the classifier's inference path.

    Sets ``model.forward`` (on the instance, as mmpretrain's ``get_flops.py``
    does) to ``extract_feat`` followed by the head's class scores:
    ``head.predict_scores`` for attribute heads (all C classes, before
    calibration), else the head's ``forward`` (mmpretrain's heads: logits).
    An attribute head without class semantics gets placeholder classes
    (:func:`set_placeholder_semantics`).

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier`` or a
            ``zeromamba_mm.ZeroShotClassifier``.
        num_classes (int, optional): Classes to score for an attribute head
            without class semantics; defaults to the data preprocessor's
            ``num_classes`` (the configs set it to all classes).

    Returns:
        nn.Module: ``model``, in eval mode.

    Raises:
        TypeError: If ``model`` has no ``extract_feat`` or no head.
        ValueError: If the classes to score are unknown.
    """
    missing = [
        name for name in ('extract_feat', 'head')
        if getattr(model, name, None) is None
    ]
    if missing:
        raise TypeError(
            'FLOPs are counted on classifiers with `extract_feat` and a head '
            '(mmpretrain ImageClassifier, zeromamba_mm.ZeroShotClassifier); '
            f'{type(model).__name__} has no {" and no ".join(missing)}.')
    head = model.head
    if _needs_semantics(head):
        if num_classes is None:
            num_classes = getattr(
                getattr(model, 'data_preprocessor', None), 'num_classes', None)
        if not num_classes:
            raise ValueError(
                f'{type(head).__name__} scores the classes of a class-'
                'attribute matrix, and their number is unknown: set '
                'model.data_preprocessor.num_classes in the config or pass '
                '--num-classes (all classes, seen and unseen).')
        set_placeholder_semantics(model, int(num_classes))
    score: Callable = getattr(head, 'predict_scores', None) or head

    def inference(inputs: Tensor) -> Tensor:
        return score(model.extract_feat(inputs))

    model.forward = inference
    return model.eval()
