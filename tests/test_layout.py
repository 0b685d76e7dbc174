"""The package's layout: modules and notebooks import only what comes before them in the reading order.

Each module is exported by one numbered notebook (`#| default_exp`); a notebook's number is its place in the
reading order. A module (at any depth: imports inside functions too) and a notebook may import only modules of
notebooks at or before their own; nothing is loaded by importlib. `asr_lit/__init__.py` is the one exception: it
imports the registry (19_methods), so that every program sees every built-in method.
"""
import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))

def _order():
    "module name -> (reading-order position, notebook)"
    out = {}
    for i, p in enumerate(NBS):
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', p.read_text())
        if m: out['asr_lit.' + m.group(1)] = (i, p.name)
    return out

def _imported(tree, module):
    "asr_lit modules a parsed source imports (relative imports resolved against `module`)."
    pkg = module.rsplit('.', 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('asr_lit.'): yield a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = pkg.split('.')[:len(pkg.split('.')) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            if base == 'asr_lit':
                for a in node.names: yield f'asr_lit.{a.name}'
            elif base.startswith('asr_lit.'): yield base

def _later(importer_pos, names, order):
    return sorted({n for n in names if n in order and order[n][0] > importer_pos})

def test_every_module_has_a_notebook():
    order = _order()
    mods = {'asr_lit.' + '.'.join(p.relative_to(ROOT/'asr_lit').with_suffix('').parts)
            for p in (ROOT/'asr_lit').rglob('*.py') if not p.name.startswith('_')}
    assert mods <= set(order), sorted(mods - set(order))

def test_modules_import_only_earlier_modules():
    order, bad = _order(), {}
    for mod, (pos, nb) in order.items():
        path = ROOT/(mod.replace('.', '/') + '.py')
        src = path.read_text()
        assert 'importlib' not in src, f'{mod} loads modules by importlib'
        later = _later(pos, _imported(ast.parse(src), mod), order)
        if later: bad[f'{mod} ({nb})'] = [f'{n} ({order[n][1]})' for n in later]
    assert not bad, f'modules importing from later in the reading order: {bad}'

def test_notebooks_import_only_earlier_modules():
    order, bad = _order(), {}
    for pos, p in enumerate(NBS):
        cells = [''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code']
        code = '\n'.join(l for c in cells for l in c.splitlines() if not l.lstrip().startswith(('%', '!', '#|')))
        later = _later(pos, _imported(ast.parse(code), 'asr_lit.x'), order)
        if later: bad[p.name] = [f'{n} ({order[n][1]})' for n in later]
    assert not bad, f'notebooks importing from later in the reading order: {bad}'

def test_the_registry_is_complete_from_any_import():
    import subprocess, sys
    code = "import asr_lit.engine as e; print(len(e.METHODS), 'asr' in e.METHODS)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 10 and out[1] == 'True', out
