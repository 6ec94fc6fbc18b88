"""ZeroMamba's SLP, GRL, SeF, ZeroMambaHead and ZeroMambaNeck.

Parity numbers come from ``tests/data/golden/zeromamba_head_dev.pth`` (the
authors' training-script classes run on fixed weights and inputs) and
``tests/data/vmamba/vmamba_dev_s2_*.pth`` (the official VMamba code).
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmpretrain.structures import DataSample

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.heads import (GlobalRepresentationLearning,
                                       SemanticFusion, SemanticLocalProjection,
                                       ZeroMambaHead)
from zeromamba_mm.models.necks import ZeroMambaNeck
from zeromamba_mm.models.utils import (CheckpointMismatchError,
                                       convert_official_vmamba)
from zeromamba_mm.registry import MODELS

DATA = osp.join(osp.dirname(__file__), 'data')
GOLDEN_HEAD = osp.join(DATA, 'golden', 'zeromamba_head_dev.pth')
VMAMBA_CKPT = osp.join(DATA, 'vmamba', 'vmamba_dev_s2_ckpt.pth')
VMAMBA_IO = osp.join(DATA, 'vmamba', 'vmamba_dev_s2_io.pth')
SHARED = osp.join(osp.dirname(__file__), '..', '..', 'shared', 'golden')
TOL = dict(atol=1e-5, rtol=0)


def _data_file(path):
    """The tests/data copy, else the shared original, else skip."""
    if not osp.isfile(path):
        shared = osp.join(SHARED, osp.basename(path))
        if not osp.isfile(shared):
            pytest.skip(f'{path} is missing')
        return shared
    return path


@pytest.fixture(scope='module')
def golden():
    return torch.load(_data_file(GOLDEN_HEAD), weights_only=True)


def golden_head_state(golden):
    slp = golden['slp_state']
    return {
        'slp.V': slp['V'],
        'slp.W1': slp['W1'],
        'slp.W2': slp['W2'],
        'slp.mlp_local.0.weight': golden['clf_head2']['0.weight'],
        'slp.mlp_local.2.weight': golden['clf_head2']['2.weight'],
        'grl.fc.weight': golden['clf_head']['weight'],
    }


def l1_loss(weight):
    return dict(
        type='zeromamba_mm.AttributeRegressionLoss', loss_weight=weight)


def build_golden_head(golden, **kwargs):
    num_attributes, w2v_dim = golden['slp_state']['V'].shape
    head = ZeroMambaHead(
        num_attributes,
        in_channels=golden['x_pre'].shape[1],
        imagenet_classes=golden['imagenet_logits'].shape[1],
        w2v_dim=w2v_dim,
        word_vectors=golden['w2v'],
        **kwargs)
    head.load_state_dict(golden_head_state(golden), strict=True)
    return head


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


# ------------------------------------------------------- golden parity ---
def test_golden_file_structure(golden):
    # What the parity tests below rely on.
    assert golden['x_pre'].shape == (6, 768, 4, 4)
    assert golden['imagenet_logits'].shape == (6, 1000)
    assert set(golden['clf_head']) == {'weight'}  # GRL has no bias there
    assert torch.equal(golden['seen'], torch.arange(8))
    torch.testing.assert_close(golden['att'].norm(dim=1),
                               torch.ones(len(golden['att'])))


def test_slp_init_is_normalized_word_vectors(golden):
    slp = SemanticLocalProjection(12, word_vectors=golden['w2v'])
    torch.testing.assert_close(slp.V.data, golden['slp_state']['V'], **TOL)
    assert slp.word_vector_init
    assert slp.W1.shape == slp.W2.shape == (300, 768)
    # W1, W2 ~ N(0, 1) as the authors'.
    assert 0.9 < slp.W1.std().item() < 1.1
    assert abs(slp.W2.mean().item()) < 0.02
    assert [n for n, _ in slp.mlp_local.named_parameters()
            ] == ['0.weight', '2.weight']


def test_head_reproduces_the_authors_prediction_and_losses(golden):
    # The authors' switches: bare L2 norm (eps=0), GRL without bias; the
    # golden losses are the CE and the *unweighted* L1 (λ=1 here).
    head = build_golden_head(golden, l2_eps=0.0, attr_loss=l1_loss(1.0))
    feats = (golden['x_pre'], golden['imagenet_logits'])
    pred = head(feats)
    assert pred.shape == golden['pred'].shape
    torch.testing.assert_close(pred, golden['pred'], **TOL)

    seen = golden['seen']
    labels = seen[golden['labels_seen_local']]
    head.set_class_semantics(golden['att'], seen)
    losses = head.loss(feats, samples(labels))
    torch.testing.assert_close(losses['loss_ce'], golden['loss_ce'], **TOL)
    torch.testing.assert_close(losses['loss_attr'], golden['loss_l1'], **TOL)


def test_defaults_differ_from_the_authors_only_as_documented(golden):
    feats = (golden['x_pre'], golden['imagenet_logits'])
    default = build_golden_head(golden)
    assert default.sef.eps == 1e-12 and default.grl.fc.bias is None
    # Away from a zero local prediction the sound eps changes nothing.
    torch.testing.assert_close(default(feats), golden['pred'], **TOL)
    # λ scales the L1 term (SUN's 0.2).
    seen = golden['seen']
    labels = seen[golden['labels_seen_local']]
    sun = build_golden_head(golden, attr_loss=l1_loss(0.2))
    sun.set_class_semantics(golden['att'], seen)
    losses = sun.loss(feats, samples(labels))
    torch.testing.assert_close(losses['loss_attr'], 0.2 * golden['loss_l1'],
                               **TOL)
    # AWA2 (λ=0): CE only.
    awa2 = build_golden_head(golden, attr_loss=None)
    awa2.set_class_semantics(golden['att'], seen)
    assert set(awa2.loss(feats, samples(labels))) == {'loss_ce'}

    # With Ã_local = 0 (all MLP_ls units off) the authors' division gives
    # NaN; the default gives Ã_global.
    authors = build_golden_head(golden, l2_eps=0.0)
    for head in (default, authors):
        torch.nn.init.zeros_(head.slp.mlp_local[2].weight)
    with torch.no_grad():
        assert torch.isnan(authors(feats)).all()
        global_pred = golden['imagenet_logits'] @ golden['clf_head'][
            'weight'].t()
        torch.testing.assert_close(default(feats), global_pred, **TOL)


def test_grl_bias_switch_adds_a_bias_to_the_global_branch(golden):
    head = ZeroMambaHead(12, grl_bias=True)
    assert head.grl.fc.bias is not None
    assert 'grl.fc.bias' in head.state_dict()
    logits = golden['imagenet_logits']
    torch.testing.assert_close(
        head.grl(logits), logits @ head.grl.fc.weight.t() + head.grl.fc.bias)


def test_sef_switches():
    g, local = torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(SemanticFusion()(g, local),
                               g + F.normalize(local, dim=1))
    torch.testing.assert_close(
        SemanticFusion(normalize_local=False)(g, local), g + local)
    with pytest.raises(ValueError, match='eps must be >= 0'):
        SemanticFusion(eps=-1)
    with pytest.raises(ValueError, match='same shape'):
        SemanticFusion()(g, local[:, :4])


def test_attention_maps(golden):
    head = build_golden_head(golden)
    feats = (golden['x_pre'], golden['imagenet_logits'])
    maps = head.attention_maps(feats)
    assert maps.shape == (6, 12, 4, 4)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(6, 12))
    # Independent formula of the authors' dense attention.
    vv = F.normalize(golden['slp_state']['V'], dim=1)
    regions = F.normalize(golden['x_pre'].flatten(2), dim=1)
    expected = torch.einsum('iv,vf,bfr->bir', vv, golden['slp_state']['W1'],
                            regions).softmax(dim=-1).reshape(6, 12, 4, 4)
    torch.testing.assert_close(maps, expected, **TOL)
    torch.testing.assert_close(head.attention_maps(golden['x_pre']), maps)
    parts = head.forward_parts(feats)
    torch.testing.assert_close(parts['attention'], maps)
    torch.testing.assert_close(parts['fused'], head(feats))
    torch.testing.assert_close(
        parts['fused'],
        parts['global_pred'] + F.normalize(parts['local_pred'], dim=1))


def test_head_input_errors():
    head = ZeroMambaHead(5, in_channels=8, imagenet_classes=10)
    with pytest.raises(ValueError, match='ZeroMambaNeck'):
        head((torch.randn(2, 8, 2, 2), ))
    with pytest.raises(ValueError, match=r'\(B, 8, H, W\).*\(2, 9, 2, 2\)'):
        head((torch.randn(2, 9, 2, 2), torch.randn(2, 10)))
    with pytest.raises(ValueError, match=r'\(B, 10\).*\(2, 11\)'):
        head((torch.randn(2, 8, 2, 2), torch.randn(2, 11)))
    with pytest.raises(ValueError, match='num_attributes=5'):
        ZeroMambaHead(5, word_vectors=torch.randn(6, 300))


def test_modules_are_registered():
    for name in ('SemanticLocalProjection', 'GlobalRepresentationLearning',
                 'SemanticFusion', 'ZeroMambaHead', 'ZeroMambaNeck'):
        assert MODELS.get(f'zeromamba_mm.{name}') is not None
    grl = MODELS.build(
        dict(
            type='zeromamba_mm.GlobalRepresentationLearning',
            num_attributes=3,
            in_channels=4))
    assert isinstance(grl, GlobalRepresentationLearning)


# ---------------------------------------------------------------- neck ---
@pytest.fixture(scope='module')
def vmamba_io():
    return torch.load(_data_file(VMAMBA_IO), weights_only=True)


def test_neck_reproduces_the_official_classifier(vmamba_io):
    # Official release layout: classifier.norm / classifier.head.
    neck = ZeroMambaNeck(
        in_channels=128,
        imagenet_classes=5,
        init_cfg=dict(type='Pretrained', checkpoint=_data_file(VMAMBA_CKPT)))
    neck.init_weights()
    x_pre, logits = neck((vmamba_io['stage4'], ))
    assert x_pre is vmamba_io['stage4']  # SLP gets the map before the norm
    torch.testing.assert_close(logits, vmamba_io['logits'], **TOL)


def test_classifier_init_weights_loads_backbone_and_neck(vmamba_io):
    # The config path: both Pretrained init_cfgs point at the release file.
    ckpt = _data_file(VMAMBA_CKPT)
    model = MODELS.build(
        dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(
                type='zeromamba_mm.VMamba',
                arch=vmamba_io['arch'],
                out_indices=(3, ),
                final_norm=False,
                init_cfg=dict(type='Pretrained', checkpoint=ckpt)),
            neck=dict(
                type='zeromamba_mm.ZeroMambaNeck',
                in_channels=128,
                imagenet_classes=5,
                init_cfg=dict(type='Pretrained', checkpoint=ckpt)),
            head=dict(
                type='zeromamba_mm.ZeroMambaHead',
                num_attributes=4,
                in_channels=128,
                imagenet_classes=5)))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        x_pre, logits = model.extract_feat(vmamba_io['input'])
    torch.testing.assert_close(x_pre, vmamba_io['stage4'], **TOL)
    torch.testing.assert_close(logits, vmamba_io['logits'], **TOL)


def test_neck_loads_converted_and_resnet_layouts(tmp_path, vmamba_io):
    official = torch.load(_data_file(VMAMBA_CKPT), weights_only=True)['model']
    converted = tmp_path / 'vmamba_mmpretrain.pth'
    torch.save({'state_dict': convert_official_vmamba(official)}, converted)
    neck = ZeroMambaNeck(
        128, 5, init_cfg=dict(type='Pretrained', checkpoint=str(converted)))
    neck.init_weights()
    torch.testing.assert_close(
        neck(vmamba_io['stage4'])[1], vmamba_io['logits'], **TOL)

    resnet = tmp_path / 'resnet.pth'
    fc = torch.nn.Linear(16, 7)
    torch.save(
        {
            'state_dict': {
                'backbone.conv1.weight': torch.zeros(1),
                'head.fc.weight': fc.weight.data,
                'head.fc.bias': fc.bias.data
            }
        }, resnet)
    neck = ZeroMambaNeck(16, 7, norm='none')
    neck.load_imagenet_classifier(str(resnet))
    x = torch.randn(2, 16, 3, 3)
    torch.testing.assert_close(neck(x)[1], fc(x.mean(dim=(2, 3))))


def test_neck_loading_errors(tmp_path):
    ckpt = _data_file(VMAMBA_CKPT)
    # Wrong shape: named key, both shapes and the file.
    neck = ZeroMambaNeck(128, 1000)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'(?s)vmamba_dev_s2_ckpt.*fc.weight: expected '
            r'\(1000, 128\), found \(5, 128\)'):
        neck.load_imagenet_classifier(ckpt)
    with pytest.raises(KeyError, match="norm=None.*norm='ln2d'"):
        ZeroMambaNeck(128, 5, norm=None).load_imagenet_classifier(ckpt)
    resnet = tmp_path / 'resnet.pth'
    torch.save(
        {
            'head.fc.weight': torch.zeros(5, 128),
            'head.fc.bias': torch.zeros(5)
        }, resnet)
    with pytest.raises(KeyError, match='needs the classifier norm'):
        ZeroMambaNeck(128, 5).load_imagenet_classifier(str(resnet))
    missing_bias = tmp_path / 'no_bias.pth'
    torch.save({'head.fc.weight': torch.zeros(5, 128)}, missing_bias)
    with pytest.raises(CheckpointMismatchError, match=r'fc.bias \(5,\)'):
        ZeroMambaNeck(
            128, 5, norm=None).load_imagenet_classifier(str(missing_bias))
    vit = tmp_path / 'vit.pth'
    torch.save(
        {
            'head.layers.head.weight': torch.zeros(5, 128),
            'head.layers.head.bias': torch.zeros(5),
            'head.layers.pre_logits.weight': torch.zeros(128, 128)
        }, vit)
    with pytest.raises(ValueError, match='pre_logits'):
        ZeroMambaNeck(128, 5, norm=None).load_imagenet_classifier(str(vit))
    nothing = tmp_path / 'nothing.pth'
    torch.save({'backbone.x': torch.zeros(1)}, nothing)
    with pytest.raises(KeyError, match='holds no ImageNet classifier'):
        ZeroMambaNeck(128, 5).load_imagenet_classifier(str(nothing))
    with pytest.raises(FileNotFoundError):
        ZeroMambaNeck(128, 5).load_imagenet_classifier(
            str(tmp_path / 'absent.pth'))
    with pytest.raises(ValueError, match="'ln2d' or None"):
        ZeroMambaNeck(128, 5, norm='bn')
    with pytest.raises(ValueError, match=r'\(B, 128, H, W\)'):
        ZeroMambaNeck(128, 5)(torch.randn(1, 64, 2, 2))


# ------------------------------------------------------- whole model ---
TINY_ARCH = dict(
    depths=[1, 1, 1, 1],
    dims=[8, 16, 32, 64],
    ssm_ratio=1.0,
    d_state=1,
    mlp_ratio=2.0)
NUM_CLASSES, NUM_ATTRIBUTES = 7, 6


def build_tiny_model(**head_kwargs):
    return MODELS.build(
        dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(
                type='zeromamba_mm.VMamba',
                arch=TINY_ARCH,
                out_indices=(3, ),
                final_norm=False,
                drop_path_rate=0.0),
            neck=dict(
                type='zeromamba_mm.ZeroMambaNeck',
                in_channels=64,
                imagenet_classes=10),
            head=dict(
                type='zeromamba_mm.ZeroMambaHead',
                num_attributes=NUM_ATTRIBUTES,
                in_channels=64,
                imagenet_classes=10,
                w2v_dim=12,
                word_vectors=torch.randn(NUM_ATTRIBUTES, 12),
                mlp_hidden=16,
                attr_loss=l1_loss(1.0),
                **head_kwargs)))


def tiny_semantics():
    generator = torch.Generator().manual_seed(0)
    attributes = F.normalize(
        torch.rand(NUM_CLASSES, NUM_ATTRIBUTES, generator=generator), dim=1)
    return attributes, [0, 1, 3, 4, 6], [2, 5]


def test_whole_classifier_loss_and_predict():
    torch.manual_seed(0)
    model = build_tiny_model()
    model.init_weights()
    model.set_class_semantics(*tiny_semantics())
    inputs = torch.randn(2, 3, 64, 64)

    losses = model(inputs, samples([3, 6]), mode='loss')
    assert set(losses) == {'loss_ce', 'loss_attr'}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    no_grad = [
        name for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert no_grad == []
    for part in ('backbone.patch_embed.0.weight', 'neck.norm.weight',
                 'neck.fc.weight', 'head.slp.V', 'head.slp.W1', 'head.slp.W2',
                 'head.slp.mlp_local.0.weight', 'head.grl.fc.weight'):
        assert part in dict(model.named_parameters())

    model.eval()
    with torch.no_grad():
        results = model(inputs, mode='predict')
        feats = model.extract_feat(inputs)
        expected = model.head(feats) @ model.head.class_attributes.t()
    assert feats[0].shape == (2, 64, 2, 2) and feats[1].shape == (2, 10)
    assert len(results) == 2
    for result, score in zip(results, expected):
        assert result.pred_score.shape == (NUM_CLASSES, )
        torch.testing.assert_close(result.pred_score, score)
    assert model.head.attention_maps(feats).shape == (2, NUM_ATTRIBUTES, 2, 2)


def test_paramwise_cfg_gives_mlp_ls_its_own_learning_rate():
    model = build_tiny_model()
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(
                type='SGD', lr=1e-3, momentum=0.9, weight_decay=1e-3),
            paramwise_cfg=dict(custom_keys={'mlp_local': dict(lr_mult=0.1)})))
    lr_of, wd_of = {}, {}
    for group in optim_wrapper.optimizer.param_groups:
        for param in group['params']:
            lr_of[id(param)] = group['lr']
            wd_of[id(param)] = group['weight_decay']
    names = dict(model.named_parameters())
    assert set(lr_of) == {id(p) for p in names.values()}
    slow = {n for n, p in names.items() if lr_of[id(p)] == pytest.approx(1e-4)}
    assert slow == {
        'head.slp.mlp_local.0.weight', 'head.slp.mlp_local.2.weight'
    }
    for name, param in names.items():
        if name not in slow:
            assert lr_of[id(param)] == pytest.approx(1e-3), name
        assert wd_of[id(param)] == pytest.approx(1e-3), name
