"""Which classes a trained model scores: the ones its checkpoint recorded
(``meta['zsl_class_semantics']``, as stored), the ones the caller gives, or
(older checkpoints) the training classes of ``meta['dataset_meta']``.

One rule for :class:`~zeromamba_mm.apis.ZSLInferencer`, ``tools/infer.py``
and the ONNX export.
"""
from typing import Optional

from mmengine.logging import print_log

from zeromamba_mm.structures.class_semantics import (CHECKPOINT_META_KEY,
                                                     ClassSemantics)
from .class_semantics import ArrayLike, Names, as_names, load_class_semantics

__all__ = ['checkpoint_semantics', 'semantics_for_inference']


def checkpoint_semantics(
        meta: dict,
        source: str,
        class_names: Names = None,
        seen_classes: Optional[ArrayLike] = None,
        attribute_names: Names = None) -> Optional[ClassSemantics]:
    """The classes a checkpoint was tested on, as training recorded them
    (``meta['zsl_class_semantics']``), with the given overrides.

    The matrix is taken as stored: the rows the model was trained with,
    in their recorded normalisation (nothing is normalised again).

    Args:
        meta (dict): The checkpoint's ``meta``.
        source (str): The checkpoint, for messages.
        class_names (str | Path | Sequence[str], optional): Names that
            replace the stored ones (a list or a text file).
        seen_classes (Sequence[int], optional): Seen class ids that replace
            the stored ones (the others become unseen).
        attribute_names (str | Path | Sequence[str], optional): Attribute
            names that replace the stored ones.

    Returns:
        ClassSemantics | None: None for a checkpoint without the key (of an
        older version).
    """
    stored = (meta or {}).get(CHECKPOINT_META_KEY)
    if stored is None:
        return None
    changes = {}
    if class_names is not None:
        changes['class_names'] = as_names(class_names, 'class')
    if attribute_names is not None:
        changes['attribute_names'] = as_names(attribute_names, 'attribute')
    if seen_classes is not None:
        changes.update(seen_classes=seen_classes, unseen_classes=None)
    return ClassSemantics.from_meta(stored, source=source).replace(**changes)


def semantics_for_inference(meta: dict,
                            source: str,
                            class_attributes=None,
                            class_names: Names = None,
                            seen_classes: Optional[ArrayLike] = None,
                            attribute_names: Names = None,
                            normalize: bool = True) -> ClassSemantics:
    """The classes a trained model scores at inference (one rule for the
    inferencer and the ONNX export).

    In order: the ``class_attributes`` given (read by
    :func:`load_class_semantics` with ``normalize``); else the classes the
    checkpoint recorded (:func:`checkpoint_semantics`, as stored); else, for
    checkpoints of older versions, the training classes of
    ``meta['dataset_meta']`` normalised as ``normalize`` says.

    Args:
        meta (dict): The checkpoint's ``meta`` (or ``{}``).
        source (str): The checkpoint, for messages.
        class_attributes (str | Path | array | ClassSemantics, optional):
            Classes to score instead of the checkpoint's (a ClassSemantics
            is taken as it is).
        class_names, seen_classes, attribute_names: Overrides, as in
            :func:`load_class_semantics`.
        normalize (bool): L2-normalise rows that are read (not the
            recorded ones). Defaults to True.

    Raises:
        ValueError: If nothing says which classes to score.
    """
    if isinstance(class_attributes, ClassSemantics):
        return class_attributes
    if class_attributes is None:
        stored = checkpoint_semantics(meta, source, class_names, seen_classes,
                                      attribute_names)
        if stored is not None:
            return stored  # as recorded: no re-normalisation
        dataset_meta = (meta or {}).get('dataset_meta') or {}
        if dataset_meta.get('class_attributes') is None:
            raise ValueError(
                f'No classes to score: {source} has neither '
                f'meta.{CHECKPOINT_META_KEY} nor '
                'meta.dataset_meta.class_attributes; give the classes (a '
                '.npy, .csv or att_splits.mat file, or a (C, A) array).')
        print_log(
            f'{source} has no meta.{CHECKPOINT_META_KEY} (a checkpoint of an '
            "older version): scoring the training classes of meta['dataset_"
            f"meta'], normalised as normalize={normalize} says.",
            logger='current')
        class_attributes = dataset_meta['class_attributes']
        class_names = class_names or dataset_meta.get('classes')
        if seen_classes is None:
            seen_classes = dataset_meta.get('seen_classes')
        attribute_names = attribute_names or dataset_meta.get(
            'attribute_names')
    return load_class_semantics(
        class_attributes,
        class_names=class_names,
        seen_classes=seen_classes,
        attribute_names=attribute_names,
        normalize=normalize)
