"""Browser check of the documentation site built by `.ci/build_docs`.

Serves `_docs/` on 127.0.0.1 (random free port) and loads the home page and every notebook page in
headless Chromium (Debian's `chromium`), driven over the Chrome DevTools Protocol on a pipe
(`--remote-debugging-pipe`: standard library only, no driver, no browser download). For each page it
checks the HTTP status, the title, that every <img> loaded (naturalWidth > 0), that no same-site request
failed, that every internal link resolves (HTTP 200, and its #fragment exists on pages we loaded), and
that the sidebar lists the pages in the order of `_quarto.yml`. Screenshots go to artifacts/ (ignored).

The site is (re)built once per session when `_docs/` is missing or older than its sources. Without
Chromium the test is skipped, except under CI=true, where it fails (`.ci/install_chromium` installs it).
"""

import base64
import contextlib
import functools
import http.server
import importlib.util
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
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "_docs"
NBS = ROOT / "nbs"
ARTIFACTS = ROOT / "artifacts"
STAMP = DOCS / ".buildinfo"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1400,1000",
]  # fmt: skip


def _load_build_module():
    spec = importlib.util.spec_from_file_location("asr_lit_docs_build", ROOT / ".ci" / "docs_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


docs_build = _load_build_module()


# ---------------------------------------------------------------- what the site should hold


def expected_pages() -> list[str]:
    "The notebooks of the sidebar of _quarto.yml that exist, in reading order."
    return [p for p in docs_build.sidebar_pages() if (NBS / p).is_file()]


def page_url(nb: str) -> str:
    "A notebook's page, relative to the site root, named as nbdev names it for Quarto (00_data.ipynb -> data.html)."
    return docs_build.page_html(nb)


def notebook_title(nb: Path) -> str:
    "The title a notebook gives its page: `title:` front matter, else its first `# heading`."
    cells = json.loads(nb.read_text(encoding="utf-8")).get("cells", [])
    for c in cells:
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "raw" and (m := re.search(r"^title:\s*['\"]?(.+?)['\"]?\s*$", src, re.M)):
            return m.group(1)
        if c.get("cell_type") == "markdown" and (m := re.search(r"^#\s+(.+?)\s*$", src, re.M)):
            return re.sub(r"[*_`]", "", m.group(1))
    return nb.stem


def _sources() -> list[Path]:
    "Every file the site is built from."
    out = [ROOT / "_quarto.yml", ROOT / "settings.ini", ROOT / ".ci" / "build_docs", ROOT / ".ci" / "docs_build.py"]
    for base in (NBS, ROOT / "asr_lit"):
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and not f.endswith(".pyc")]
    return [p for p in out if p.exists()]


def _stale() -> str | None:
    "Why the site needs a build, or None when _docs/ is newer than every source."
    if not STAMP.exists():
        return "_docs/ has not been built"
    built = STAMP.stat().st_mtime
    newer = [p for p in _sources() if p.stat().st_mtime > built]
    if newer:
        return f"{len(newer)} source(s) changed since the last build, e.g. {newer[0].relative_to(ROOT)}"
    if any(not (DOCS / page_url(p)).exists() for p in expected_pages()):
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
        for domain in ("Page", "Network", "Runtime"):
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

    def network_problems(self, origin: str) -> list[str]:
        "Same-site requests that failed or answered an HTTP error, and uncaught script errors, since the last `goto`."
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
        if full_page:
            w, h = self.eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params |= {"captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": w, "height": min(h, max_height), "scale": 1}}
        data = self.b.send("Page.captureScreenshot", params, session=self.s, timeout=60)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


# What each page reports: its title, its images once loaded, its links, its sidebar and its ids.
PAGE_REPORT_JS = r"""
(async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? i.decode().catch(() => null)
    : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  await document.fonts.ready;
  const h1 = document.querySelector('h1.title, main h1');
  return {
    title: document.title,
    h1: h1 ? h1.textContent.trim() : null,
    images: imgs.map(i => ({src: (i.currentSrc || i.src).slice(0, 100), complete: i.complete, width: i.naturalWidth})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    sidebar: [...document.querySelectorAll('#quarto-sidebar a.sidebar-link[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    tables: document.querySelectorAll('main table').length,
    show_docs: [...document.querySelectorAll('.cell-output-markdown :is(h2, h3, h4)')].map(h => h.textContent.trim()),
    raw_markdown: [...document.querySelectorAll('.cell-output-markdown p')].filter(p => /^(#{2,4} |```)/.test(p.textContent)).length,
  };
})()
"""


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site() -> Path:
    "The built site: runs .ci/build_docs when _docs/ is missing or older than its sources."
    why = _stale()
    if why:
        print(f"building the docs: {why}")
        r = subprocess.run(["bash", str(ROOT / ".ci" / "build_docs")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, f".ci/build_docs failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
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


@pytest.fixture(scope="module")
def server(site):
    "The site served on 127.0.0.1 on a free port; yields its base URL."
    httpd = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        msg = ("the docs browser checks need headless Chromium, which is not installed: install it with "
               "`apt-get install chromium` (Debian/Ubuntu) or `.ci/install_chromium`, or point $CHROMIUM at a Chrome executable")
        if IN_CI:
            pytest.fail(msg + " -- required under CI")
        pytest.skip(msg)
    with tempfile.TemporaryDirectory(prefix="asr_lit_chromium_") as profile:
        b = Chromium(exe, profile)
        try:
            b.send("Browser.getVersion", timeout=60)
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def visits(browser, site, server) -> dict:
    "Load every page once: {page file: report}, in reading order, and save the screenshots."
    tab = Tab(browser)
    out = {}
    pages = expected_pages()
    for p in pages:
        url = urllib.parse.urljoin(server, page_url(p))
        doc = tab.goto(url)
        report = tab.eval(PAGE_REPORT_JS)
        report |= {"url": url, "status": doc.get("status"), "problems": tab.network_problems(server)}
        out[p] = report
        if p == "index.ipynb":
            tab.screenshot(ARTIFACTS / "docs_home.png")
    # The ASR page, else the first page with a figure, else the first page after home: its top, its
    # first figure, and the whole page.
    with_figs = [p for p in pages if p != "index.ipynb" and out[p]["images"]]
    shot = "14_asr.ipynb" if "14_asr.ipynb" in pages else next(iter(with_figs or [p for p in pages if p != "index.ipynb"]), None)
    if shot:
        stem = Path(shot).stem
        tab.goto(out[shot]["url"])
        tab.eval(PAGE_REPORT_JS)
        tab.screenshot(ARTIFACTS / f"docs_{stem}.png")
        if out[shot]["images"]:
            tab.eval("(async () => { const i = document.querySelector('main img'); i.scrollIntoView({block: 'center', behavior: 'instant'});"
                     " await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); return true; })()")
            tab.screenshot(ARTIFACTS / f"docs_{stem}_figure.png")
        tab.screenshot(ARTIFACTS / f"docs_{stem}_full.png", full_page=True)  # last: it resizes the viewport
    return out


# ---------------------------------------------------------------- the checks


def test_every_notebook_is_in_the_sidebar():
    listed = set(docs_build.sidebar_pages())
    present = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    assert "index.ipynb" in present, "nbs/index.ipynb (the home page) is missing"
    orphans = [p for p in present if p not in listed]
    assert not orphans, f"notebooks missing from the sidebar of _quarto.yml: {orphans}"


def test_nbdev_reads_the_top_level_config():
    link = NBS / "_quarto.yml"
    assert link.is_symlink() and link.resolve() == (ROOT / "_quarto.yml").resolve(), "nbs/_quarto.yml must be a symlink to ../_quarto.yml"


def test_pages_load_with_titles(visits):
    assert list(visits) == expected_pages()
    for p, r in visits.items():
        assert r["status"] == 200, f"{p}: HTTP {r['status']}"
        want = "asr_lit" if p == "index.ipynb" else notebook_title(NBS / p)
        assert want in r["title"], f"{p}: page title {r['title']!r} lacks {want!r}"
        assert "asr_lit" in r["title"], f"{p}: page title {r['title']!r} lacks the site title"
        assert not r["problems"], f"{p}: {r['problems']}"


def test_images_load(visits):
    for p, r in visits.items():
        bad = [i for i in r["images"] if not i["complete"] or i["width"] <= 0]
        assert not bad, f"{p}: images that did not load: {bad}"


def test_show_doc_renders(visits):
    "A notebook that calls show_doc (or exports, which nbdev documents itself) shows rendered API entries."
    for p, r in visits.items():
        cells = json.loads((NBS / p).read_text(encoding="utf-8")).get("cells", [])
        code = ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
        if any("show_doc(" in c or re.match(r"#\|\s*export\b", c) for c in code):
            assert r["show_docs"], f"{p}: no show_doc entry rendered"
        assert not r["raw_markdown"], f"{p}: {r['raw_markdown']} show_doc output(s) left as raw Markdown"


def test_internal_links_resolve(visits, server):
    "Every same-site link answers HTTP 200. A #fragment missing on its page is reported as a warning."
    ids = {r["url"]: set(r["ids"]) for r in visits.values()}
    checked: dict[str, int] = {}
    broken, missing_ids = [], []
    for p, r in visits.items():
        for href in r["links"]:
            if not href.startswith(server):
                continue
            target, _, frag = href.partition("#")
            target = target.partition("?")[0]
            if target not in checked:
                try:
                    with urllib.request.urlopen(target, timeout=10) as resp:
                        checked[target] = resp.status
                except urllib.error.HTTPError as e:
                    checked[target] = e.code
            if checked[target] != 200:
                broken.append(f"{p}: {href} -> HTTP {checked[target]}")
            elif frag and target in ids and urllib.parse.unquote(frag) not in ids[target]:
                missing_ids.append(f"{p}: {href} (no element with that id; e.g. a backticked name nbdev links but no show_doc documents)")
    for m in sorted(set(missing_ids)):
        warnings.warn(f"link to a missing anchor: {m}", stacklevel=1)
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_sidebar_in_reading_order(visits, server):
    want = [urllib.parse.urljoin(server, page_url(p)) for p in expected_pages()]
    for p, r in visits.items():
        assert r["sidebar"] == want, f"{p}: sidebar order {r['sidebar']} != _quarto.yml order {want}"


def test_screenshots_saved(visits):
    shots = sorted(ARTIFACTS.glob("docs_*.png"))
    assert (ARTIFACTS / "docs_home.png").stat().st_size > 5000
    assert len(shots) >= (3 if len(visits) > 1 else 1), shots
