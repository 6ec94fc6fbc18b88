"""Run tools/train.py, pausing right after the work dir is claimed.

Used by ``tests/test_tools_start.py`` to start two real training processes
into one work dir at the same time::

    python tests/_gated_train.py GATE_FILE tools/train.py CONFIG ...

Once the run holds the work dir (after ``claim_work_dir`` and before the
runner is built) it prints ``CLAIMED <pid>`` and waits until GATE_FILE
exists, so that the test decides when the other start is made.
"""
import os
import os.path as osp
import runpy
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

if __name__ == '__main__':
    gate, script = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import _common

    build_runner = _common.build_runner

    def gated_build_runner(cfg):
        print(f'CLAIMED {os.getpid()}', flush=True)
        while not osp.exists(gate):
            time.sleep(0.05)
        return build_runner(cfg)

    _common.build_runner = gated_build_runner
    runpy.run_path(script, run_name='__main__')
