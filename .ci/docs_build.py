"""Build the asr_lit documentation site into _docs/ without Quarto (called by .ci/build_docs).

Steps, the same as `nbdev_docs` up to the point where it would call Quarto:
1. nbdev's notebook processing (nbdev's `FilterDefaults` processors, as `nbdev.serve.proc_nbs` runs them):
   nbs/ -> _proc/, with front matter from the title cell, hidden cells removed, `show_doc` cells executed,
   doc links added. Not `nbdev_proc_nbs`: that starts with `_ensure_quarto()`, which without Quarto runs
   nbdev's Quarto installer (sudo + download, then `pip install -e .[dev]`).
   One difference from nbdev: to render `show_doc`, nbdev executes the exported cells, the import cells,
   the show_doc cells *and* every cell that mixes imports with other code (warning "Found cells containing
   imports and other code"), replacing that cell's saved output with a fresh run (a whole experiment, in
   this project). Here such cells are not run, so every page shows the outputs saved in the notebook and
   the build runs no experiment. ASR_LIT_DOCS_NBDEV_EXEC=1 restores nbdev's behaviour exactly.
2. _proc/_smalldocs/ is staged for smalldocs: each processed notebook under the name of the page nbdev
   gives it (its `output-file`: 00_data.ipynb -> data.html, which Quarto honours and smalldocs ignores;
   nbdev's doc links point there), Markdown links to notebooks renamed to match, and _quarto.yml written
   from the top-level _quarto.yml (the single site configuration) with the sidebar entries whose notebooks
   do not exist (yet) left out, so that a partial set of notebooks still builds.
3. smalldocs (a pure-Python renderer of Quarto website projects) renders it; doc links to the published
   site (settings.ini doc_host + doc_baseurl) are made relative; the result replaces ./_docs, as
   `nbdev_docs` does. _docs/.buildinfo maps each notebook to its page.

Fails (exit 1) on a notebook that cannot be processed, on no pages, or on a broken internal link.
"""

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_quarto.yml"


def sidebar_entries(contents: list) -> list[str]:
    "Flatten a Quarto sidebar `contents:` list into the page files it names, in reading order."
    out = []
    for c in contents or []:
        if isinstance(c, str):
            if "://" not in c:
                out.append(c)
        elif isinstance(c, dict):
            href = c.get("href") or c.get("file")
            if href and "://" not in str(href):
                out.append(str(href))
            out += sidebar_entries(c.get("contents") or [])
    return out


def site_config(path: Path = CONFIG) -> dict:
    "Read the site configuration."
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def sidebar_pages(cfg: dict | None = None) -> list[str]:
    "The page files listed in the sidebar of `_quarto.yml`, in reading order."
    cfg = site_config() if cfg is None else cfg
    sb = (cfg.get("website") or {}).get("sidebar") or {}
    sb = sb[0] if isinstance(sb, list) else sb
    return sidebar_entries(sb.get("contents") or [])


def prune(contents: list, exists) -> tuple[list, list[str]]:
    "Drop sidebar entries whose page file does not exist, and sections left empty. Returns (contents, missing)."
    out, missing = [], []
    for c in contents or []:
        if isinstance(c, str):
            if "://" in c or exists(c):
                out.append(c)
            else:
                missing.append(c)
        elif isinstance(c, dict):
            c = dict(c)
            href = c.get("href") or c.get("file")
            if href and "://" not in str(href) and not exists(str(href)):
                missing.append(str(href))
                c.pop("href", None), c.pop("file", None)
                if "contents" not in c:
                    continue
            if "contents" in c:
                kids, miss = prune(c["contents"], exists)
                missing += miss
                if not kids and not (c.get("href") or c.get("file")):
                    continue
                c["contents"] = kids
            out.append(c)
    return out, missing


MIXED = "Found cells containing imports and other code"


def _proc_one(item: tuple) -> None:
    "Process one notebook in a worker process, as `nbdev.serve_drv.main` does."
    import warnings

    import nbdev.processors as P
    from nbdev.serve_drv import main as serve_main

    src, dst, md, nbdev_exec = item
    if not nbdev_exec and not getattr(P._do_eval, "_asr_lit", False):
        orig = P._do_eval

        def _do_eval(cell):  # nbdev's choice of cells to run for show_doc, less the mixed import+code cells
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run = orig(cell)
            if any(MIXED in str(w.message) for w in caught):
                return None
            return run

        _do_eval._asr_lit = True
        P._do_eval = _do_eval
    serve_main((Path(src), Path(dst), P.FilterDefaults if md is None else md))


def proc_notebooks(cfg, rel_nbs: str, n_workers: int, nbdev_exec: bool) -> Path:
    "nbdev's `proc_nbs` (nbs/ -> _proc/, only what changed), with `_proc_one` as the notebook step."
    from fastcore.parallel import parallel
    from nbdev.doclinks import nbglob
    from nbdev.serve import _proc_file

    cache = cfg.config_path / "_proc"
    path = Path(rel_nbs)
    files = nbglob(path, func=Path, file_glob="", file_re="")
    for extra in ("_quarto.yml", "_brand.yml"):
        if (path / extra).exists():
            files.append(path / extra)
    import nbdev.processors

    # As nbdev: settings.ini or the processing code newer than the cache empties it; so does a change of mode.
    chk_mtime = max(cfg.config_file.stat().st_mtime, Path(__file__).stat().st_mtime, Path(nbdev.processors.__file__).stat().st_mtime)
    mode, marker = ("nbdev-exec" if nbdev_exec else "saved-outputs"), cache / ".asr_lit_docs_mode"
    cache.mkdir(parents=True, exist_ok=True)
    if cache.stat().st_mtime < chk_mtime or not marker.exists() or marker.read_text() != mode:
        shutil.rmtree(cache)
        cache.mkdir()
        marker.write_text(mode)
    cache_mtime = cache.stat().st_mtime
    if cache.exists():  # notebooks deleted or renamed in nbs/ must not linger in _proc/
        for f in cache.rglob("*.ipynb"):
            if not (path / f.relative_to(cache)).exists():
                f.unlink()
    todo = files.map(_proc_file, mtime=cache_mtime, cache=cache, path=path).filter()
    items = [(str(s), str(d), x if isinstance(x, str) else None, nbdev_exec) for s, d, x in todo]
    if items:
        # Spawned workers find `_proc_one` by importing this file as the module `docs_build`.
        here = str(Path(__file__).resolve().parent)
        sys.path.insert(0, here)
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
        import docs_build

        parallel(docs_build._proc_one, items, n_workers=min(n_workers, len(items)), pause=0.01, method="spawn")
    cache.touch()
    return cache


def mixed_cells(nbs: Path) -> list[str]:
    "The cells that nbdev would run for show_doc only because they mix imports with other code."
    import warnings

    from nbdev.process import NBProcessor
    from nbdev.processors import _do_eval

    out = []
    for f in sorted(nbs.glob("*.ipynb")):
        for c in NBProcessor(f, procs=[]).nb.cells:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _do_eval(c)
            if any(MIXED in str(w.message) for w in caught):
                out.append(f"{f.name} cell {c.idx_}: {c.source.splitlines()[0][:70]}")
    return out


def page_html(nb: str) -> str:
    "The page nbdev makes of a notebook (its `output-file`): 00_data.ipynb -> data.html, as Quarto writes it."
    from nbdev.doclinks import _nbpath2html

    return _nbpath2html(Path(nb)).as_posix()


def rename(contents: list, names: dict) -> list:
    "Rename the notebooks of a sidebar `contents:` list by `names`."
    out = []
    for c in contents:
        if isinstance(c, str):
            out.append(names.get(c, c))
        elif isinstance(c, dict):
            c = dict(c)
            for k in ("href", "file"):
                if c.get(k) in names:
                    c[k] = names[c[k]]
            if "contents" in c:
                c["contents"] = rename(c["contents"], names)
            out.append(c)
    return out


def relink(nb_json: str, names: dict) -> str:
    "Point Markdown links to a notebook (`](00_data.ipynb#x)`) at its staged name, as Quarto resolves them."
    for src, dst in names.items():
        nb_json = re.sub(r"(\]\(|href=\\\")" + re.escape(src) + r"(?=[#)\\])", lambda m: m.group(1) + dst, nb_json)
    return nb_json


def log(msg: str) -> None:
    print(f"build_docs: {msg}", flush=True)


def main() -> int:
    os.chdir(ROOT)
    from nbdev.config import get_config

    cfg = get_config()
    nbs = cfg.nbs_path
    cache = cfg.config_path / "_proc"
    doc_path = cfg.doc_path
    if not CONFIG.exists():
        log(f"{CONFIG} is missing")
        return 1
    link = nbs / "_quarto.yml"
    if not link.exists() or link.resolve() != CONFIG.resolve():
        log(f"warning: {link.relative_to(ROOT)} should be a symlink to ../_quarto.yml (nbdev_docs reads it)")

    # 1. nbdev's processing. A path relative to the repo root: nbdev skips any file whose absolute path
    # has a part starting with '.', which would drop every notebook in a checkout under a hidden folder.
    t0 = time.time()
    nbdev_exec = os.environ.get("ASR_LIT_DOCS_NBDEV_EXEC", "") == "1"
    n_workers = int(os.environ.get("ASR_LIT_DOCS_WORKERS", min(os.cpu_count() or 1, 4)))
    os.environ["PYTHONWARNINGS"] = f"ignore:{MIXED}:UserWarning"  # for the workers; summed up below instead
    cache = proc_notebooks(cfg, os.path.relpath(nbs, ROOT), n_workers, nbdev_exec)
    log(f"processed notebooks into {cache.relative_to(ROOT)}/ in {time.time() - t0:.1f}s")
    mixed = mixed_cells(nbs)
    if mixed:
        what = "re-ran them (ASR_LIT_DOCS_NBDEV_EXEC=1)" if nbdev_exec else "showed their saved outputs; nbdev_docs would re-run them"
        log(f"note: {len(mixed)} cell(s) mix imports with other code; this build {what}. nbdev's advice: imports in a cell of their own.")
        for m in mixed:
            log(f"  {m}")

    # 2. A copy of _proc/ for smalldocs: each notebook under the name of the page that nbdev gives it
    # (`output-file`, e.g. 00_data.ipynb -> data.html, which Quarto honours and smalldocs does not), and
    # the site configuration with the sidebar pruned to the pages that exist and renamed to match.
    stage = cache / "_smalldocs"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    names = {}  # notebook path relative to nbs/ -> staged notebook path
    for f in sorted(cache.rglob("*")):
        r = f.relative_to(cache)
        if not f.is_file() or any(x.startswith(("_", ".")) for x in r.parts[:-1]) or r.name.startswith("."):
            continue
        if r.name in ("_quarto.yml", "nbdev.yml", "sidebar.yml"):
            continue
        if f.suffix == ".ipynb" and not r.name.startswith("_"):
            names[r.as_posix()] = page_html(r.as_posix())[: -len(".html")] + ".ipynb"
        elif not r.name.startswith("_"):
            (stage / r).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, stage / r)
    for src, dst in names.items():
        (stage / dst).parent.mkdir(parents=True, exist_ok=True)
        (stage / dst).write_text(relink(( cache / src).read_text(encoding="utf-8"), names), encoding="utf-8")
    site = site_config()
    sb = (site.get("website") or {}).get("sidebar")
    if isinstance(sb, dict):
        sb["contents"], missing = prune(sb.get("contents") or [], lambda p: p in names)
        for m in missing:
            log(f"note: sidebar page {m} does not exist yet; left out of this build")
        sb["contents"] = rename(sb["contents"], names)
    listed = set(sidebar_pages())
    for p in sorted(names):
        if p not in listed:
            log(f"warning: {p} is not in the sidebar of _quarto.yml; add it in reading order")
    header = "# Written by .ci/build_docs from _quarto.yml: sidebar pruned to existing pages, named as nbdev names them.\n"
    (stage / "_quarto.yml").write_text(header + yaml.safe_dump(site, sort_keys=False, allow_unicode=True), encoding="utf-8")

    # 3. Render with smalldocs, then replace ./_docs.
    t0 = time.time()
    from smalldocs.config import BuildError, ConfigError
    from smalldocs.site import build

    out = stage / doc_path.name
    try:
        built = build(stage, quiet=True)
    except (BuildError, ConfigError) as e:
        log(f"smalldocs failed: {e}")
        return 1
    broken = [w for w in built.warnings if "broken link" in w]
    for w in built.warnings:
        # smalldocs runs no code (it shows saved outputs), and nbdev's `output-file` is the staged name
        if w not in broken and "shown but not run" not in w and "output-file is not read" not in w:
            log(f"smalldocs warning: {w}")
    for w in broken:
        log(f"error: {w}")
    if broken:
        return 1
    # nbdev writes doc links as absolute URLs of the published site (doc_host + doc_baseurl + page):
    # make those that point into this site relative, so that the local copy is whole and checkable.
    base = str((site.get("website") or {}).get("site-url") or "").rstrip("/") + "/"
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if base != "/" and base in text:
            up = "../" * (len(page.relative_to(out).parts) - 1)
            page.write_text(re.sub(r'href="' + re.escape(base) + r'([^"]*)"', lambda m: f'href="{up}{m.group(1) or "index.html"}"', text), encoding="utf-8")
    if doc_path.exists():
        shutil.rmtree(doc_path)
    shutil.move(str(out), str(doc_path))
    pages = {src: page_html(src) for src in sorted(names)}
    (doc_path / ".buildinfo").write_text(json.dumps({"built": time.time(), "pages": pages}, indent=1) + "\n")
    log(f"rendered {len(built.pages)} page(s) into {doc_path.relative_to(ROOT)}/ in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":  # proc_nbs uses spawned worker processes
    sys.exit(main())
