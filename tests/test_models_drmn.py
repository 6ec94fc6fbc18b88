"""DRMN's parts: every equation against a plain re-derivation, and the
invariants of the method (uniform attention at init, SIT train-only and
cross-image, ZSL/GZSL fusion, self-calibration)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from zeromamba_mm.evaluation.functional import (calibrated_predict,
                                                to_score_space, zsl_top1)
from zeromamba_mm.models.heads import (AttributeChannelAttention, DRMNHead,
                                       DualAttentionBlock,
                                       HypersphericalClassifier,
                                       SemanticInteractionTransformer)
from zeromamba_mm.models.losses import SelfCalibrationLoss

B, C, A, H, W = 3, 8, 5, 2, 3
NUM_CLASSES, SEEN = 6, [0, 2, 3, 5]
UNSEEN = [1, 4]


def _w2v(seed=0):
    return np.random.default_rng(seed).normal(size=(A, 12))


def _dab(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('word_vectors', _w2v())
    return DualAttentionBlock(A, C, w2v_dim=12, **kwargs)


def _randomise(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)


def _head(**kwargs):
    torch.manual_seed(0)
    defaults = dict(
        num_attributes=A,
        in_channels=C,
        num_seen_classes=len(SEEN),
        word_vectors=_w2v(),
        w2v_dim=12,
        aca_reduction=2,
        sit_heads=2,
        sit_dropout=0.0)
    defaults.update(kwargs)
    head = DRMNHead(**defaults)
    attrs = np.random.default_rng(3).random((NUM_CLASSES, A))
    head.set_class_semantics(attrs, seen_classes=SEEN)
    return head


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


# ------------------------------------------------------------------ DAB
def test_dab_equations_against_loops():
    dab = _dab()
    _randomise(dab)
    x = torch.randn(B, C, H, W)
    h, attention = dab(x)
    w2v = torch.tensor(_w2v(), dtype=torch.float32)
    w2v = w2v / w2v.norm(dim=1, keepdim=True)
    P = w2v @ dab.proto_proj  # (A, C)
    W1, W2 = dab.attn_weight, dab.score_weight
    aca = dab.aca
    R = H * W
    for b in range(B):
        v = [x[b, :, r // W, r % W] for r in range(R)]
        v_mean = sum(v) / R
        for a in range(A):
            logits = torch.stack([P[a] @ W1 @ v[r] for r in range(R)])
            omega = torch.exp(logits) / torch.exp(logits).sum()
            torch.testing.assert_close(
                attention[b, a].flatten(), omega, atol=1e-5, rtol=1e-4)
            k = sum(omega[r] * v[r] for r in range(R))
            q = P[a] / P[a].norm() + v_mean / v_mean.norm()
            hidden = torch.clamp(aca.fc1.weight @ q + aca.fc1.bias, min=0)
            eta = 1 / (1 +
                       torch.exp(-(aca.fc2.weight @ hidden + aca.fc2.bias)))
            torch.testing.assert_close(h[b, a], k * eta, atol=1e-5, rtol=1e-4)
    e = dab.score(h)
    expected = torch.einsum('ac,cd,bad->ba', P, W2, h)
    torch.testing.assert_close(e, expected, atol=1e-4, rtol=1e-4)


def test_dab_dot_score_free_prototypes_and_no_aca():
    dab = _dab(
        score='dot', proto_init='random', word_vectors=None, use_aca=False)
    _randomise(dab)
    assert dab.aca is None and not hasattr(dab, 'score_weight')
    x = torch.randn(B, C, H, W)
    h, attention = dab(x)
    P = dab.prototypes_free
    regions = x.flatten(2)  # (B, C, R)
    omega = torch.softmax(
        torch.einsum('ac,cd,bdr->bar', P, dab.attn_weight, regions), -1)
    k = torch.einsum('bar,bcr->bac', omega, regions)
    torch.testing.assert_close(h, k, atol=1e-5, rtol=1e-4)  # h = k
    torch.testing.assert_close(
        dab.score(h), torch.einsum('ac,bac->ba', P, h), atol=1e-5, rtol=1e-4)


def test_dab_attention_is_uniform_at_init():
    dab = _dab()
    _, attention = dab(torch.randn(B, C, H, W))
    torch.testing.assert_close(attention,
                               torch.full_like(attention, 1 / (H * W)))


def test_dab_errors():
    with pytest.raises(ValueError, match='word_vectors'):
        DualAttentionBlock(A, C, proto_init='w2v')
    with pytest.raises(ValueError, match="'w2v', 'random'"):
        DualAttentionBlock(A, C, proto_init='glove')
    with pytest.raises(ValueError, match="'bilinear', 'dot'"):
        _dab(score='cosine')
    with pytest.raises(ValueError, match='num_attributes'):
        DualAttentionBlock(A + 1, C, word_vectors=_w2v(), w2v_dim=12)
    with pytest.raises(ValueError, match=f'\\(B, {C}, H, W\\)'):
        _dab()(torch.randn(B, C + 1, H, W))


def test_aca_is_se_style_on_the_normalised_prototype_and_pooled_features():
    aca = AttributeChannelAttention(C, reduction=4)
    assert aca.fc1.out_features == 2
    P, V = torch.randn(A, C), torch.randn(B, 7, C)
    eta = aca.weights(P, V)
    q = F.normalize(P, dim=1)[None] + F.normalize(V.mean(1), dim=1)[:, None]
    expected = torch.sigmoid(
        torch.einsum(
            'oh,bah->bao', aca.fc2.weight,
            F.relu(
                torch.einsum('hc,bac->bah', aca.fc1.weight, q) +
                aca.fc1.bias)) + aca.fc2.bias)
    torch.testing.assert_close(eta, expected)
    assert ((eta > 0) & (eta < 1)).all()


# ----------------------------------------------------------- classifier
def test_hyperspherical_classifier_is_scaled_cosine():
    clf = HypersphericalClassifier(scale=25.0)
    e, z = torch.randn(B, A), torch.randn(NUM_CLASSES, A)
    o = clf(e, z)
    for i in range(B):
        for c in range(NUM_CLASSES):
            cos = (e[i] @ z[c]) / (e[i].norm() * z[c].norm())
            assert math.isclose(
                o[i, c].item(), 25.0 * cos.item(), rel_tol=1e-5, abs_tol=1e-5)
    assert 'scale' not in dict(clf.named_parameters())
    learn = HypersphericalClassifier(scale=20.0, learnable_scale=True)
    learn(e, z).sum().backward()
    assert learn.scale.grad is not None and learn.scale.item() == 20.0
    with pytest.raises(ValueError, match='scale'):
        HypersphericalClassifier(scale=0)


# ------------------------------------------------------------------ SIT
def test_sit_is_the_identity_in_eval():
    sit = SemanticInteractionTransformer(C, num_heads=2)
    h = torch.randn(B, A, C)
    sit.eval()
    assert sit(h) is h
    sit.train()
    assert not torch.allclose(sit(h), h)


def test_sit_equations_post_ln_against_manual_attention():
    sit = SemanticInteractionTransformer(C, num_heads=2, dropout=0.0)
    sit.train()
    h = torch.randn(B, A, C)
    out = sit(h)
    layer = sit.layers[0]
    attn = layer.self_attn
    wq, wk, wv = attn.in_proj_weight.chunk(3)
    bq, bk, bv = attn.in_proj_bias.chunk(3)
    expected = torch.empty_like(h)
    heads, d = 2, C // 2
    for a in range(A):  # axis 'batch': the sequence is the B images
        seq = h[:, a]  # (B, C)
        q, k, v = seq @ wq.T + bq, seq @ wk.T + bk, seq @ wv.T + bv
        mixed = []
        for j in range(heads):
            s = slice(j * d, (j + 1) * d)
            weights = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(d), -1)
            mixed.append(weights @ v[:, s])
        mhsa = torch.cat(mixed, -1) @ attn.out_proj.weight.T + \
            attn.out_proj.bias
        h1 = layer.norm1(seq + mhsa)
        mlp = layer.linear2(F.relu(layer.linear1(h1)))
        expected[:, a] = layer.norm2(h1 + mlp)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_sit_batch_axis_is_permutation_equivariant_and_cross_image():
    sit = SemanticInteractionTransformer(C, num_heads=2, dropout=0.0)
    sit.train()
    h = torch.randn(4, A, C)
    perm = torch.tensor([2, 0, 3, 1])
    out = sit(h)
    torch.testing.assert_close(sit(h[perm]), out[perm], atol=1e-5, rtol=1e-5)
    changed = h.clone()
    changed[3] += torch.randn(A, C)
    out2 = sit(changed)
    assert not torch.allclose(out2[:3], out[:3], atol=1e-4)


def test_sit_attr_axis_keeps_images_independent():
    sit = SemanticInteractionTransformer(
        C, num_heads=2, dropout=0.0, axis='attr')
    sit.train()
    h = torch.randn(4, A, C)
    out = sit(h)
    changed = h.clone()
    changed[3] += torch.randn(A, C)
    out2 = sit(changed)
    torch.testing.assert_close(out2[:3], out[:3])
    assert not torch.allclose(out2[3], out[3])
    # Within an image, attributes interact.
    one = h.clone()
    one[0, 0] += 1.0
    assert not torch.allclose(sit(one)[0, 1:], out[0, 1:], atol=1e-5)
    with pytest.raises(ValueError, match="'batch', 'attr'"):
        SemanticInteractionTransformer(C, axis='image')
    with pytest.raises(ValueError, match='num_heads'):
        SemanticInteractionTransformer(C, num_heads=3)


# ------------------------------------------------------ self-calibration
def test_self_calibration_loss_is_dazle_form_and_falls_with_unseen_mass():
    loss = SelfCalibrationLoss(loss_weight=0.5)
    o = torch.randn(4, NUM_CLASSES)
    unseen = torch.tensor(UNSEEN)
    prob = torch.softmax(o, 1)
    mass = prob[:, UNSEEN].sum(1)
    expected = -0.5 * torch.log(mass.mean())
    torch.testing.assert_close(loss(o, unseen), expected)
    mask = torch.zeros(NUM_CLASSES, dtype=torch.bool)
    mask[UNSEEN] = True
    torch.testing.assert_close(loss(o, mask), expected)
    values = []
    for boost in (0.0, 1.0, 2.0, 4.0):
        shifted = o.clone()
        shifted[:, UNSEEN] += boost
        values.append(loss(shifted, unseen).item())
    assert all(a > b for a, b in zip(values, values[1:])), values
    with pytest.raises(ValueError, match='unseen'):
        loss(o, torch.zeros(0, dtype=torch.long))


# ------------------------------------------------------------------ head
def test_head_scores_and_forward_compose_the_parts():
    head = _head()
    _randomise(head)
    head.eval()
    x = torch.randn(B, C, H, W)
    h, _ = head.dab(x)
    e = head.dab.score(h)
    torch.testing.assert_close(head((x, )), e)
    o = head.classifier.scale * F.normalize(
        e, dim=1) @ F.normalize(
            head.class_attributes, dim=1).T
    torch.testing.assert_close(head.class_scores(e), o, atol=1e-5, rtol=1e-5)


def test_prob_fusion_equation_and_zsl_uses_the_attribute_branch_alone():
    head = _head(beta=2.0)
    _randomise(head)
    head.eval()
    x = torch.randn(8, C, H, W)
    o = head.class_scores(head((x, )))
    g = head.global_logits((x, ))
    # A global branch that strongly prefers the seen classes.
    with torch.no_grad():
        head.global_fc.bias.add_(torch.tensor([20.0, 0, 0, 0]))
    g = head.global_logits((x, ))
    fused = head.predict_scores((x, )).detach()
    o, g = o.detach(), g.detach()
    expected = torch.softmax(o, 1).clone()
    expected[:, SEEN] += 2.0 * torch.softmax(g, 1)
    torch.testing.assert_close(fused.exp(), expected, atol=1e-5, rtol=1e-5)
    # ZSL: the metric's argmax over the unseen columns == attribute branch.
    scores = fused.numpy()
    pred = np.array(UNSEEN)[scores[:, UNSEEN].argmax(1)]
    assert np.isin(pred, UNSEEN).all()
    assert (pred == np.array(UNSEEN)[o[:, UNSEEN].argmax(1).numpy()]).all()
    target = np.array(UNSEEN * 4)
    assert zsl_top1(scores, target,
                    UNSEEN) == zsl_top1(o.numpy(), target, UNSEEN)
    # ... while GZSL does change: the boosted seen class wins.
    assert (fused.argmax(1) == 0).all()


@pytest.mark.parametrize('fusion_space', ['prob', 'logit'])
def test_beta_zero_gamma_zero_gzsl_is_the_attribute_argmax(fusion_space):
    head = _head(beta=0.0, fusion_space=fusion_space)
    _randomise(head)
    head.eval()
    x = torch.randn(8, C, H, W)
    with torch.no_grad():
        o = head.class_scores(head((x, ))).numpy()
        fused = head.predict_scores((x, )).numpy()
    for space in ('raw', 'softmax'):
        pred = calibrated_predict(to_score_space(fused, space), SEEN, 0.0)
        assert (pred == o.argmax(1)).all()
    # At β = 0 raw-space γ acts as on the scaled-cosine logits themselves.
    for gamma in (0.5, 2.0, 5.0):
        assert (calibrated_predict(fused, SEEN, gamma) == calibrated_predict(
            o, SEEN, gamma)).all()


def test_logit_fusion_equation():
    head = _head(beta=0.3, fusion_space='logit')
    _randomise(head)
    head.eval()
    x = torch.randn(4, C, H, W)
    o = head.class_scores(head((x, )))
    expected = o.clone()
    expected[:, SEEN] += 0.3 * head.global_logits((x, ))
    torch.testing.assert_close(head.predict_scores((x, )), expected)


def test_loss_runs_ce_on_plain_and_sit_features():
    head = _head(lambda_cal=0.0, use_global=False)
    _randomise(head)
    head.train()
    x = torch.randn(B, C, H, W)
    labels = torch.tensor([0, 3, 5])
    losses = head.loss((x, ), _samples(labels))
    assert set(losses) == {'loss_ce'}
    h, _ = head.dab(x)
    torch.manual_seed(0)
    refined = head.sit(h)
    logits = [head.class_scores(head.dab.score(f)) for f in (h, refined)]
    expected = (F.cross_entropy(logits[0], labels) +
                F.cross_entropy(logits[1], labels)) / 2
    torch.testing.assert_close(losses['loss_ce'], expected)
    # ce_over='seen': the seen columns and seen-local labels.
    head = _head(
        lambda_cal=0.0, use_global=False, use_sit=False, ce_over='seen')
    _randomise(head)
    loss = head.loss((x, ), _samples(labels))['loss_ce']
    seen_logits = head.class_scores(head((x, )))[:, SEEN]
    torch.testing.assert_close(
        loss, F.cross_entropy(seen_logits, torch.tensor([0, 2, 3])))


def test_loss_terms_global_branch_and_calibration():
    head = _head(
        lambda_cal=0.2,
        lambda_gc=0.5,
        use_sit=False,
        cal_detach_backbone=False)
    _randomise(head)
    head.train()
    x = torch.randn(B, C, H, W)
    labels = torch.tensor([0, 3, 5])
    losses = head.loss((x, ), _samples(labels))
    assert set(losses) == {'loss_ce', 'loss_cal', 'loss_global'}
    o = head.class_scores(head((x, )))
    mass = torch.softmax(o, 1)[:, UNSEEN].sum(1)
    torch.testing.assert_close(losses['loss_cal'],
                               -0.2 * torch.log(mass.mean()))
    g = head.global_logits((x, ))
    torch.testing.assert_close(
        losses['loss_global'],
        0.5 * F.cross_entropy(g, torch.tensor([0, 2, 3])))
    assert head.global_class_ids.tolist() == SEEN
    assert 'global_class_ids' in head.state_dict()


def test_calibration_detached_puts_no_gradient_on_the_backbone():
    backbone = torch.nn.Conv2d(3, C, 1)
    x = torch.randn(B, 3, H, W)
    labels = _samples([0, 2, 5])
    for detach in (True, False):
        head = _head(lambda_cal=1.0, cal_detach_backbone=detach)
        head.train()
        backbone.zero_grad()
        losses = head.loss((backbone(x), ), labels)
        losses['loss_cal'].backward()
        grad = backbone.weight.grad
        if detach:
            assert grad is None or grad.abs().sum() == 0
            # ... but the head still learns from it.
            assert head.dab.proto_proj.grad.abs().sum() > 0
        else:
            assert grad.abs().sum() > 0


def test_ablation_switches_change_the_model_as_documented():
    full = _head()
    names = {n.split('.')[0] for n, _ in full.named_parameters()}
    assert names == {'dab', 'sit', 'global_fc'}
    assert full.dab.aca is not None and full.cal_loss is not None

    assert _head(use_aca=False).dab.aca is None
    no_sit = _head(use_sit=False)
    assert no_sit.sit is None
    no_global = _head(use_global=False)
    assert no_global.global_fc is None
    assert _head(lambda_cal=0.0).cal_loss is None

    x = torch.randn(B, C, H, W)
    labels = _samples([0, 2, 5])
    no_global.train()
    assert 'loss_global' not in no_global.loss((x, ), labels)
    no_global.eval()
    o = no_global.class_scores(no_global((x, )))
    torch.testing.assert_close(
        no_global.predict_scores((x, )), torch.log_softmax(o, 1))
    cal_off = _head(lambda_cal=0.0)
    cal_off.train()
    assert 'loss_cal' not in cal_off.loss((x, ), labels)
    # use_sit=False trains on the DAB features alone (deterministic).
    no_sit.train()
    first = no_sit.loss((x, ), labels)['loss_ce']
    torch.testing.assert_close(no_sit.loss((x, ), labels)['loss_ce'], first)
    torch.testing.assert_close(
        first,
        F.cross_entropy(
            no_sit.class_scores(no_sit((x, ))), torch.tensor([0, 2, 5])))


def test_head_errors_are_readable():
    with pytest.raises(ValueError, match='num_seen_classes'):
        DRMNHead(A, C, word_vectors=_w2v(), w2v_dim=12, sit_heads=2)
    with pytest.raises(ValueError, match="'prob', 'logit'"):
        _head(fusion_space='score')
    with pytest.raises(ValueError, match="'all', 'seen'"):
        _head(ce_over='unseen')
    head = _head(num_seen_classes=3)
    head.train()
    with pytest.raises(ValueError, match='num_seen_classes=4'):
        head.loss((torch.randn(B, C, H, W), ), _samples([0, 2, 5]))
    with pytest.raises(ValueError, match='feats\\[-1\\]'):
        _head().predict_scores((torch.randn(B, C), ))
    head = _head()
    head.set_class_semantics(np.ones((NUM_CLASSES, A)), seen_classes=range(6))
    head.train()
    with pytest.raises(ValueError, match='lambda_cal=0'):
        head.loss((torch.randn(B, C, H, W), ), _samples([0, 2, 5]))


def test_new_classes_without_seen_ids_use_the_attribute_branch():
    head = _head(beta=0.5)
    head.eval()
    x = torch.randn(B, C, H, W)
    head.set_class_semantics(np.random.default_rng(5).random((3, A)))
    o = head.class_scores(head((x, )))
    torch.testing.assert_close(
        head.predict_scores((x, )), torch.log_softmax(o, 1))
