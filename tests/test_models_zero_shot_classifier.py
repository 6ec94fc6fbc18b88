"""ZeroShotClassifier, AttributeHead and LinearAttributeHead."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample
from torch import nn

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.losses import AttributeRegressionLoss
from zeromamba_mm.registry import MODELS

NUM_CLASSES, NUM_ATTRIBUTES = 6, 5


def l1_loss(weight):
    return dict(
        type='zeromamba_mm.AttributeRegressionLoss', loss_weight=weight)


def build_model(train_signals=None, **head_kwargs):
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
            head=dict(head, in_channels=64),
            train_signals=train_signals))


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
    model = build_model(attr_loss=l1_loss(0.5))
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


def test_no_attribute_loss_without_attr_loss():
    model = build_model(attr_loss=None)
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
    with pytest.raises(ValueError, match=r'\[1\] are both seen and unseen'):
        model.set_class_semantics(torch.rand(NUM_CLASSES, 5), [0, 1], [1])
    nan = torch.rand(NUM_CLASSES, 5)
    nan[2, 3] = float('nan')
    with pytest.raises(ValueError, match=r"1 NaN/inf value.*class 'class_2'"):
        model.set_class_semantics(nan, [0], [1])


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
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        results = model(inputs, mode='predict')
        pred_attributes = model.head(model.extract_feat(inputs))
    for result, pred in zip(results, pred_attributes):
        assert result.pred_score.shape == (NUM_CLASSES + 1, )
        # The new class is scored like any other: Â · a_new.
        torch.testing.assert_close(result.pred_score[-1],
                                   pred @ extended[-1])
        torch.testing.assert_close(result.pred_score[:-1],
                                   pred @ attributes.t())


def test_linear_head_needs_pooled_features():
    model = build_model()
    with pytest.raises(ValueError, match='GlobalAveragePooling'):
        model.head((torch.randn(2, 64, 2, 2), ))


def test_losses_come_from_the_registry():
    model = build_model(
        loss=dict(type='mmpretrain.LabelSmoothLoss', label_smooth_val=0.1),
        attr_loss=dict(
            type='zeromamba_mm.AttributeRegressionLoss',
            criterion='mse',
            loss_weight=2.0))
    assert type(model.head.loss_module).__name__ == 'LabelSmoothLoss'
    attributes, seen, unseen = class_semantics()
    model.set_class_semantics(attributes, seen, unseen)
    model.eval()
    inputs = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 3, 5])
    losses = model(inputs, samples(labels.tolist()), mode='loss')
    pred_attributes = model.head(model.extract_feat(inputs))
    torch.testing.assert_close(
        losses['loss_attr'],
        2.0 * ((pred_attributes - attributes[labels])**2).mean())
    # Label smoothing over the 4 seen classes, written out.
    log_p = F.log_softmax(pred_attributes @ attributes[seen].t(), dim=1)
    target = torch.full((3, 4), 0.1 / 4)
    target[torch.arange(3), torch.tensor([0, 2, 3])] += 0.9
    torch.testing.assert_close(losses['loss_ce'],
                               -(target * log_p).sum(1).mean())


def test_bad_loss_configs_are_refused():
    with pytest.raises(ValueError, match=r"\['l1', 'mse'\].*'huber'"):
        AttributeRegressionLoss(criterion='huber')
    with pytest.raises(ValueError, match='loss_weight must be >= 0'):
        AttributeRegressionLoss(loss_weight=-1)
    with pytest.raises(TypeError, match='loss config dict'):
        build_model(loss='ce')


def test_soft_labels_from_batch_augments():
    model = build_model(attr_loss=l1_loss(1.0)).eval()
    attributes, seen, unseen = class_semantics()
    model.set_class_semantics(attributes, seen, unseen)
    inputs = torch.randn(2, 3, 32, 32)
    soft = torch.zeros(2, NUM_CLASSES)
    soft[0, 0], soft[0, 3] = 0.7, 0.3
    soft[1, 5] = 1.0
    data = [DataSample().set_gt_score(score) for score in soft]
    losses = model(inputs, data, mode='loss')
    pred_attributes = model.head(model.extract_feat(inputs))
    log_p = F.log_softmax(pred_attributes @ attributes[seen].t(), dim=1)
    torch.testing.assert_close(losses['loss_ce'],
                               -(soft[:, seen] * log_p).sum(1).mean())
    torch.testing.assert_close(
        losses['loss_attr'],
        F.l1_loss(pred_attributes, soft @ attributes))
    # Mass on an unseen class, or scores over the wrong class count.
    soft[1, 1] = 0.5
    with pytest.raises(ValueError, match='mass on unseen classes'):
        model(inputs, [DataSample().set_gt_score(x) for x in soft],
              mode='loss')
    with pytest.raises(ValueError, match='num_classes=6'):
        model(inputs, [DataSample().set_gt_score(torch.ones(4) / 4)] * 2,
              mode='loss')


class _ScaledL2Signal(nn.Module):
    """A training signal for the test: 0.5·mean(feats²) under its own key."""

    def __init__(self, key='loss_l2'):
        super().__init__()
        self.key = key
        self.calls = 0

    def loss(self, model, inputs, feats, data_samples):
        self.calls += 1
        return {self.key: 0.5 * feats[-1].pow(2).mean()}


def test_train_signals_add_losses_in_training_only():
    signal = _ScaledL2Signal()
    model = build_model(train_signals=[signal]).eval()
    model.set_class_semantics(*class_semantics())
    inputs = torch.randn(2, 3, 32, 32)
    losses = model(inputs, samples([0, 2]), mode='loss')
    feats = model.extract_feat(inputs)
    assert set(losses) == {'loss_ce', 'loss_l2'}
    torch.testing.assert_close(losses['loss_l2'],
                               0.5 * feats[-1].pow(2).mean())
    with torch.no_grad():
        model(inputs, mode='predict')
    assert signal.calls == 1  # never called by predict
    clash = build_model(train_signals=[_ScaledL2Signal('loss_ce')])
    clash.set_class_semantics(*class_semantics())
    with pytest.raises(KeyError, match=r"\['loss_ce'\] that are already"):
        clash(inputs, samples([0, 2]), mode='loss')
    with pytest.raises(TypeError, match='has no loss'):
        build_model(train_signals=[nn.Identity()])


def test_attribute_head_works_in_a_plain_mmpretrain_image_classifier():
    # mmpretrain's own classifier, our head: loss and predict of all classes.
    model = MODELS.build(
        dict(
            type='mmpretrain.ImageClassifier',
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=18,
                base_channels=8,
                stem_channels=8,
                out_indices=(3, )),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=dict(
                type='zeromamba_mm.LinearAttributeHead',
                in_channels=64,
                num_attributes=NUM_ATTRIBUTES)))
    attributes, seen, _ = class_semantics()
    model.head.set_class_semantics(attributes, seen)
    inputs = torch.randn(3, 3, 32, 32)
    losses = model(inputs, samples([0, 2, 5]), mode='loss')
    sum(losses.values()).backward()
    assert model.head.fc.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        results = model(inputs, mode='predict')
        expected = model.head(model.extract_feat(inputs)) @ attributes.t()
    for result, score in zip(results, expected):
        torch.testing.assert_close(result.pred_score, score)


def test_mixup_from_train_cfg_trains_through_soft_labels():
    model = MODELS.build(
        dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=18,
                base_channels=8,
                stem_channels=8,
                out_indices=(3, )),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=dict(
                type='zeromamba_mm.LinearAttributeHead',
                in_channels=64,
                num_attributes=NUM_ATTRIBUTES),
            data_preprocessor=dict(num_classes=NUM_CLASSES),
            train_cfg=dict(augments=dict(type='Mixup', alpha=0.8))))
    model.set_class_semantics(*class_semantics())
    batch = dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)] * 4,
        data_samples=samples([0, 2, 3, 5]))
    data = model.data_preprocessor(batch, training=True)
    scores = torch.stack([s.gt_score for s in data['data_samples']])
    assert scores.shape == (4, NUM_CLASSES)
    # Mixup mixes seen classes only, so no mass on the unseen ids 1 and 4.
    assert scores[:, [1, 4]].abs().sum() == 0
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_ce'])
