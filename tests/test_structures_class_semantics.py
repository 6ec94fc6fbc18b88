"""ClassSemantics: one validated value for the classes a zero-shot model
scores; its plain meta form; the adapter that hands it to a model."""
import numpy as np
import pytest
import torch
from torch import nn

import zeromamba_mm  # noqa: F401
from zeromamba_mm.datasets import semantics_for_inference
from zeromamba_mm.models.utils.semantics_adapter import (
    semantics_target, set_model_class_semantics)
from zeromamba_mm.registry import MODELS
from zeromamba_mm.structures import ClassSemantics
from zeromamba_mm.structures.class_semantics import (ZSLDataError,
                                                     apply_normalization,
                                                     as_class_semantics)

ATT = np.array([[3., 4., 0.], [0., 1., 0.], [1., 1., 1.], [0., 0., 2.]])


def make(**changes):
    fields = dict(
        attributes=ATT,
        class_names=['ant', 'bee', 'cat', 'dog'],
        seen_classes=[2, 0],
        unseen_classes=[3],
        attribute_names=['a', 'b', 'c'],
        normalization='none',
        source='toy.csv')
    fields.update(changes)
    return ClassSemantics(**fields)


def test_fields_are_normalised_and_sorted():
    semantics = make(unseen_classes=None)
    assert semantics.attributes.dtype == np.float32
    assert semantics.class_names == ('ant', 'bee', 'cat', 'dog')
    assert semantics.seen_classes.tolist() == [0, 2]
    # Unseen defaults to every class that is not seen.
    assert semantics.unseen_classes.tolist() == [1, 3]
    assert (semantics.num_classes, semantics.num_attributes) == (4, 3)
    assert make(class_names=None).class_names[3] == 'class_3'
    assert make(seen_classes=None, unseen_classes=None).unseen_classes is None


@pytest.mark.parametrize(
    'changes, message',
    [(dict(attributes=np.ones(4)), r'toy.csv: attributes must be a 2-D'),
     (dict(attributes=np.zeros((0, 3))), r'got shape \(0, 3\)'),
     (dict(class_names=['a', 'b', 'c']), r'3 class names for 4 classes'),
     (dict(class_names=['a', 'b', 'a', 'c']),
      r"duplicate class names: 'a' \(entry 0, entry 2\)"),
     (dict(attribute_names=['x', 'y']), r'2 attribute names for 3'),
     (dict(seen_classes=[0, 4]), r'seen_classes must be ids in \[0, 4\).*'
      r'max 4'),
     (dict(unseen_classes=[-1]), r'unseen_classes must be ids.*min -1'),
     (dict(seen_classes=[0.5]), r'must be integer class ids'),
     (dict(unseen_classes=[2, 3]),
      r"classes \[2\] are both seen and unseen \(\['cat'\]\)"),
     (dict(normalization='l1'), r"normalization must be one of"),
     (dict(attributes=np.where(np.eye(4, 3) > 0, np.nan, ATT)),
      r"toy.csv: 'attributes' holds 3 NaN/inf.*class 'ant' \(row 0\), "
      r"attribute 'a' \(column 0\)")])
def test_bad_values_are_refused_naming_the_source(changes, message):
    with pytest.raises(ZSLDataError, match=message):
        make(**changes)


def test_replace_validates_again():
    semantics = make()
    renamed = semantics.replace(class_names=['w', 'x', 'y', 'z'])
    assert renamed.class_names[0] == 'w' and semantics.class_names[0] == 'ant'
    with pytest.raises(ZSLDataError, match='both seen and unseen'):
        semantics.replace(unseen_classes=[0])


def test_meta_round_trip_through_a_weights_only_load(tmp_path):
    semantics = make(
        attributes=apply_normalization(ATT, 'l2'), normalization='l2')
    meta = semantics.to_meta()
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(meta=dict(zsl_class_semantics=meta)), path)
    loaded = torch.load(path, weights_only=True)['meta']['zsl_class_semantics']
    restored = ClassSemantics.from_meta(loaded, source=str(path))
    assert restored == semantics
    np.testing.assert_array_equal(restored.attributes, semantics.attributes)
    assert restored.normalization == 'l2'
    assert restored.source == f'{path} (from toy.csv)'
    assert ClassSemantics.from_meta(loaded).source == 'toy.csv'
    assert restored != semantics.replace(normalization='none')
    del loaded['normalization']
    with pytest.raises(ZSLDataError, match=r"lack \['normalization'\]"):
        ClassSemantics.from_meta(loaded, source='old.pth')


def test_recorded_normalisation_applies_to_new_rows():
    rows = np.array([[3., 4., 0.], [0., 0., 5.]])
    l2 = make(normalization='l2').normalize_new_rows(rows)
    np.testing.assert_allclose(l2, [[0.6, 0.8, 0.], [0., 0., 1.]])
    assert l2.dtype == np.float32
    np.testing.assert_array_equal(make().normalize_new_rows(rows), rows)
    with pytest.raises(ZSLDataError, match=r'rows \[0\] are all zero'):
        make(normalization='l2').normalize_new_rows(np.zeros((1, 3)))


def test_legacy_arguments_become_a_validated_value():
    semantics = as_class_semantics(torch.tensor(ATT), seen_classes=[1])
    assert semantics.seen_classes.tolist() == [1]
    assert semantics.unseen_classes.tolist() == [0, 2, 3]
    assert as_class_semantics(make()) is not None
    with pytest.raises(TypeError, match='carries them'):
        as_class_semantics(make(), seen_classes=[1])


def _head(num_attributes=3):
    return dict(
        type='zeromamba_mm.LinearAttributeHead',
        in_channels=16,
        num_attributes=num_attributes)


def _backbone():
    return dict(
        type='mmpretrain.ResNet',
        depth=18,
        base_channels=2,
        stem_channels=2,
        out_indices=(3, ))


class _Wrapper(nn.Module):
    """Stands for DDP: a wrapper with the model in ``module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_adapter_sets_model_or_head(monkeypatch):
    semantics = make()
    zsl = MODELS.build(
        dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=_backbone(),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=_head()))
    set_model_class_semantics(zsl, semantics)
    assert zsl.class_semantics is semantics
    assert zsl.head.seen_classes.tolist() == [0, 2]
    plain = MODELS.build(
        dict(
            type='mmpretrain.ImageClassifier',
            backbone=_backbone(),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=_head()))
    assert semantics_target(plain) is plain.head
    # A wrapped model is unwrapped (as is_model_wrapper says).
    monkeypatch.setattr(
        'zeromamba_mm.models.utils.semantics_adapter.is_model_wrapper',
        lambda model: isinstance(model, _Wrapper))
    set_model_class_semantics(_Wrapper(plain), semantics)
    np.testing.assert_array_equal(plain.head.class_attributes.numpy(), ATT)
    with pytest.raises(TypeError, match='takes no class semantics'):
        set_model_class_semantics(nn.Linear(2, 2), semantics)
    with pytest.raises(TypeError, match='needs a ClassSemantics'):
        set_model_class_semantics(zsl, ATT)


def test_inference_classes_follow_one_rule():
    """Recorded classes as stored; given classes read with the switch;
    older checkpoints: dataset_meta; nothing: a clear error."""
    recorded = make()  # raw rows, normalization 'none'
    meta = dict(zsl_class_semantics=recorded.to_meta())
    got = semantics_for_inference(meta, 'a.pth')
    np.testing.assert_array_equal(got.attributes, ATT)  # not re-normalised
    assert got.normalization == 'none' and got.seen_classes.tolist() == [0, 2]
    assert semantics_for_inference(meta, 'a.pth', seen_classes=[1]).\
        unseen_classes.tolist() == [0, 2, 3]
    assert semantics_for_inference(meta, 'a.pth', class_attributes=recorded) \
        is recorded
    given = semantics_for_inference(meta, 'a.pth', class_attributes=ATT)
    np.testing.assert_allclose(
        given.attributes, ATT / np.linalg.norm(ATT, axis=1, keepdims=True),
        rtol=1e-6)
    assert given.normalization == 'l2'
    old = dict(
        dataset_meta=dict(
            class_attributes=ATT,
            classes=['ant', 'bee', 'cat', 'dog'],
            seen_classes=[1]))
    legacy = semantics_for_inference(old, 'old.pth', normalize=False)
    np.testing.assert_array_equal(legacy.attributes, ATT)
    assert legacy.class_names == ('ant', 'bee', 'cat', 'dog')
    assert legacy.seen_classes.tolist() == [1]
    with pytest.raises(ValueError, match='old.pth has neither'):
        semantics_for_inference({}, 'old.pth')
