"""Build the asr_lit documentation site into _docs/ without Quarto (called by .ci/build_docs).

Steps, the same as `nbdev_docs` up to the point where it would call Quarto:
1. nbdev's notebook processing (`nbdev.serve.proc_nbs`): nbs/ -> _proc/, with front matter from the
   title cell, hidden cells removed, `show_doc` cells executed, doc links added.
   We call `proc_nbs` directly and not `nbdev_proc_nbs`: that one starts with `_ensure_quarto()`, which
   without Quarto runs nbdev's Quarto installer (sudo + download, then `pip install -e .[dev]`).
2. _proc/_quarto.yml is written from the top-level _quarto.yml (the single site configuration), with the
   sidebar entries whose notebooks do not exist (yet) left out, so a partial set of notebooks still builds.
3. smalldocs (pure-Python renderer of Quarto website projects) renders _proc/ into _proc/_docs, which then
   replaces ./_docs, as `nbdev_docs` does.

Fails (exit 1) on a notebook that cannot be processed, on no pages, or on a broken internal link.
"""

import json
import os
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


def log(msg: str) -> None:
    print(f"build_docs: {msg}", flush=True)


def main() -> int:
    os.chdir(ROOT)
    from nbdev.config import get_config
    from nbdev.serve import proc_nbs

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
    rel_nbs = os.path.relpath(nbs, ROOT)
    if cache.exists():  # notebooks deleted or renamed in nbs/ must not linger in _proc/
        for f in cache.rglob("*.ipynb"):
            r = f.relative_to(cache)
            if r.parts[0] != doc_path.name and not (nbs / r).exists():
                f.unlink()
    n_workers = int(os.environ.get("ASR_LIT_DOCS_WORKERS", min(os.cpu_count() or 1, 4)))
    proc_nbs(rel_nbs, n_workers=n_workers)
    log(f"processed notebooks into {cache.relative_to(ROOT)}/ in {time.time() - t0:.1f}s")

    # 2. The site configuration, pruned to the pages that exist.
    site = site_config()
    sb = (site.get("website") or {}).get("sidebar")
    if isinstance(sb, dict):
        sb["contents"], missing = prune(sb.get("contents") or [], lambda p: (cache / p).is_file())
        for m in missing:
            log(f"note: sidebar page {m} does not exist yet; left out of this build")
    listed = set(sidebar_pages(site))
    present = sorted(str(p.relative_to(cache)) for p in cache.rglob("*.ipynb") if p.relative_to(cache).parts[0] != doc_path.name and not any(x.startswith(("_", ".")) for x in p.relative_to(cache).parts))
    for p in present:
        if p not in listed:
            log(f"warning: {p} is not in the sidebar of _quarto.yml; add it in reading order")
    header = "# Written by .ci/build_docs from ../_quarto.yml (sidebar pruned to existing pages). Do not edit.\n"
    (cache / "_quarto.yml").write_text(header + yaml.safe_dump(site, sort_keys=False, allow_unicode=True), encoding="utf-8")

    # 3. Render with smalldocs, then replace ./_docs.
    t0 = time.time()
    from smalldocs.config import BuildError, ConfigError
    from smalldocs.site import build

    out = cache / doc_path.name
    if out.exists():
        shutil.rmtree(out)
    try:
        built = build(cache, quiet=True)
    except (BuildError, ConfigError) as e:
        log(f"smalldocs failed: {e}")
        return 1
    broken = [w for w in built.warnings if "broken link" in w]
    for w in built.warnings:
        if w not in broken and "shown but not run" not in w:  # smalldocs runs no code: it shows saved outputs
            log(f"smalldocs warning: {w}")
    for w in broken:
        log(f"error: {w}")
    if broken:
        return 1
    if doc_path.exists():
        shutil.rmtree(doc_path)
    shutil.move(str(out), str(doc_path))
    pages = sorted(str(p.out) for p in built.pages.values())
    (doc_path / ".buildinfo").write_text(json.dumps({"built": time.time(), "pages": pages}, indent=1) + "\n")
    log(f"rendered {len(pages)} page(s) into {doc_path.relative_to(ROOT)}/ in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":  # proc_nbs uses spawned worker processes
    sys.exit(main())
