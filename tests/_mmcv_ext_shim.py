"""Test-only stand-in for mmcv's compiled extension ``mmcv._ext``.

mmcv-lite (the mmcv this project pins) ships the Python side of ``mmcv.ops``
but not the compiled extension behind it, and importing mmseg's or mmdet's
model packages imports ``mmcv.ops``. The mixing tests install this module as
``mmcv._ext`` (only where the real extension is missing) so that those
imports succeed; every compiled op then raises :class:`CompiledOpMissing`
when called, naming the op. A test that passes with the shim therefore
never ran a compiled op; what needs one (NMS in detection inference,
RoIAlign in Mask R-CNN, deformable attention, ...) fails loudly instead of
silently computing something else.

This module is not part of the package: users install full mmcv (see
docs/mixing.md).
"""
import importlib
import importlib.machinery
import sys
import types

MODULE_NAME = 'mmcv._ext'


class CompiledOpMissing(RuntimeError):
    """A compiled mmcv op was called while only the test shim is there."""


def _missing_op(name: str):

    def call(*args, **kwargs):
        raise CompiledOpMissing(
            f'mmcv compiled op {name!r} was called, but this environment has '
            'mmcv-lite (no compiled ops) and only the test shim for '
            f'{MODULE_NAME}. Install full mmcv built for your torch '
            '(`mim install mmcv`, or from source with MMCV_WITH_OPS=1) to '
            'run this part.')

    call.__name__ = name
    return call


def _module_getattr(name: str):
    # Dunders (__path__, __spec__, ...) are looked up by the import system
    # and must stay missing; every other name is a compiled op.
    if name.startswith('__'):
        raise AttributeError(name)
    return _missing_op(name)


def real_extension_available() -> bool:
    """Whether mmcv's own compiled extension imports."""
    if isinstance(sys.modules.get(MODULE_NAME), types.ModuleType) and \
            getattr(sys.modules[MODULE_NAME], 'IS_TEST_SHIM', False):
        return False
    try:
        importlib.import_module(MODULE_NAME)
    except ImportError:
        return False
    return True


def install() -> bool:
    """Put the shim in ``sys.modules`` unless the real extension imports.

    It stays for the rest of the process: ``mmcv.ops`` binds the extension
    module when it is first imported, so removing the shim later would not
    undo anything.

    Returns:
        bool: True if the shim is (now) in place, False if mmcv's real
        compiled extension is used.
    """
    if real_extension_available():
        return False
    shim = types.ModuleType(MODULE_NAME, __doc__)
    shim.IS_TEST_SHIM = True
    # A spec without a loader: importlib/pkgutil look-ups work, and
    # mmengine's mmcv_full_available() still says False (it is not).
    shim.__spec__ = importlib.machinery.ModuleSpec(MODULE_NAME, None)
    shim.__getattr__ = _module_getattr
    sys.modules[MODULE_NAME] = shim
    _complete_transformer_module()
    return True


def _complete_transformer_module() -> None:
    """Finish what ``mmcv.cnn.bricks.transformer`` skipped without ops.

    That module re-exports ``MultiScaleDeformableAttention`` from
    ``mmcv.ops`` if the import works, and mmdet imports it from there. When
    it was imported before the shim (the plugin imports ``mmcv.cnn``), the
    name is missing; set it as the successful import would have.
    """
    transformer = sys.modules.get('mmcv.cnn.bricks.transformer')
    if transformer is not None and not hasattr(
            transformer, 'MultiScaleDeformableAttention'):
        from mmcv.ops.multi_scale_deform_attn import \
            MultiScaleDeformableAttention
        transformer.MultiScaleDeformableAttention = \
            MultiScaleDeformableAttention
