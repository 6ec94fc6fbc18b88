"""ZeroShotClassifier, AttributeHead and LinearAttributeHead."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.heads import AttributeHead
from zeromamba_mm.registry import MODELS

NUM_CLASSES, NUM_ATTRIBUTES = 6, 5


def build_model(**head_kwargs):
    head = dict(
        type='zeromamba_mm.LinearAttributeHead',
        in_channels=8,
        num_attributes=NUM_ATTRIBUTES)
    head.update(head_kwargs)
    return MODELS.build(
        dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=18,
                base_channels=8,
                stem_channels=8,
                out_indices=(3, )),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=dict(head, in_channels=64)))


def class_semantics():
    generator = torch.Generator().manual_seed(0)
    attributes = F.normalize(
        torch.rand(NUM_CLASSES, NUM_ATTRIBUTES, generator=generator), dim=1)
    return attributes, [0, 2, 3, 5], [1, 4]


def samples(labels):
    return [DataSample().set_gt_label(label) for label in labels]


def test_predict_scores_all_classes_with_raw_compatibility():
    model = build_model().eval()
    attributes, seen, unseen = class_semantics()
    model.set_class_semantics(attributes, seen, unseen)
    inputs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        results = model(inputs, samples([0, 1, 2]), mode='predict')
        pred_attributes = model.head(model.extract_feat(inputs))
    expected = pred_attributes @ attributes.t()
    assert len(results) == 3
    for i, result in enumerate(results):
        assert result.pred_score.shape == (NUM_CLASSES, )
        torch.testing.assert_close(result.pred_score, expected[i])
        assert int(result.pred_label) == int(expected[i].argmax())


def test_loss_is_ce_over_seen_classes_plus_weighted_l1():
    model = build_model(attr_loss_weight=0.5)
    attributes, seen, unseen = class_semantics()
    model.set_class_semantics(attributes, seen, unseen)
    inputs = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([0, 3, 5, 2])
    model.eval()  # freeze BN statistics so both passes see the same features
    losses = model(inputs, samples(labels.tolist()), mode='loss')
    pred_attributes = model.head(model.extract_feat(inputs))
    seen_scores = pred_attributes @ attributes[seen].t()
    local = torch.tensor([0, 2, 3, 1])  # positions of the labels in `seen`
    torch.testing.assert_close(losses['loss_ce'],
                               F.cross_entropy(seen_scores, local))
    torch.testing.assert_close(
        losses['loss_attr'],
        0.5 * F.l1_loss(pred_attributes, attributes[labels]))
    sum(losses.values()).backward()
    assert model.head.fc.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_no_attribute_loss_when_weight_is_zero():
    model = build_model(attr_loss_weight=0.0)
    model.set_class_semantics(*class_semantics())
    losses = model(torch.randn(2, 3, 32, 32), samples([0, 2]), mode='loss')
    assert set(losses) == {'loss_ce'}


def test_training_on_an_unseen_class_is_refused():
    model = build_model()
    model.set_class_semantics(*class_semantics())
    with pytest.raises(ValueError, match=r'\[4\].*not among the 4 seen'):
        model(torch.randn(2, 3, 32, 32), samples([0, 4]), mode='loss')


def test_semantics_must_be_set_and_match_the_head():
    model = build_model()
    with pytest.raises(RuntimeError, match='ZSLSemanticsHook'):
        model(torch.randn(1, 3, 32, 32), samples([0]), mode='predict')
    with pytest.raises(ValueError, match='num_attributes=5.*7 attributes'):
        model.set_class_semantics(torch.rand(NUM_CLASSES, 7), [0], [1])
    with pytest.raises(ValueError, match=r'ids in \[0, 6\)'):
        model.set_class_semantics(torch.rand(NUM_CLASSES, 5), [0, 6], [1])
    with pytest.raises(ValueError, match='2 class names for 6'):
        model.set_class_semantics(
            torch.rand(NUM_CLASSES, 5), [0], [1], class_names=['a', 'b'])


def test_class_semantics_are_not_saved_in_the_state_dict():
    model = build_model()
    model.set_class_semantics(*class_semantics())
    keys = model.state_dict().keys()
    assert not any('class_attributes' in k or 'seen_classes' in k
                   for k in keys)


def test_new_classes_can_be_added_at_inference_time():
    model = build_model().eval()
    attributes, seen, unseen = class_semantics()
    model.set_class_semantics(attributes, seen, unseen)
    # Describe one more class by its attributes only: the model scores it.
    extended = torch.cat([attributes, F.normalize(torch.rand(1, 5), dim=1)])
    model.set_class_semantics(extended)
    with torch.no_grad():
        result = model(torch.randn(1, 3, 32, 32), mode='predict')[0]
    assert result.pred_score.shape == (NUM_CLASSES + 1, )


def test_linear_head_needs_pooled_features():
    model = build_model()
    with pytest.raises(ValueError, match='GlobalAveragePooling'):
        model.head((torch.randn(2, 64, 2, 2), ))


def test_attribute_head_rejects_unknown_loss():
    with pytest.raises(ValueError, match="'l1' or 'mse'"):
        AttributeHead(4, attr_loss='huber')
