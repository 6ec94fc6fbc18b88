"""The package's shape: small files, imports at the top, one direction.

These rules keep each family in one short file and make the import graph
readable from the top of each file; each check names the file and line that
breaks it.
"""
import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'zeromamba_mm'
MAX_LINES = 450

#: Function-local imports of the package's own modules that are needed, with
#: the reason. Anything else belongs at the top of its file.
ALLOWED_LOCAL_IMPORTS = {
    # models.utils is imported by the backbones; resolving the VMamba
    # converter lazily (PEP 562 module __getattr__) breaks the cycle.
    ('models/utils/__init__.py', '..backbones'),
}


def _python_files() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob('*.py'))


def _module_name(path: Path) -> str:
    """Dotted name of the module of ``path`` (``pkg.__init__`` for a
    package, so that relative imports resolve from the package)."""
    return '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)


def _local_package_imports(text: str) -> Iterator[Tuple[int, str]]:
    """(line, module as written) of imports of zeromamba_mm inside
    functions of the source ``text``."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom):
                module = '.' * sub.level + (sub.module or '')
                if sub.level or module.startswith('zeromamba_mm'):
                    yield sub.lineno, module
            elif isinstance(sub, ast.Import):
                for alias in sub.names:
                    if alias.name.startswith('zeromamba_mm'):
                        yield sub.lineno, alias.name


def _imported_modules(text: str, module_name: str) -> Iterator[Tuple[int,
                                                                     str]]:
    """(line, absolute module) of every import in the source ``text`` of
    module ``module_name``; ``from x import y`` also yields ``x.y``."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            base = module_name.split('.')[:-node.level] if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f'{module}.{alias.name}'
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_checks_find_what_they_look_for():
    """The checks below can fail: local and upward relative imports are
    found and resolved."""
    text = ('import os\n'
            'def f():\n'
            '    from ..visualization import curves\n'
            '    import zeromamba_mm.ops\n'
            '    import numpy\n')
    assert list(_local_package_imports(text)) == [
        (3, '..visualization'), (4, 'zeromamba_mm.ops')]
    modules = {
        m for _, m in _imported_modules(
            text, 'zeromamba_mm.evaluation.metrics.probe')}
    assert 'zeromamba_mm.evaluation.visualization.curves' in modules
    modules = {
        m for _, m in _imported_modules(text, 'zeromamba_mm.evaluation.probe')}
    assert 'zeromamba_mm.visualization.curves' in modules
    assert _module_name(PACKAGE / 'ops' / '__init__.py') == (
        'zeromamba_mm.ops.__init__')


@pytest.mark.parametrize(
    'path', list(_python_files()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_file_is_short(path):
    lines = len(path.read_text(encoding='utf-8').splitlines())
    assert lines <= MAX_LINES, (
        f'{path.relative_to(PACKAGE.parent)} has {lines} lines (at most '
        f'{MAX_LINES}): split it by family, as models/backbones/vmamba*.py '
        'are split.')


def test_no_function_local_package_imports():
    found = []
    for path in _python_files():
        rel = path.relative_to(PACKAGE).as_posix()
        for line, module in _local_package_imports(path.read_text()):
            if (rel, module) not in ALLOWED_LOCAL_IMPORTS:
                found.append(f'{rel}:{line} imports {module}')
    assert not found, (
        'Imports of zeromamba_mm inside functions (move them to the top of '
        'the file, or add them to ALLOWED_LOCAL_IMPORTS with the reason):\n' +
        '\n'.join(found))


def test_allowed_local_imports_are_still_needed():
    """An entry whose import has moved to the top is removed, so the list
    stays the list of real exceptions."""
    present = {(path.relative_to(PACKAGE).as_posix(), module)
               for path in _python_files()
               for _, module in _local_package_imports(path.read_text())}
    assert ALLOWED_LOCAL_IMPORTS <= present, ALLOWED_LOCAL_IMPORTS - present


def test_evaluation_does_not_import_visualization():
    """Metrics return numbers; pictures are drawn from them elsewhere."""
    found = [
        f'{path.relative_to(PACKAGE.parent)}:{line} imports {module}'
        for path in sorted((PACKAGE / 'evaluation').rglob('*.py'))
        for line, module in _imported_modules(path.read_text(),
                                              _module_name(path))
        if module.startswith('zeromamba_mm.visualization')
    ]
    assert not found, '\n'.join(found)
