"""tools/model_converters/zeromamba_to_mmpretrain.py.

A checkpoint in the authors' layout is built from the golden files: the
official-format small VMamba (``vmamba_dev_s2_ckpt.pth``) as
``VisionMamba.*`` plus ZeroMamba head weights from the golden head file, cut
to the small arch (128 channels, 5 "ImageNet" classes). The converted model
must give the same fused prediction Â as the authors' forward, written below
as a plain function of the raw tensors, on the official VMamba stage-4
output for the same input.
"""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import load_checkpoint

import zeromamba_mm  # noqa: F401
from zeromamba_mm.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data')
SHARED = osp.join(ROOT, '..', 'shared', 'golden')
TOL = dict(atol=1e-5, rtol=0)


def _load_tool():
    path = osp.join(ROOT, 'tools', 'model_converters',
                    'zeromamba_to_mmpretrain.py')
    spec = importlib.util.spec_from_file_location('zeromamba_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _data_file(*parts):
    path = osp.join(DATA, *parts)
    if osp.isfile(path):
        return path
    shared = osp.join(SHARED, parts[-1])
    if not osp.isfile(shared):
        pytest.skip(f'{path} is missing')
    return shared


@pytest.fixture(scope='module')
def golden():
    head = torch.load(
        _data_file('golden', 'zeromamba_head_dev.pth'), weights_only=True)
    vmamba = torch.load(
        _data_file('vmamba', 'vmamba_dev_s2_ckpt.pth'),
        weights_only=True)['model']
    io = torch.load(
        _data_file('vmamba', 'vmamba_dev_s2_io.pth'), weights_only=True)
    return head, vmamba, io


def authors_state_dict(golden, grl_bias=False):
    """The authors' ``nn.ModuleDict`` state dict for the small arch."""
    head, vmamba, io = golden
    channels = io['stage4'].shape[1]
    num_classes = vmamba['classifier.head.weight'].shape[0]
    sd = {f'VisionMamba.{k}': v for k, v in vmamba.items()}
    sd['VisionMamba.classifier2.V'] = head['slp_state']['V']
    sd['VisionMamba.classifier2.W1'] = head['slp_state']['W1'][:, :channels]
    sd['VisionMamba.classifier2.W2'] = head['slp_state']['W2'][:, :channels]
    # The golden GRL reads 1000 logits: keep the first num_classes columns,
    # scaled up so the global branch is not negligible.
    sd['clf_head.weight'] = 10 * head['clf_head']['weight'][:, :num_classes]
    if grl_bias:
        sd['clf_head.bias'] = torch.linspace(-0.5, 0.5,
                                             sd['clf_head.weight'].shape[0])
    sd['clf_head2.0.weight'] = head['clf_head2']['0.weight']
    sd['clf_head2.2.weight'] = head['clf_head2']['2.weight']
    return sd


def authors_forward(sd, x_pre):
    """The authors' forward after the backbone, from raw tensors.

    ``x_pre`` is ``VisionMamba``'s first output (the last stage before the
    classifier); the second output is its ImageNet classifier.
    """
    x = x_pre.permute(0, 2, 3, 1)
    x = F.layer_norm(x, (x.shape[-1], ),
                     sd['VisionMamba.classifier.norm.weight'],
                     sd['VisionMamba.classifier.norm.bias'], 1e-5)
    logits = F.linear(
        x.permute(0, 3, 1, 2).mean(dim=(2, 3)),
        sd['VisionMamba.classifier.head.weight'],
        sd['VisionMamba.classifier.head.bias'])
    # Classifier_custom (SLP without MLP_ls)
    vv = F.normalize(sd['VisionMamba.classifier2.V'], dim=1)
    av = F.normalize(x_pre.reshape(*x_pre.shape[:2], -1), dim=1)
    att = torch.einsum('iv,vf,bfr->bir', vv, sd['VisionMamba.classifier2.W1'],
                       av).softmax(dim=-1)
    f_p = torch.einsum('bir,bfr->bif', att, av)
    pred_local = torch.einsum('iv,vf,bif->bi', vv,
                              sd['VisionMamba.classifier2.W2'], f_p)
    # clf_head2 (MLP_ls), clf_head (GRL), l2_norm2 fusion
    pred_local = F.linear(
        F.relu(F.linear(pred_local, sd['clf_head2.0.weight'])),
        sd['clf_head2.2.weight'])
    pred_global = F.linear(logits, sd['clf_head.weight'],
                           sd.get('clf_head.bias'))
    return logits, pred_global + pred_local / pred_local.norm(
        dim=1, keepdim=True)


def build_model(meta, **head_kwargs):
    return MODELS.build(
        dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(
                type='zeromamba_mm.VMamba',
                arch=meta['arch'],
                out_indices=(3, ),
                final_norm=False),
            neck=dict(type='zeromamba_mm.ZeroMambaNeck', **meta['neck']),
            head=dict(
                type='zeromamba_mm.ZeroMambaHead',
                grl_bias=meta['head']['grl_bias'],
                **{
                    k: v
                    for k, v in meta['head'].items() if k != 'grl_bias'
                },
                **head_kwargs)))


def test_authors_forward_matches_the_official_logits(golden):
    # Sanity of the plain re-implementation: its ImageNet branch gives the
    # official VMamba logits.
    _, _, io = golden
    logits, _ = authors_forward(authors_state_dict(golden), io['stage4'])
    torch.testing.assert_close(logits, io['logits'], **TOL)


@pytest.mark.parametrize('grl_bias', [False, True])
def test_converted_model_matches_the_authors_forward(tmp_path, golden,
                                                     grl_bias):
    _, _, io = golden
    sd = authors_state_dict(golden, grl_bias=grl_bias)
    src, dst = tmp_path / 'CUB_bestGZSL.pth', tmp_path / 'converted.pth'
    torch.save(sd, src)
    assert tool.main([str(src), str(dst)]) == 0

    ckpt = torch.load(dst, weights_only=True)
    meta = ckpt['meta']
    assert meta['converted_from'] == 'CUB_bestGZSL.pth'
    assert meta['head'] == dict(
        num_attributes=12,
        in_channels=128,
        imagenet_classes=5,
        w2v_dim=300,
        mlp_hidden=512,
        grl_bias=grl_bias)
    assert meta['arch']['depths'] == [1, 1, 2, 1]
    assert meta['arch']['dims'] == [16, 32, 64, 128]
    assert meta['arch']['dt_rank'] == 'auto'  # ceil(C/16) per stage
    keys = set(ckpt['state_dict'])
    assert {
        'neck.norm.weight', 'neck.fc.weight', 'head.slp.V',
        'head.slp.mlp_local.2.weight', 'head.grl.fc.weight'
    } <= keys
    assert ('head.grl.fc.bias' in keys) == grl_bias
    assert not any(
        k.startswith(('VisionMamba', 'clf_head', 'head.fc',
                      'backbone.norm_out')) for k in keys)

    model = build_model(meta, l2_eps=0.0).eval()
    # Strict: every parameter of the model comes from the file.
    load_checkpoint(model, str(dst), strict=True, map_location='cpu')
    with torch.no_grad():
        feats = model.extract_feat(io['input'])
        pred = model.head(feats)
    _, expected = authors_forward(sd, io['stage4'])
    torch.testing.assert_close(feats[1], io['logits'], **TOL)
    torch.testing.assert_close(pred, expected, **TOL)
    # The sound default eps gives the same prediction here.
    default = build_model(meta).eval()
    load_checkpoint(default, str(dst), strict=True, map_location='cpu')
    with torch.no_grad():
        torch.testing.assert_close(
            default.head(default.extract_feat(io['input'])), expected, **TOL)


def test_existing_output_is_not_overwritten_without_force(
        tmp_path, golden, capsys):
    src, dst = tmp_path / 'SUN_bestCZSL.pth', tmp_path / 'out.pth'
    torch.save(authors_state_dict(golden), src)
    dst.write_bytes(b'keep me')
    assert tool.main([str(src), str(dst)]) == 1
    assert 'already exists' in capsys.readouterr().err
    assert dst.read_bytes() == b'keep me'
    assert tool.main([str(src), str(dst), '--force']) == 0
    assert 'state_dict' in torch.load(dst, weights_only=True)
    with pytest.raises(ValueError, match='same file'):
        tool.convert_file(str(src), str(src), force=True)


def test_bad_inputs_are_reported(tmp_path, golden):
    sd = authors_state_dict(golden)
    convert = tool.convert_zeromamba_state_dict

    missing = dict(sd)
    del missing['clf_head2.0.weight']
    with pytest.raises(KeyError, match=r"x\.pth.*'clf_head2\.0\.weight'"):
        convert(missing, source='x.pth')

    unknown = dict(sd, **{'clf_head3.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='clf_head3.weight'):
        convert(unknown)

    no_classifier = {
        k: v
        for k, v in sd.items() if not k.startswith('VisionMamba.classifier.')
    }
    with pytest.raises(KeyError, match='VisionMamba.classifier.norm.weight'):
        convert(no_classifier)

    wrong = dict(sd)
    wrong['clf_head.weight'] = torch.zeros(12, 1000)
    with pytest.raises(
            ValueError,
            match=r'clf_head.weight: expected \(12, 5\), found '
            r'\(12, 1000\)'):
        convert(wrong)

    # DataParallel prefixes are accepted.
    wrapped = {f'module.{k}': v for k, v in sd.items()}
    converted, _ = convert(wrapped)
    assert converted.keys() == convert(sd)[0].keys()

    assert tool.main([str(tmp_path / 'absent.pth'),
                      str(tmp_path / 'out.pth')]) == 1
