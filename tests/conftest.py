"""Settings for the whole test session.

The test process gets the tools' thread settings (``zeromamba_mm/utils/
threads.py``: passive OpenMP waits, one thread per usable core, unless set
by the user) before anything loads torch, so that the in-process trainings
do not spin on cores shared with the tools' subprocesses or other work.
The module is loaded from its file: importing the package would load torch
first.

Every test must leave MMEngine's default scope as it found it
(:func:`default_scope_is_left_alone`): a Runner, an inferencer or
``register_all_modules(init_default_scope=True)`` makes its scope the
current one for the rest of the process, and the next test's builds would
then look in that scope's registries (a test that passes alone fails after
another one).
"""
import importlib.util
import os
import os.path as osp

import pytest

_THREADS = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'zeromamba_mm', 'utils',
    'threads.py')
_spec = importlib.util.spec_from_file_location('_zeromamba_threads', _THREADS)
_threads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_threads)
_threads.configure_threads()


def _scope_name(default_scope_cls):
    current = default_scope_cls.get_current_instance()
    return None if current is None else current.scope_name


def _check_default_scope(what: str):
    """Generator body of the guards: restore the default scope that was
    current before ``what`` ran, and fail if ``what`` left another one."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    before = _scope_name(DefaultScope)
    yield
    after = _scope_name(DefaultScope)
    # MMEngine's overwrite_default_scope rebinds the dict: restore by
    # rebinding too.
    DefaultScope._instance_dict = saved
    if after != before:
        pytest.fail(
            f'{what} changed MMEngine\'s default scope from {before!r} to '
            f'{after!r} and left it so: later tests would build from that '
            'scope\'s registries. Restore it at the end: the '
            'restore_default_scope fixture of tests/conftest.py, or '
            'DefaultScope.overwrite_default_scope.',
            pytrace=False)


@pytest.fixture
def restore_default_scope():
    """For a test that builds an MMEngine Runner itself: the default scope
    that was current before the test is current again after it."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture(autouse=True)
def default_scope_is_left_alone(request):
    """Fail a test that changes MMEngine's current default scope and does
    not restore it; the scope is restored either way, so that only the
    leaking test fails."""
    yield from _check_default_scope(request.node.nodeid)


@pytest.fixture(scope='module', autouse=True)
def module_leaves_default_scope_alone(request):
    """The same for a module's fixtures (set up before any test's guard,
    torn down after the last one)."""
    yield from _check_default_scope(
        f'{request.node.nodeid} (a module-scoped fixture)')


@pytest.fixture
def plugin_configs_installed(monkeypatch, tmp_path):
    """This checkout's configs, tools and model index as ``pip install -e .``
    links them (``zeromamba_mm/.mim``), whatever this checkout's install
    state: mmengine reads ``zeromamba_mm::`` configs from there. (tests/
    test_mim.py checks the real installation.)"""
    import mmengine.config.config as mmengine_config  # after the threads
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    mim = tmp_path / 'site-packages' / 'zeromamba_mm' / '.mim'
    mim.mkdir(parents=True)
    for name in ('configs', 'model-index.yml', 'tools'):
        os.symlink(osp.join(repo, name), mim / name)
    monkeypatch.setattr(mmengine_config, 'get_installed_path',
                        lambda package: str(mim.parent))
    monkeypatch.setattr(mmengine_config, 'is_installed', lambda package: True)
