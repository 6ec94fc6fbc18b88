"""Tests do not depend on their order: no test leaves MMEngine's default
scope changed (``tests/conftest.py`` guards it), so a test that builds from
the plugin's registries passes after one that ran a Runner in-process."""
import os
import os.path as osp
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.join(REPO, 'tests')
# Only a guard against a hung subprocess; no verdict depends on the time.
HANG_GUARD_S = 1800


def pytest_run(args, cwd=REPO, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pytest', '-q'] + args,
                          cwd=cwd,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=HANG_GUARD_S)


def test_runner_tests_then_registry_builds_pass():
    # This order failed while the toy runner left the scope at 'mmengine':
    # ClsDataPreprocessor "is not in the mmengine::model registry".
    result = pytest_run([
        '-p', 'no:cacheprovider',
        'tests/test_runner.py::test_auto_resume_without_checkpoint_says_so',
        'tests/test_configs_mixing.py::test_unmodified_configs_build_and_run'
        '[zeromamba-head_resnet101_cub.py-2048-64]',
        'tests/test_apis_inferencer.py::test_scores_equal_model_predict',
    ])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert '3 passed' in result.stdout, result.stdout[-3000:]


def test_guard_fails_the_leaking_test_only(tmp_path):
    (tmp_path / 'test_leak.py').write_text(
        textwrap.dedent("""
        from mmengine.registry import DefaultScope


        def test_leaks():
            DefaultScope.get_instance('leak', scope_name='mmengine')


        def test_after_the_leak():
            assert DefaultScope.get_current_instance() is None
        """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, REPO]))
    # The suite's conftest, loaded as a plugin for a file outside tests/.
    result = pytest_run(
        ['-p', 'conftest', '-p', 'no:cacheprovider', 'test_leak.py'],
        cwd=str(tmp_path),
        env=env)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert '2 passed, 1 error' in out, out
    assert 'ERROR test_leak.py::test_leaks' in out, out
    assert "changed MMEngine's default scope from None to 'mmengine'" in out


def _request(basetemp, worker: bool):
    """What ``made_once`` reads of a fixture request: its config (a worker's
    carries ``workerinput``) and the ``tmp_path_factory``."""
    config = SimpleNamespace(workerinput={}) if worker else SimpleNamespace()
    factory = SimpleNamespace(getbasetemp=lambda: basetemp)
    return SimpleNamespace(config=config, getfixturevalue=lambda name: factory)


def test_run_fixtures_are_made_once_for_all_workers(tmp_path):
    from integration.conftest import made_once
    run = tmp_path / 'pytest-7'
    gw0 = _request(run / 'popen-gw0', worker=True)
    gw1 = _request(run / 'popen-gw1', worker=True)

    # A failed attempt leaves a half-made directory and no 'done' mark ...
    with pytest.raises(RuntimeError, match='killed'):
        with made_once(gw0, 'model') as (path, todo):
            assert todo and path == run / 'model'
            path.mkdir(parents=True)
            (path / 'half_written').touch()
            raise RuntimeError('killed')
    # ... so the next worker makes it again, from scratch ...
    with made_once(gw1, 'model') as (path, todo):
        assert todo and not path.exists()
        path.mkdir()
        (path / 'complete').touch()
    # ... and every later one reuses it.
    for worker in (gw0, gw1):
        with made_once(worker, 'model') as (path, todo):
            assert not todo
            assert os.listdir(path) == ['complete']
    # A run without workers (or a pytest started by a test, which inherits
    # the worker's environment but not its config) uses its own directory.
    alone = _request(run / 'popen-gw0' / 'inner', worker=False)
    with made_once(alone, 'model') as (path, todo):
        assert todo and path == run / 'popen-gw0' / 'inner' / 'model'
