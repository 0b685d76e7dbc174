-- Pandoc Lua filter for README.md only (`filters:` in _quarto.yml; a no-op for the html pages): `nbdev_readme` renders nbs/index.ipynb
-- with Quarto into the repository root, where the page's links and code need these changes:
--  * links to notebooks (`00_data.ipynb`, relative to nbs/) point into nbs/, where they are on GitHub;
--  * code cells are left out (the site shows them; the README keeps the prose, the outputs, the figure and
--    the Markdown code blocks of the page), and so are pandas' <style> block and the <div> wrapped around its tables;
--  * the site description is shown under the title, as nbdev's template does on the site.
local function notebook(t) return t:match('^[%w_%-]+%.ipynb$') or t:match('^[%w_%-]+%.ipynb#') end

function Link(l)
  if notebook(l.target) then l.target = 'nbs/' .. l.target end
  return l
end

function CodeBlock(b)
  if b.classes:includes('cell-code') then return {} end
end

function RawBlock(b)
  if b.format ~= 'html' then return nil end
  local text = b.text:gsub('<style.-</style>', '')
  if text:match('^%s*</?div>%s*$') or text:match('^%s*$') then return {} end
  if text ~= b.text then b.text = text; return b end
end

function Pandoc(doc)
  local desc = doc.meta.description
  if desc then table.insert(doc.blocks, 1, pandoc.BlockQuote({pandoc.Para(pandoc.utils.type(desc) == 'Inlines' and desc or {pandoc.Str(pandoc.utils.stringify(desc))})})) end
  return doc
end

-- everything above applies to Markdown output (README.md) only
if not (FORMAT:match('gfm') or FORMAT:match('commonmark') or FORMAT:match('markdown')) then return {} end
