"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does with Quarto, which cannot be installed here).
Markdown cells verbatim, visible code cells as Python blocks, text outputs and tables as text blocks; figures are
left to the documentation site. `python .ci/readme.py --check` fails if README.md is out of date."""
import json, sys, re
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nb = json.loads((root/'nbs/index.ipynb').read_text())
out = ["<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->", ""]
for c in nb['cells']:
    src = ''.join(c['source'])
    if c['cell_type'] == 'markdown':
        out += [re.sub(r'\]\((\d\d_[a-z_]+|index)\.ipynb\)', r'](nbs/\1.ipynb)', src), '']
        continue
    if src.lstrip().startswith('#| hide') or 'import ' in src.split('\n')[0] and len(src.splitlines()) <= 4: continue
    if src.startswith('fig, ax'): continue
    texts = []
    for o in c.get('outputs', []):
        if o.get('output_type') == 'stream': texts.append(''.join(o['text']))
        elif 'text/plain' in o.get('data', {}) and 'image/png' not in o['data']: texts.append(''.join(o['data']['text/plain']))
    if texts: out += ['```', ''.join(t if t.endswith('\n') else t + '\n' for t in texts).rstrip(), '```', '']
text = '\n'.join(out).rstrip() + '\n'
if '--check' in sys.argv:
    if (root/'README.md').read_text() != text: sys.exit("README.md is out of date: run python .ci/readme.py")
else: (root/'README.md').write_text(text)
