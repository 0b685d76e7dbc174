// Quarto post-render script (`post-render:` in _quarto.yml): the site needs nothing from other hosts.
// Quarto adds require.js and jQuery from cdnjs to every page with a text/html output (for JavaScript widgets
// such as plotly or itables, which assume them). Here those outputs are pandas tables, static HTML, and no page
// has a widget; offline the two scripts fail to load and the `define('jquery', ...)` that follows throws
// "define is not defined". This removes the three tags from pages that have no Jupyter widget.
const cdn = /<script src="https:\/\/cdnjs\.cloudflare\.com\/ajax\/libs\/(jquery\/[\d.]+\/jquery|require\.js\/[\d.]+\/require)\.min\.js"[^>]*><\/script>\n?/g;
const define = /<script type="application\/javascript">define\('jquery', \[\],function\(\) \{return window\.jQuery;\}\)<\/script>\n?/g;
const files = (Deno.env.get("QUARTO_PROJECT_OUTPUT_FILES") ?? "").split("\n").filter((f) => f.endsWith(".html"));
for (const f of files) {
  const html = Deno.readTextFileSync(f);
  if (html.includes("application/vnd.jupyter.widget")) continue;
  const out = html.replace(cdn, "").replace(define, "");
  if (out !== html) Deno.writeTextFileSync(f, out);
}
