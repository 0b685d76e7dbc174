"""Browser check of the documentation site that `nbdev_docs` builds with Quarto (`bash .ci/docs`).

Serves `_docs/` on 127.0.0.1 (random free port) and loads every page in headless Chromium (Debian's
`chromium`), driven over the Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: standard library
only, no driver, no browser download). The pages are found in the built site, from the sidebar of its home
page, and compared with the sidebar of `_quarto.yml`; no notebook name is written here. For each page it
checks the HTTP status and the title, that the page logged no console error and threw no script error, that
no same-site request failed, that every <img> loaded and that a page whose notebook saves image outputs shows
them, that the pages of notebooks with exported code or `show_doc` calls show rendered `show_doc` entries,
that every internal link resolves to a page and its #anchor (links to the published site, `site-url` in
`_quarto.yml`, as nbdev writes doc links, are checked against the local copy), that the sidebar lists the
pages in the order of `_quarto.yml`, and that the search box finds pages. Screenshots go to artifacts/
(ASR_LIT_DOCS_SCREENSHOTS=all: every page, whole, into artifacts/pages/).

The site is (re)built once per session (`bash .ci/docs`) when `_docs/` is missing or older than its sources.
Without Chromium, or without Quarto and its shared installer, the test is skipped with the reason, except
under CI=true, where it fails (`.ci/run` installs both).
"""

import base64
import contextlib
import functools
import http.server
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "_docs"
NBS = ROOT / "nbs"
CONFIG = ROOT / "_quarto.yml"
ARTIFACTS = ROOT / "artifacts"
STAMP = DOCS / ".buildinfo"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1400,1000",
]  # fmt: skip


def skip_or_fail(msg: str):
    "Skip with `msg`, or fail under CI, where everything the check needs is installed."
    if IN_CI:
        pytest.fail(msg + " -- required under CI (.ci/run installs it)")
    pytest.skip(msg)


# ---------------------------------------------------------------- what the site should hold


def site_config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8")) or {}


def sidebar_entries(contents: list) -> list[str]:
    "Flatten a Quarto sidebar `contents:` list into the files it names, in reading order."
    out = []
    for c in contents or []:
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, dict):
            if href := c.get("href") or c.get("file"):
                out.append(str(href))
            out += sidebar_entries(c.get("contents") or [])
    return [p for p in out if "://" not in p]


def sidebar_notebooks() -> list[str]:
    "The notebooks (relative to nbs/) of the sidebar of _quarto.yml, in reading order."
    sb = (site_config().get("website") or {}).get("sidebar") or {}
    sb = sb[0] if isinstance(sb, list) else sb
    return sidebar_entries(sb.get("contents") or [])


def page_of(nb: str) -> str:
    "The page nbdev makes of a notebook (its `output-file`): 00_data.ipynb -> data.html."
    from nbdev.doclinks import _nbpath2html

    return _nbpath2html(Path(nb)).as_posix()


def site_url() -> str:
    "The published site's address (`site-url`), ending in '/': nbdev's doc links start with it."
    return str((site_config().get("website") or {}).get("site-url") or "").rstrip("/") + "/"


def notebook_cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text(encoding="utf-8")).get("cells", [])


def _directives(src: str) -> dict:
    return {m.group(1).rstrip(":"): m.group(2).strip() for m in re.finditer(r"^#\|\s*([\w-]+:?)\s*(.*)$", src, re.M)}


def shown_image_outputs(nb: Path) -> int:
    "How many image outputs a notebook saves in cells whose output the page shows."
    n = 0
    for c in notebook_cells(nb):
        if c.get("cell_type") != "code":
            continue
        d = _directives("".join(c.get("source", "")))
        if "hide" in d or d.get("include") == "false" or d.get("output") == "false":
            continue
        n += sum(1 for o in c.get("outputs", []) if any(k.startswith("image/") for k in o.get("data", {})))
    return n


def documents_api(nb: Path) -> bool:
    "Whether a notebook calls show_doc or exports code (nbdev documents exported code itself)."
    code = ["".join(c.get("source", "")) for c in notebook_cells(nb) if c.get("cell_type") == "code"]
    return any("show_doc(" in c or re.search(r"^#\|\s*export\b", c, re.M) for c in code)


def notebook_title(nb: Path) -> str:
    "The title a notebook gives its page: `title:` front matter, else its first `# heading`."
    for c in notebook_cells(nb):
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "raw" and (m := re.search(r"^title:\s*['\"]?(.+?)['\"]?\s*$", src, re.M)):
            return m.group(1)
        if c.get("cell_type") == "markdown" and (m := re.search(r"^#\s+(.+?)\s*$", src, re.M)):
            return re.sub(r"[*_`]", "", m.group(1))
    return nb.stem


def _sources() -> list[Path]:
    "Every file the site is built from."
    out = [CONFIG, ROOT / "settings.ini", ROOT / ".ci" / "docs"]
    for base in (NBS, ROOT / "asr_lit"):
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and not f.endswith(".pyc")]
    return [p for p in out if p.exists()]


def _stale() -> str | None:
    "Why the site needs a build, or None when _docs/ is newer than every source."
    if not STAMP.exists():
        return "_docs/ has not been built by .ci/docs"
    built = STAMP.stat().st_mtime
    newer = [p for p in _sources() if p.stat().st_mtime > built]
    if newer:
        return f"{len(newer)} source(s) changed since the last build, e.g. {newer[0].relative_to(ROOT)}"
    if any(not (DOCS / page_of(p)).exists() for p in sidebar_notebooks() if (NBS / p).exists()):
        return "a page is missing from _docs/"
    return None


# ---------------------------------------------------------------- Chromium over the DevTools pipe


def find_chromium() -> str | None:
    "The Chromium executable: $CHROMIUM, else Debian's chromium, else another Chrome on PATH."
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((p for n in ("chromium", "chromium-browser", "google-chrome", "chrome") if (p := shutil.which(n))), None)


class CDPError(RuntimeError):
    "A DevTools command that failed or timed out."


class Chromium:
    "Headless Chromium driven by the Chrome DevTools Protocol over `--remote-debugging-pipe` (fds 3 and 4)."

    def __init__(self, exe: str, profile: str):
        import fcntl

        to_r, to_w = os.pipe()  # we write commands; Chromium reads them on fd 3
        from_r, from_w = os.pipe()  # Chromium writes replies on fd 4; we read them
        # Move the child's ends above 9 so the shell can put them on 3 and 4 without clobbering either.
        child_r, child_w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.close(to_r), os.close(from_w)
        script = f'exec 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-; exec "$@"'
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", script, "chromium", *cmd], pass_fds=(child_r, child_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        os.close(child_r), os.close(child_w)
        self.w, self.r = to_w, from_r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for Chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise CDPError("Chromium closed the DevTools pipe:\n" + "\n".join(self.stderr[-20:]))
                self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        "Send one command and wait for its reply; events that arrive meanwhile are kept in `events`."
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise CDPError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        "Wait for an event of a session, looking first at the ones already kept."
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session:
                    return self.events.pop(i)
            m = self._read(deadline)
            if "method" in m:
                self.events.append(m)

    def close(self):
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:  # its own process group (start_new_session): Chromium and its helpers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for fd in (self.w, self.r):
            with contextlib.suppress(OSError):
                os.close(fd)


class Tab:
    "One page target of the browser, with the network responses and script errors it saw."

    def __init__(self, browser: Chromium, width: int = 1400, height: int = 1000):
        self.b = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.s = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=self.s)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=self.s)

    def goto(self, url: str, timeout: float = 30) -> dict:
        "Load a page and wait for its load event. Returns the main document's response."
        self.b.events.clear()
        res = self.b.send("Page.navigate", {"url": url}, session=self.s)
        if res.get("errorText"):
            raise CDPError(f"{url}: {res['errorText']}")
        self.b.wait_event("Page.loadEventFired", self.s, timeout)
        doc = next((e["params"]["response"] for e in self.b.events if e.get("method") == "Network.responseReceived" and e["params"].get("type") == "Document"), {})
        return doc

    def problems(self, origin: str) -> list[str]:
        "Since the last `goto`: same-site requests that failed or answered an HTTP error, uncaught script errors, console errors."
        urls, out = {}, []
        for e in self.b.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
            elif m == "Network.responseReceived" and p["response"]["url"].startswith(origin) and p["response"]["status"] >= 400:
                if p["type"] == "Other" and p["response"]["url"] == origin + "favicon.ico":
                    continue  # the browser's own guess when a site names no favicon
                out.append(f"HTTP {p['response']['status']} {p['response']['url']}")
            elif m == "Network.loadingFailed" and urls.get(p["requestId"], "").startswith(origin) and not p.get("canceled"):
                out.append(f"{p.get('errorText')} {urls[p['requestId']]}")
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(f"script error: {d.get('exception', {}).get('description') or d.get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                out.append(f"console.{p['type']}: {args}")
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                e = p["entry"]
                if e.get("url", "") == origin + "favicon.ico":
                    continue
                out.append(f"console error ({e.get('source')}): {e.get('text')} {e.get('url', '')}".rstrip())
        return out

    def eval(self, js: str, timeout: float = 30):
        "Evaluate an expression (a promise is awaited) and return its value."
        r = self.b.send("Runtime.evaluate", {"expression": js, "awaitPromise": True, "returnByValue": True}, session=self.s, timeout=timeout)
        if "exceptionDetails" in r:
            raise CDPError(f"script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False, max_height: int = 16000):
        "Save a PNG of the viewport, or of the whole page up to `max_height` pixels."
        params: dict = {"format": "png"}
        if full_page:  # a window as tall as the page, so that the fixed navbar and sidebar show once
            w, h = self.eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            vw, vh = self.eval("[window.innerWidth, window.innerHeight]")
            self.b.send("Emulation.setDeviceMetricsOverride", {"width": vw, "height": min(h, max_height), "deviceScaleFactor": 1, "mobile": False}, session=self.s)
            self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            params |= {"clip": {"x": 0, "y": 0, "width": w, "height": min(h, max_height), "scale": 1}}
        data = self.b.send("Page.captureScreenshot", params, session=self.s, timeout=60)["data"]
        if full_page:
            self.b.send("Emulation.setDeviceMetricsOverride", {"width": vw, "height": vh, "deviceScaleFactor": 1, "mobile": False}, session=self.s)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


# What each page reports: title, images, links, sidebar, ids, show_doc entries, leftover markup, overflow.
PAGE_REPORT_JS = r"""
(async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? i.decode().catch(() => null)
    : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  await document.fonts.ready;
  const main = document.querySelector('main') || document.body;
  const h1 = document.querySelector('h1.title, main h1');
  const mr = main.getBoundingClientRect();
  const scrolls = e => { for (let a = e.parentElement; a && a !== main; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return true; } return false; };
  // 8px of slack: inline code (its padding) at the end of a line may stick out a few pixels
  const overflow = [...main.querySelectorAll('*')].filter(e => {
      const r = e.getBoundingClientRect(); return r.width > 0 && r.right > mr.right + 8 && !scrolls(e); })
    .slice(0, 5).map(e => `<${e.tagName.toLowerCase()} class="${e.className}"> ${Math.round(e.getBoundingClientRect().right - mr.right)}px past the text column: ${(e.textContent || e.src || '').trim().slice(0, 60)}`);
  return {
    title: document.title,
    h1: h1 ? h1.textContent.trim() : null,
    images: imgs.map(i => ({src: (i.currentSrc || i.src).slice(0, 100), complete: i.complete, width: i.naturalWidth,
                            shown: i.getBoundingClientRect().width, in_main: main.contains(i)})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    sidebar: [...document.querySelectorAll('#quarto-sidebar a.sidebar-link[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    // a show_doc entry: a heading followed by the signature block, after nbdev's 'source' link
    show_docs: [...main.querySelectorAll('h2, h3, h4')].filter(h => {
        const n = h.nextElementSibling; return n && n.matches('div.sourceCode') && !n.closest('.cell'); })
      .map(h => h.textContent.trim()),
    source_links: [...main.querySelectorAll('a')].filter(a => a.textContent.trim() === 'source').length,
    raw_markup: [...main.querySelectorAll('p, li, td')].map(p => p.textContent.trim())
      .filter(t => /^(#{1,4} |```|:::|\{\{<|\[\^)/.test(t) || /\]\([^)\s]+\.(ipynb|html|md)(#[^)]*)?\)/.test(t)).map(t => t.slice(0, 80)),
    page_width: document.documentElement.scrollWidth, viewport: window.innerWidth,
    overflow,
  };
})()
"""


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site() -> Path:
    """The built site: runs .ci/docs (nbdev_docs with Quarto) when _docs/ is missing or older than its sources. Under
    pytest-xdist every worker that runs these checks gets here: a lock lets one build while the others wait for it."""
    import fcntl, hashlib
    lock = Path(tempfile.gettempdir()) / f"asr_lit-docs-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]}.lock"
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)   # released when the file closes
        why = _stale()
        if why:
            print(f"building the docs: {why}")
            r = subprocess.run(["bash", str(ROOT / ".ci" / "docs")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
            if r.returncode == 3:
                skip_or_fail(f"the docs site cannot be built without Quarto: {r.stderr.strip()}")
            assert r.returncode == 0, f".ci/docs failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert (DOCS / "index.html").exists(), "_docs/index.html was not built"
    return DOCS


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # the browser cancelled
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(folder: Path):
    "Serve `folder` on 127.0.0.1 on a free port; yields its base URL."
    httpd = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(site):
    with serve(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        skip_or_fail("Chromium is not installed, so the browser check of the docs site does not run: "
                     "install it with `bash .ci/install_chromium` (Debian: apt-get install chromium) or set $CHROMIUM")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="asr_lit_chromium_") as profile:
        b = Chromium(exe, profile)
        try:
            b.send("Browser.getVersion", timeout=60)
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def tab(browser):
    return Tab(browser)


def expected_pages() -> dict[str, str]:
    "{page: notebook} for the notebooks of the sidebar of _quarto.yml that exist, in reading order."
    return {page_of(nb): nb for nb in sidebar_notebooks() if (NBS / nb).is_file()}


@pytest.fixture(scope="module")
def visits(tab, server) -> dict:
    "Every page of the built site (the home page and its sidebar's pages), loaded once: {page: report}."
    def page(url: str) -> str:  # a same-site URL as a page of the site: http://127.0.0.1:N/ -> index.html
        return url[len(server):].partition("#")[0].partition("?")[0] or "index.html"

    tab.goto(urllib.parse.urljoin(server, "index.html"))
    found = [page(u) for u in tab.eval(PAGE_REPORT_JS)["sidebar"] if u.startswith(server)]
    pages = list(dict.fromkeys(["index.html"] + found))
    out = {}
    for p in pages:
        url = urllib.parse.urljoin(server, p)
        doc = tab.goto(url)
        report = tab.eval(PAGE_REPORT_JS)
        report |= {"url": url, "status": doc.get("status"), "problems": tab.problems(server), "sidebar_pages": [page(u) for u in report["sidebar"] if u.startswith(server)]}
        out[p] = report
        if p == "index.html":
            tab.screenshot(ARTIFACTS / "docs_home.png")
        if os.environ.get("ASR_LIT_DOCS_SCREENSHOTS") == "all":  # every page, whole, to look at
            tab.screenshot(ARTIFACTS / "pages" / f"{Path(p).stem}.png", full_page=True)
    # The ASR page, else the page with the most figures: its top, its first figure, and the whole page.
    shot = "asr.html" if "asr.html" in out else max(out, key=lambda p: (p != "index.html", len(out[p]["images"])))
    stem = Path(shot).stem
    tab.goto(out[shot]["url"])
    tab.eval(PAGE_REPORT_JS)
    tab.screenshot(ARTIFACTS / f"docs_{stem}.png")
    if out[shot]["images"]:
        tab.eval("(async () => { const i = document.querySelector('main img'); i.scrollIntoView({block: 'center', behavior: 'instant'});"
                 " await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); return true; })()")
        tab.screenshot(ARTIFACTS / f"docs_{stem}_figure.png")
    tab.screenshot(ARTIFACTS / f"docs_{stem}_full.png", full_page=True)
    return out


# ---------------------------------------------------------------- link checking (also tested on a broken site below)


def _ids_in(html: str) -> set[str]:
    return set(re.findall(r"""\bid=["']([^"']+)["']""", html))


def link_problems(reports: dict[str, dict], server: str, published: str = "") -> list[str]:
    """Same-site links (and links to the published site `published`, checked against the local copy) that
    do not answer HTTP 200, or whose #anchor is not an id of the page they point to."""
    seen: dict[str, tuple[int, set]] = {}
    browser_ids = {r["url"]: set(r["ids"]) for r in reports.values()}
    out = []
    for page, r in reports.items():
        for href in r["links"]:
            local = server + href[len(published):] if published and href.startswith(published) else href
            if not local.startswith(server):
                continue
            target, _, frag = local.partition("#")
            target = target.partition("?")[0]
            if target not in seen:
                try:
                    with urllib.request.urlopen(target, timeout=10) as resp:
                        seen[target] = (resp.status, _ids_in(resp.read().decode("utf-8", "replace")))
                except urllib.error.HTTPError as e:
                    seen[target] = (e.code, set())
            status, ids = seen[target]
            ids = ids | browser_ids.get(target, set()) | (browser_ids.get(target + "index.html", set()) if target.endswith("/") else set())
            shown = href if href == local else f"{href} (local copy {local})"
            if status != 200:
                out.append(f"{page}: link to a missing page {shown} -> HTTP {status}")
            elif frag and urllib.parse.unquote(frag) not in ids:
                out.append(f"{page}: link to a missing anchor {shown}: no element with id {urllib.parse.unquote(frag)!r} on that page"
                           " (e.g. a backticked name that nbdev links but no show_doc documents)")  # fmt: skip
    return sorted(set(out))


def test_link_check_catches_a_missing_page_and_anchor(tmp_path):
    "The link check itself: a site with one good link, a link to a missing page and one to a missing anchor."
    (tmp_path / "a.html").write_text('<h2 id="here">x</h2><a href="b.html#there">b</a>')
    (tmp_path / "b.html").write_text('<h2 id="there">y</h2>')
    with serve(tmp_path) as url:
        good = {"a.html": {"url": url + "a.html", "ids": ["here"], "links": [url + "b.html#there", url + "a.html#here", "https://example.org/x"]}}
        assert link_problems(good, url) == []
        bad = {"a.html": {"url": url + "a.html", "ids": ["here"],
                          "links": [url + "gone.html", url + "b.html#nowhere", "https://pub.example/site/b.html#missing"]}}  # fmt: skip
        problems = link_problems(bad, url, "https://pub.example/site/")
    assert len(problems) == 3, problems
    assert any("missing page" in p and "gone.html" in p and "404" in p for p in problems), problems
    assert any("missing anchor" in p and "'nowhere'" in p for p in problems), problems
    assert any("missing anchor" in p and "pub.example" in p and "'missing'" in p for p in problems), problems


# ---------------------------------------------------------------- anchors in the built HTML (no browser needed)


class _LinksAndIds(__import__("html.parser").parser.HTMLParser):
    "The id attributes and the <a href> links of one HTML page, as written (scripts are not run)."

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def html_anchor_problems(folder: Path, published: str = "") -> list[str]:
    """Links in the built pages of `folder` (relative, or to the published site `published`) whose #fragment is not the
    id of an element of the page they point to, or that point to a page that is not there. Read from the HTML files
    with html.parser, so that a missing anchor fails without a browser."""
    pages = {}
    for f in sorted(folder.rglob("*.html")):
        p = _LinksAndIds()
        p.feed(f.read_text(encoding="utf-8", errors="replace"))
        pages[f.relative_to(folder).as_posix()] = p
    out = []
    for name, p in pages.items():
        for href in p.links:
            if published and href.startswith(published):
                href = href[len(published):]
            u = urllib.parse.urlsplit(href)
            if u.scheme or u.netloc or href.startswith(("mailto:", "javascript:")) or not u.fragment:
                continue
            target = name if not u.path else urllib.parse.urljoin(name, u.path)
            target = target + "index.html" if target.endswith("/") or target == "" else target
            frag = urllib.parse.unquote(u.fragment)
            if target not in pages:
                if not (folder / target).exists():
                    out.append(f"{name}: link {href!r} to a missing page {target}")
            elif frag not in pages[target].ids:
                out.append(f"{name}: link {href!r} to a missing anchor: no element with id {frag!r} in {target}")
    return sorted(set(out))


def test_anchor_check_catches_a_missing_anchor(tmp_path):
    "The HTML anchor check itself: good same-page, cross-page and published-site links pass; broken ones are named."
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text('<h2 id="here">x</h2><a href="#here">1</a><a href="b.html#there">2</a>'
                                     '<a href="https://pub.example/site/b.html#there">3</a><a href="https://other.org/#x">4</a>'
                                     '<a href="sub/c.html#deep">5</a><a href="b.html">6</a>')
    (tmp_path / "b.html").write_text('<h2 id="there">y</h2><a href="a.html#gone">7</a><a href="#nowhere">8</a>'
                                     '<a href="https://pub.example/site/a.html#lost">9</a><a href="x.html#y">10</a>'
                                     '<div data-id="fake"></div><a href="#fake">11</a>')
    (tmp_path / "sub" / "c.html").write_text('<p id="deep"></p><a href="../a.html#here">12</a>')
    problems = html_anchor_problems(tmp_path, "https://pub.example/site/")
    assert len(problems) == 5, problems
    for frag in ("'gone'", "'nowhere'", "'lost'", "'fake'"):
        assert any(frag in p and p.startswith("b.html") for p in problems), (frag, problems)
    assert any("missing page x.html" in p for p in problems), problems


def test_docs_anchors_exist(site):
    "Every link with a #fragment in the built site (notebook prose, nbdev's doc links, the sidebar) lands on an id."
    problems = html_anchor_problems(site, site_url())
    assert not problems, f"{len(problems)} link(s) to a missing anchor or page in _docs/:\n" + "\n".join(problems)


# ---------------------------------------------------------------- the checks


def test_every_notebook_is_in_the_sidebar():
    listed = set(sidebar_notebooks())
    present = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    assert "index.ipynb" in present, "nbs/index.ipynb (the home page) is missing"
    orphans = [p for p in present if p not in listed]
    assert not orphans, f"notebooks missing from the sidebar of _quarto.yml: {orphans}"
    gone = [p for p in listed if not (NBS / p).is_file()]
    assert not gone, f"the sidebar of _quarto.yml lists notebooks that do not exist (Quarto fails on them): {gone}"


def test_nbdev_reads_the_top_level_config():
    link = NBS / "_quarto.yml"
    assert link.is_symlink() and link.resolve() == CONFIG.resolve(), "nbs/_quarto.yml must be a symlink to ../_quarto.yml"


def test_built_by_quarto(site):
    info = json.loads(STAMP.read_text())
    assert re.match(r"\d+\.\d+", info.get("quarto", "")), f"_docs/.buildinfo does not name the Quarto that built it: {info}"
    gen = re.search(r'<meta name="generator" content="([^"]+)"', (site / "index.html").read_text(encoding="utf-8"))
    assert gen and gen.group(1).startswith("quarto-"), f"_docs/index.html was not written by Quarto (generator: {gen and gen.group(1)})"


def test_site_has_the_sidebar_pages(visits):
    want = list(expected_pages())
    assert list(visits) == want, f"pages found in the built site's sidebar {list(visits)} != the sidebar of _quarto.yml {want}"


def test_pages_load_with_titles(visits):
    nbs = expected_pages()
    for p, r in visits.items():
        assert r["status"] == 200, f"{p}: HTTP {r['status']}"
        assert "asr_lit" in r["title"], f"{p}: page title {r['title']!r} lacks the site title"
        if p != "index.html" and p in nbs:
            want = notebook_title(NBS / nbs[p])
            assert want in r["title"], f"{p}: page title {r['title']!r} lacks {want!r}, the title of nbs/{nbs[p]}"


def test_no_console_or_network_errors(visits):
    bad = {p: r["problems"] for p, r in visits.items() if r["problems"]}
    assert not bad, "pages with console errors, script errors or failed requests:\n" + "\n".join(f"{p}: {x}" for p, xs in bad.items() for x in xs)


def test_images_load(visits):
    for p, r in visits.items():
        bad = [i for i in r["images"] if not i["complete"] or i["width"] <= 0]
        assert not bad, f"{p}: images that did not load: {bad}"


def test_figures_present(visits):
    "A page whose notebook saves image outputs (in cells it shows) shows that many figures, none wider than the text."
    for p, nb in expected_pages().items():
        want = shown_image_outputs(NBS / nb)
        figs = [i for i in visits[p]["images"] if i["in_main"]]
        assert len(figs) >= want, f"{p}: nbs/{nb} saves {want} image output(s), the page shows {len(figs)}"


def test_show_doc_renders(visits):
    "A notebook that calls show_doc (or exports, which nbdev documents itself) shows rendered API entries."
    for p, nb in expected_pages().items():
        r = visits[p]
        if documents_api(NBS / nb):
            assert r["show_docs"], f"{p}: nbs/{nb} documents an API, but the page shows no show_doc entry (heading + signature)"
            assert r["source_links"], f"{p}: show_doc entries without their 'source' link"


def test_no_markup_left_as_text(visits):
    "Markdown that the renderer did not understand (headings, fences, callouts, links) shows up as text."
    bad = {p: r["raw_markup"] for p, r in visits.items() if r["raw_markup"]}
    assert not bad, "\n".join(f"{p}: Markdown shown as text: {t!r}" for p, ts in bad.items() for t in ts)


def test_nothing_runs_off_the_page(visits):
    "Long code lines, tables and figures scroll inside their box or fit; none widens the page."
    for p, r in visits.items():
        assert r["page_width"] <= r["viewport"], f"{p}: the page is {r['page_width']}px wide in a {r['viewport']}px window: {r['overflow']}"
        assert not r["overflow"], f"{p}: content wider than the text column: {r['overflow']}"


def test_internal_links_resolve(visits, server):
    problems = link_problems(visits, server, site_url())
    assert not problems, f"{len(problems)} broken internal link(s):\n" + "\n".join(problems)


def test_sidebar_in_reading_order(visits):
    want = list(expected_pages())
    for p, r in visits.items():
        assert r["sidebar_pages"] == want, f"{p}: sidebar order {r['sidebar_pages']} != _quarto.yml order {want}"


SEARCH_JS = r"""
(async () => {
  for (let i = 0; i < 100; i++) {
    const items = [...document.querySelectorAll('.aa-Item a[href], .aa-Panel a[href]')];
    if (items.length) return items.map(a => a.href);
    await new Promise(r => setTimeout(r, 100));
  }
  return [];
})()
"""


def test_search_finds_pages(tab, server, visits):
    "The search box (Quarto's, fed by search.json) finds a page by a word of its title."
    with urllib.request.urlopen(server + "search.json", timeout=10) as resp:
        index = json.load(resp)
    indexed = {e["href"].partition("#")[0] or "index.html" for e in index}
    missing = [p for p in visits if p not in indexed]
    assert not missing, f"search.json has no entry for {missing}"
    pages = [p for p in visits if p != "index.html"]
    for p in (pages[0], pages[-1]) if pages else ():
        word = max(re.findall(r"[A-Za-z][a-z]{4,}", notebook_title(NBS / expected_pages()[p])) or [Path(p).stem], key=len)
        tab.goto(server + "index.html?show-results=1&q=" + urllib.parse.quote(word))  # as Quarto's "copy link to search"
        hits = [h[len(server):].partition("#")[0].partition("?")[0] or "index.html" for h in tab.eval(SEARCH_JS) if h.startswith(server)]
        assert p in hits, f"searching for {word!r} did not list {p}: results {hits[:10]}"
        assert not tab.problems(server), f"search for {word!r}: {tab.problems(server)}"


def test_screenshots_saved(visits):
    shots = sorted(ARTIFACTS.glob("docs_*.png"))
    assert (ARTIFACTS / "docs_home.png").stat().st_size > 5000
    assert len(shots) >= (3 if len(visits) > 1 else 1), shots
