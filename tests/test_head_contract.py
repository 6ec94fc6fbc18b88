"""The head contract, checked for every registered attribute head.

Every class registered in ``zeromamba_mm.registry.MODELS`` that subclasses
:class:`~zeromamba_mm.models.heads.AttributeHead` is collected from the
registry, so a new head is covered without editing this file. A head is built
from ``dict(type=..., num_attributes=A, in_channels=C)`` and fed one
(B, C, H, W) map unless it is listed in ``HEAD_CASES`` with its own config,
input features and documented scoring (re-derived here by einsum).

Checks: ``loss`` (finite, gradients reach every head parameter and the
features), ``predict`` (one pass of the head; ``pred_score``, ``pred_label``,
``pred_attributes``, ``attention_maps`` with values), ``pre_logits``, the head
inside a plain mmpretrain ``ImageClassifier`` (``extract_feat(...,
stage='pre_logits')``, loss, predict, ``mode='tensor'``) and inference on a
class added by its attribute vector only.
"""
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models import ImageClassifier
from mmpretrain.structures import DataSample
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import zeromamba_mm.models  # noqa: F401  (registers the heads)
from zeromamba_mm.apis import ZSLInferencer
from zeromamba_mm.models.heads import AttributeHead, HeadWrapper
from zeromamba_mm.registry import MODELS

A, C_IN, K, B, H, W = 5, 8, 10, 4, 3, 3
NUM_CLASSES, SEEN = 6, [0, 1, 2, 3]
#: A feature spec: ('map', C) is a (B, C, H, W) map, ('vec', C) a (B, C) one.
FeatSpec = Tuple[Tuple[str, int], ...]
MAP: FeatSpec = (('map', C_IN), )


def dot_scores(head, feats, pred_attributes, class_attributes):
    """``Â · aᵀ`` (the default scoring of AttributeHead)."""
    return torch.einsum('ba,ca->bc', pred_attributes, class_attributes)


def introspective_scores(head, feats, pred_attributes, class_attributes):
    """IDML's classification form ``z + (1 − z)(1 − exp(−β / (γ d)))``."""
    pooled = feats[-1]
    u = F.relu(
        torch.einsum('bc,kc->bk', pooled, head.uncertainty.weight) +
        head.uncertainty.bias)
    beta = torch.einsum('bk,bk->b', u, u)[:, None]
    diff = pred_attributes[:, None, :] - class_attributes[None]
    dist_sq = torch.einsum('bca,bca->bc', diff, diff)
    z = torch.einsum('ba,ca->bc', pred_attributes, class_attributes)
    gamma, eps = head.similarity.gamma, head.similarity.eps
    return z + (1 - z) * (1 - torch.exp(-beta /
                                        (gamma * dist_sq.clamp(min=eps))))


def drmn_scores(head, feats, pred_attributes, class_attributes):
    """``o = s·cos(e, a)``; prob fusion ``log(softmax(o) + β·softmax(g))``
    on the seen classes, logit fusion ``o + β·g`` (see DRMNHead)."""
    e = pred_attributes / pred_attributes.norm(dim=1, keepdim=True)
    a = class_attributes / class_attributes.norm(dim=1, keepdim=True)
    o = head.classifier.scale * torch.einsum('ba,ca->bc', e, a)
    g = torch.einsum('bc,kc->bk', feats[-1].mean(dim=(2, 3)),
                     head.global_fc.weight) + head.global_fc.bias
    seen = head.seen_classes
    if head.fusion_space == 'logit':
        fused = o.clone()
        fused[:, seen] = o[:, seen] + head.beta * g
        return fused
    p_o = torch.exp(o) / torch.exp(o).sum(dim=1, keepdim=True)
    p_g = torch.exp(g) / torch.exp(g).sum(dim=1, keepdim=True)
    fused = p_o.clone()
    fused[:, seen] = p_o[:, seen] + head.beta * p_g
    return torch.log(fused)


@dataclass
class HeadCase:
    """How to build, feed and score one head in the contract tests.

    Attributes:
        cfg (dict): Config of the head.
        spec (FeatSpec): The features the head reads.
        scores (callable): Re-derivation of ``pred_score`` from
            ``(head, feats, Â, class_attributes)``.
        old_scores_on_new_class (str): What adding a class does to the
            scores of the others: ``'same'``, or ``'rederived'`` where the
            documented scoring normalises over all classes (then only the
            re-derivation is checked).
    """
    cfg: dict
    spec: FeatSpec = MAP
    scores: Callable = dot_scores
    old_scores_on_new_class: str = 'same'
    name: str = field(default='')


def _linear(in_channels=C_IN):
    return dict(
        type='zeromamba_mm.LinearAttributeHead',
        in_channels=in_channels,
        num_attributes=A)


_ZEROMAMBA = dict(
    type='zeromamba_mm.ZeroMambaHead',
    num_attributes=A,
    in_channels=C_IN,
    imagenet_classes=K,
    w2v_dim=6,
    mlp_hidden=8)
_DRMN = dict(
    type='zeromamba_mm.DRMNHead',
    num_attributes=A,
    in_channels=C_IN,
    num_seen_classes=len(SEEN),
    proto_init='random',
    w2v_dim=6,
    aca_reduction=2,
    sit_heads=2)

#: Heads that need more than the default config / a single map, or score
#: otherwise than ``Â · aᵀ`` (one entry per variant to check).
HEAD_CASES: Dict[str, List[HeadCase]] = {
    'LinearAttributeHead': [HeadCase(_linear(), spec=(('vec', C_IN), ))],
    'ZeroMambaHead': [HeadCase(_ZEROMAMBA, spec=(('map', C_IN), ('vec', K)))],
    'DRMNHead': [
        HeadCase(
            _DRMN, scores=drmn_scores, old_scores_on_new_class='rederived'),
        HeadCase(
            dict(_DRMN, fusion_space='logit'),
            scores=drmn_scores,
            name='logit'),
    ],
    'IntrospectiveHead': [
        HeadCase(
            dict(
                type='zeromamba_mm.IntrospectiveHead',
                head=_linear(),
                in_channels=C_IN,
                uncertainty_dim=4),
            spec=(('vec', C_IN), )),
        HeadCase(
            dict(
                type='zeromamba_mm.IntrospectiveHead',
                head=_linear(),
                in_channels=C_IN,
                uncertainty_dim=4,
                test_introspective=True),
            spec=(('vec', C_IN), ),
            scores=introspective_scores,
            name='test_introspective'),
    ],
    'ProbabilisticRegionHead': [
        HeadCase(
            dict(
                type='zeromamba_mm.ProbabilisticRegionHead',
                head=_ZEROMAMBA,
                in_channels=C_IN,
                num_samples=2),
            spec=(('map', C_IN), ('vec', K)))
    ],
}


def registered_attribute_heads() -> List[str]:
    """Names of the registered AttributeHead sub-classes."""
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, AttributeHead))


def default_case(name: str) -> HeadCase:
    """The case of a head built from its name and the small defaults."""
    return HeadCase(
        dict(type=f'zeromamba_mm.{name}', num_attributes=A, in_channels=C_IN))


def contract_cases(names: Sequence[str]) -> List[HeadCase]:
    cases = []
    for name in names:
        for case in HEAD_CASES.get(name) or [default_case(name)]:
            case.name = name + (f'[{case.name}]' if case.name else '')
            cases.append(case)
    return cases


CASES = contract_cases(registered_attribute_heads())


def make_feats(spec: FeatSpec, batch: int = B) -> Tuple[Tensor, ...]:
    spatial = {'map': (H, W), 'vec': ()}
    return tuple(torch.randn(batch, c, *spatial[kind]) for kind, c in spec)


def class_attributes(num_classes: int = NUM_CLASSES) -> Tensor:
    return torch.randn(num_classes, A)


def samples(labels: Sequence[int]) -> List[DataSample]:
    return [DataSample().set_gt_label(label) for label in labels]


def build(case: HeadCase,
          attributes: Optional[Tensor] = None) -> AttributeHead:
    torch.manual_seed(0)
    head = MODELS.build(case.cfg)
    head.set_class_semantics(
        class_attributes() if attributes is None else attributes, SEEN)
    return head


def attention_source(head: AttributeHead):
    """The head whose ``attention_maps`` ``predict`` must report, or None."""
    owner = head.base if isinstance(head, HeadWrapper) else head
    return owner if callable(getattr(owner, 'attention_maps', None)) else None


def total_loss(losses: Dict[str, Tensor]) -> Tensor:
    # mmengine's parse_losses sums the entries whose key contains 'loss'.
    return sum(value for key, value in losses.items() if 'loss' in key)


def test_every_listed_head_is_registered():
    names = registered_attribute_heads()
    for expected in ('ZeroMambaHead', 'LinearAttributeHead', 'DRMNHead',
                     'IntrospectiveHead', 'ProbabilisticRegionHead'):
        assert expected in names
    assert set(HEAD_CASES) <= set(names), 'stale entries in HEAD_CASES'


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.name)
def test_loss_is_finite_and_trains_the_head(case):
    head = build(case).train()
    feats = tuple(f.requires_grad_() for f in make_feats(case.spec))
    losses = head.loss(feats, samples([0, 3, 1, 2]))
    assert losses and all(torch.isfinite(v).all() for v in losses.values())
    total_loss(losses).backward()
    named = [(n, p) for n, p in head.named_parameters() if p.requires_grad]
    assert named
    assert [n for n, p in named if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for _, p in named)
    assert any(p.grad.abs().sum() > 0 for _, p in named)
    assert any(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


class _ParameterUses(TorchFunctionMode):
    """Counts the torch calls that read each parameter of a head."""

    def __init__(self, head: nn.Module, counts: Counter):
        super().__init__()
        self.names = {id(p): name for name, p in head.named_parameters()}
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in _leaves((args, kwargs)):
            name = self.names.get(id(value))
            if name is not None:
                self.counts.update([f'parameter {name}'])
        return func(*args, **kwargs)


def _count_calls(head: nn.Module, run: Callable) -> Counter:
    """Calls of each sub-module and uses of each parameter during run()."""
    counts = Counter()
    handles = [
        module.register_forward_hook(
            lambda *_, name=name: counts.update([f'module {name}']))
        for name, module in head.named_modules()
    ]
    try:
        with torch.no_grad(), _ParameterUses(head, counts):
            run()
    finally:
        for handle in handles:
            handle.remove()
    return counts


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.name)
def test_predict_runs_the_head_once_and_fills_the_fields(case):
    attributes = class_attributes()
    head = build(case, attributes).eval()
    feats = make_feats(case.spec)
    one_pass = _count_calls(head, lambda: head.pre_logits(feats))
    in_predict = _count_calls(head, lambda: head.predict(feats))
    assert any(key.startswith('parameter') for key in in_predict)
    # No module or parameter of the head is used more often than in one
    # pass (one that only scoring uses, e.g. DRMN's global branch: once).
    assert {
        name: count
        for name, count in in_predict.items()
        if count > max(1, one_pass[name])
    } == {}

    with torch.no_grad():
        pred_attributes = head.pre_logits(feats)
        expected = case.scores(head, feats, pred_attributes, attributes)
        owner = attention_source(head)
        maps = owner.attention_maps(feats) if owner is not None else None
        results = head.predict(feats, samples([0, 1, 4, 5]))
    assert len(results) == B
    for i, sample in enumerate(results):
        assert sample.gt_label.item() == [0, 1, 4, 5][i]
        assert sample.pred_score.shape == (NUM_CLASSES, )
        torch.testing.assert_close(sample.pred_score, expected[i])
        assert sample.pred_label.item() == int(expected[i].argmax())
        torch.testing.assert_close(sample.pred_attributes, pred_attributes[i])
        if maps is None:
            assert 'attention_maps' not in sample
            continue
        assert sample.attention_maps.shape == (A, H, W)
        torch.testing.assert_close(sample.attention_maps, maps[i])
        # Each attribute's map is a softmax over the H×W regions.
        torch.testing.assert_close(
            sample.attention_maps.sum(dim=(1, 2)), torch.ones(A))


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.name)
def test_pre_logits_is_the_class_independent_attribute_vector(case):
    head = build(case).eval()
    feats = make_feats(case.spec)
    with torch.no_grad():
        pred_attributes = head.pre_logits(feats)
        assert pred_attributes.shape == (B, A)
        torch.testing.assert_close(head(feats), pred_attributes)
        head.set_class_semantics(class_attributes(NUM_CLASSES + 3), SEEN)
        torch.testing.assert_close(head.pre_logits(feats), pred_attributes)


class SpecBackbone(nn.Module):
    """A tiny backbone that outputs features of a spec from an image."""

    def __init__(self, spec: FeatSpec):
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleList(
            nn.Conv2d(3, c, 3, padding=1) for _, c in spec)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for (kind, _), conv in zip(self.spec, self.convs):
            out = F.adaptive_avg_pool2d(conv(x), (H, W))
            outs.append(out if kind == 'map' else out.mean(dim=(2, 3)))
        return tuple(outs)


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.name)
def test_head_inside_a_plain_image_classifier(case):
    torch.manual_seed(0)
    model = ImageClassifier(backbone=SpecBackbone(case.spec), head=case.cfg)
    attributes = class_attributes()
    model.head.set_class_semantics(attributes, SEEN)
    inputs = torch.randn(B, 3, 8, 8)

    model.train()
    losses = model(inputs, samples([2, 0, 1, 3]), mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.backbone.convs[0].weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        pre_logits = model.extract_feat(inputs, stage='pre_logits')
        torch.testing.assert_close(pre_logits, model.head.pre_logits(feats))
        torch.testing.assert_close(model(inputs, mode='tensor'), pre_logits)
        expected = case.scores(model.head, feats, pre_logits, attributes)
        results = model(inputs, samples([0, 1, 4, 5]), mode='predict')
    for i, sample in enumerate(results):
        torch.testing.assert_close(sample.pred_score, expected[i])
        torch.testing.assert_close(sample.pred_attributes, pre_logits[i])


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.name)
def test_a_class_added_by_its_attributes(case):
    attributes = class_attributes()
    head = build(case, attributes).eval()
    feats = make_feats(case.spec)
    with torch.no_grad():
        before = torch.stack([s.pred_score for s in head.predict(feats)])
        new_class = torch.randn(1, A)
        grown = torch.cat([attributes, new_class])
        head.set_class_semantics(grown, SEEN)
        results = head.predict(feats)
        after = torch.stack([s.pred_score for s in results])
        pred_attributes = head.pre_logits(feats)
        expected = case.scores(head, feats, pred_attributes, grown)
    assert after.shape == (B, NUM_CLASSES + 1)
    torch.testing.assert_close(after, expected)
    if case.old_scores_on_new_class == 'same':
        torch.testing.assert_close(after[:, :NUM_CLASSES], before)
    # The new class is scored by its attributes: another vector, another
    # score (and the vector of an unseen class, that class's score).
    with torch.no_grad():
        head.set_class_semantics(
            torch.cat([attributes, attributes[4:5]]), SEEN)
        twin = torch.stack([s.pred_score for s in head.predict(feats)])
    assert not torch.allclose(twin[:, -1], after[:, -1])
    if case.old_scores_on_new_class == 'same':
        torch.testing.assert_close(twin[:, -1], twin[:, 4])


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.name)
def test_inferencer_forward_runs_the_head_once(case):
    torch.manual_seed(0)
    model = ImageClassifier(backbone=SpecBackbone(case.spec), head=case.cfg)
    model.head.set_class_semantics(class_attributes(), SEEN)
    model.eval()
    data = dict(inputs=[
        torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8) for _ in range(2)
    ])
    # ZSLInferencer.forward reads nothing of the inferencer but its model.
    forward = partial(ZSLInferencer.forward, SimpleNamespace(model=model))
    one_pass = _count_calls(
        model.head, lambda: model.head.predict(
            model.extract_feat(model.data_preprocessor(data)['inputs'])))
    assert _count_calls(model.head, lambda: forward(data)) == one_pass
    with torch.no_grad():
        preds = forward(data)
        feats = model.extract_feat(model.data_preprocessor(data)['inputs'])
        expected = model.head.predict(feats)
    for pred, reference in zip(preds, expected):
        torch.testing.assert_close(pred.pred_score, reference.pred_score)
        for name in ('pred_attributes', 'attention_maps'):
            assert (name in pred) == (name in reference)
            if name in pred:
                assert pred.get(name).device.type == 'cpu'
                torch.testing.assert_close(pred.get(name), reference.get(name))


DOC = Path(__file__).resolve().parents[1] / 'docs' / 'add_a_head.md'


def test_add_a_head_doc():
    """docs/add_a_head.md: its code runs and its head meets the contract
    (built from the default case, as a new head of the package would be)."""
    blocks = re.findall(r'```python\n(.*?)```', DOC.read_text(), re.S)
    assert len(blocks) == 2
    name = 'AttentionPoolHead'
    assert name not in MODELS.module_dict
    try:
        namespace = {}
        for block in blocks:
            exec(compile(block, str(DOC), 'exec'), namespace)
        assert name in registered_attribute_heads()
        case = contract_cases([name])[0]
        test_loss_is_finite_and_trains_the_head(case)
        test_predict_runs_the_head_once_and_fills_the_fields(case)
        test_pre_logits_is_the_class_independent_attribute_vector(case)
        test_head_inside_a_plain_image_classifier(case)
        test_a_class_added_by_its_attributes(case)
    finally:
        MODELS._module_dict.pop(name, None)
