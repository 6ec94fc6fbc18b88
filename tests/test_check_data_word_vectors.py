"""tools/dataset_converters/make_word_vectors.py: the sum of each attribute
name's word vectors, words not found reported, empty rows refused.

The tool runs in this process (it imports the package, which takes seconds
to start); one test runs it as a command.
"""
import functools
import importlib.util
import io
import os
import os.path as osp
import subprocess
import sys
import types
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

from zeromamba_mm.utils.word_vectors import load_word_vectors

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'make_word_vectors.py')
VECTORS = {
    'bill': [1.0, 0.0, 2.0],
    'curved': [0.5, -1.0, 0.0],
    'red': [0.0, 3.0, 1.0],
    'wing': [2.0, 2.0, -2.0],
}


def _write(tmp_path, names, header=True):
    emb = tmp_path / 'emb.txt'
    lines = [f'{len(VECTORS)} 3'] if header else []
    lines += [f'{w} ' + ' '.join(map(str, v)) for w, v in VECTORS.items()]
    emb.write_text('\n'.join(lines) + '\n')
    attrs = tmp_path / 'attributes.txt'
    attrs.write_text('\n'.join(names) + '\n')
    return str(emb), str(attrs)


@functools.lru_cache()
def _tool():
    spec = importlib.util.spec_from_file_location('make_word_vectors', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    """Run the tool's ``main`` with ``args`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, [TOOL, *map(str, args)]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = _tool().main()
            except SystemExit as exit_:  # argparse's errors
                code = exit_.code
    finally:
        sys.argv = argv
    return types.SimpleNamespace(
        returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def _run_command(*args):
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True,
                          text=True,
                          env=env)


def test_sums_the_words_of_each_name(tmp_path):
    emb, attrs = _write(tmp_path, ['has_bill_shape::curved', 'Wing: red'])
    out = tmp_path / 'w2v.npy'
    proc = _run(emb, attrs, out, '--ignore', 'has')
    assert proc.returncode == 0, proc.stderr
    expected = np.array([
        np.add(VECTORS['bill'], VECTORS['curved']),  # 'shape' is unknown
        np.add(VECTORS['wing'], VECTORS['red'])
    ])
    got = load_word_vectors(str(out), num_attributes=2, dim=3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert '1 word(s) not found: shape' in proc.stdout


def test_glove_without_header_and_empty_attribute(tmp_path):
    emb, attrs = _write(tmp_path, ['bill', 'stripes'], header=False)
    out = tmp_path / 'w2v.npy'
    proc = _run(emb, attrs, out)
    assert proc.returncode == 1 and not out.exists()
    assert "1: 'stripes'" in proc.stderr
    proc = _run(emb, attrs, out, '--allow-empty')
    assert proc.returncode == 0
    np.testing.assert_array_equal(np.load(out)[1], 0)
    proc = _run(emb, attrs, out, '--allow-empty')
    assert proc.returncode != 0 and '--force' in proc.stderr


def _run_on(tmp_path, text, names=('bill', 'wing')):
    emb = tmp_path / 'emb.txt'
    emb.write_text(text)
    attrs = tmp_path / 'attributes.txt'
    attrs.write_text('\n'.join(names) + '\n')
    out = tmp_path / 'w2v.npy'
    return _run(emb, attrs, out), out


@pytest.mark.parametrize('bad, token', [('nan', 'nan'), ('inf', 'inf'),
                                        ('-Infinity', '-Infinity'),
                                        ('NaN', 'NaN')])
def test_nan_and_inf_are_refused(tmp_path, bad, token):
    proc, out = _run_on(tmp_path, f'bill 1 0 2\nwing 2 {bad} -2\n')
    assert proc.returncode == 1 and not out.exists()
    assert f"emb.txt, line 2: value 2 of the vector is '{token}'" \
        in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('bad', ['abc', '1,5', '0x1G'])
def test_non_numeric_values_are_named(tmp_path, bad):
    proc, out = _run_on(tmp_path, f'2 3\nbill 1 0 2\nwing 2 {bad} -2\n')
    assert proc.returncode == 1 and not out.exists()
    assert f"emb.txt, line 3: value 2 of the vector, '{bad}', is not a " \
        'number' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_tabs_and_repeated_spaces_are_separators(tmp_path):
    text = ('4 3\r\n\n'
            'bill\t1.0\t0.0\t2.0\n'
            'wing  2.0   2.0 -2.0  \n'
            'red\t \t0 3 1\n'
            'curved 0.5 -1 0\n')
    proc, out = _run_on(tmp_path, text, names=('bill', 'wing red'))
    assert proc.returncode == 0, proc.stderr
    expected = [VECTORS['bill'], np.add(VECTORS['wing'], VECTORS['red'])]
    np.testing.assert_array_equal(np.load(out), expected)


@pytest.mark.parametrize('text, message', [
    ('2 3\nbill 1 0\nwing 2 2 -2\n',
     "line 2: 2 values after 'bill', but the word2vec header (line 1"),
    ('bill 1 0 2\nbig wing 2 2 -2\n',
     "line 2: 4 values after 'big', but line 1 gives 3"),
    ('bill 1 0 2\nwing\n', "line 2: 'wing' holds a word but no vector"),
    ('\n\n', 'holds no word vectors'),
])
def test_rows_of_the_wrong_dimension(tmp_path, text, message):
    proc, out = _run_on(tmp_path, text)
    assert proc.returncode == 1 and not out.exists()
    assert message in proc.stderr and 'Traceback' not in proc.stderr


def test_missing_files_are_named(tmp_path):
    attrs = tmp_path / 'attributes.txt'
    attrs.write_text('bill\n')
    proc = _run_command(tmp_path / 'absent.txt', attrs, tmp_path / 'w2v.npy')
    assert proc.returncode == 1
    assert 'Embedding file not found' in proc.stderr
    assert 'absent.txt' in proc.stderr and 'Traceback' not in proc.stderr


def test_a_directory_as_output_is_refused_even_with_force(tmp_path):
    emb, attrs = _write(tmp_path, ['bill', 'wing'])
    out = tmp_path / 'w2v.npy'
    out.mkdir()
    proc = _run(emb, attrs, out, '--force')
    assert proc.returncode == 2, proc.stderr
    assert f'{out} is a directory; give the output file name' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert list(out.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if '.tmp-' in p.name]
    # --force replaces a file, through a temporary file and a rename.
    out.rmdir()
    out.write_bytes(b'old')
    assert _run(emb, attrs, out, '--force').returncode == 0
    np.testing.assert_array_equal(
        np.load(out), [VECTORS['bill'], VECTORS['wing']])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'attributes.txt', 'emb.txt', 'w2v.npy'
    ]


def test_attribute_names_must_be_utf8(tmp_path):
    emb, attrs = _write(tmp_path, ['bill'])
    with open(attrs, 'wb') as f:
        f.write('bill\ncurved wing\n'.encode() + 'caf\xe9\n'.encode('latin-1'))
    proc = _run(emb, attrs, tmp_path / 'w2v.npy')
    assert proc.returncode == 2
    assert f'{attrs}, line 3: not UTF-8' in proc.stderr
    assert not (tmp_path / 'w2v.npy').exists()
