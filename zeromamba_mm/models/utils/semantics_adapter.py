"""Hand a :class:`~zeromamba_mm.structures.ClassSemantics` to a model.

One place decides where the classes go: a
:class:`~zeromamba_mm.models.ZeroShotClassifier` takes them itself, a plain
mmpretrain ``ImageClassifier`` with an attribute head through its head. Used
by :class:`~zeromamba_mm.engine.ZSLSemanticsHook` (per phase) and by
:class:`~zeromamba_mm.apis.ZSLInferencer`.
"""
from mmengine.model import is_model_wrapper
from torch import nn

from zeromamba_mm.structures.class_semantics import ClassSemantics

__all__ = ['set_model_class_semantics', 'semantics_target']


def semantics_target(model: nn.Module):
    """The module whose ``set_class_semantics`` takes the classes.

    Args:
        model (nn.Module): A model, possibly in a wrapper (DDP...).

    Returns:
        nn.Module: The model itself (it has ``set_class_semantics``) or its
        ``head``.

    Raises:
        TypeError: if neither the model nor its head takes class semantics.
    """
    if is_model_wrapper(model):
        model = model.module
    if callable(getattr(model, 'set_class_semantics', None)):
        return model
    head = getattr(model, 'head', None)
    if callable(getattr(head, 'set_class_semantics', None)):
        return head
    raise TypeError(
        f'{type(model).__name__} (head: {type(head).__name__}) takes no '
        'class semantics: neither the model nor its head has '
        'set_class_semantics(). Use zeromamba_mm.ZeroShotClassifier, or an '
        'ImageClassifier with an attribute head (e.g. '
        'zeromamba_mm.ZeroMambaHead, zeromamba_mm.LinearAttributeHead).')


def set_model_class_semantics(model: nn.Module,
                              semantics: ClassSemantics) -> None:
    """Set the classes a zero-shot model scores.

    Args:
        model (nn.Module): A ``ZeroShotClassifier``, or an
            ``ImageClassifier`` with an attribute head (wrappers are
            unwrapped).
        semantics (ClassSemantics): The classes.

    Raises:
        TypeError: if ``semantics`` is not a ClassSemantics, or the model
            takes none (see :func:`semantics_target`).
    """
    if not isinstance(semantics, ClassSemantics):
        raise TypeError('set_model_class_semantics() needs a ClassSemantics '
                        f'(zeromamba_mm.structures), got '
                        f'{type(semantics).__name__}.')
    semantics_target(model).set_class_semantics(semantics)
