"""Builds in the zeromamba_mm scope find their registry (no fallback)."""
import pytest
from mmengine import registry as mmengine_registry
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

import zeromamba_mm  # noqa: F401
from zeromamba_mm import registry as zsl_registry


@pytest.mark.parametrize('kind,name', [
    ('VISBACKENDS', 'LocalVisBackend'),
    ('OPTIM_WRAPPERS', 'OptimWrapper'),
    ('PARAM_SCHEDULERS', 'MultiStepLR'),
    ('TRANSFORMS', 'PackInputs'),
    ('HOOKS', 'zeromamba_mm.ZSLVisualizationHook'),
    ('MODELS', 'zeromamba_mm.VMamba'),
])
def test_scope_lookup_finds_the_plugin_registry(kind, name):
    root = getattr(mmengine_registry, kind)
    with DefaultScope.overwrite_default_scope('zeromamba_mm'):
        with root.switch_scope_and_registry(None) as registry:
            assert registry is getattr(zsl_registry, kind)
            assert registry.scope == 'zeromamba_mm'
            assert registry.get(name) is not None


def test_every_root_kind_has_a_child():
    for kind in zsl_registry.__all__:
        child = getattr(zsl_registry, kind)
        root = getattr(mmengine_registry, kind)
        assert child.scope == 'zeromamba_mm'
        assert child._get_root_registry() is root


def test_plugin_modules_are_found_from_other_scopes():
    # MMEngine looks for a scoped name among the root's children only.
    assert MMPRETRAIN_MODELS.get('zeromamba_mm.VMamba').__name__ == 'VMamba'
