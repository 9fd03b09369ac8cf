"""The building blocks of a report page: the page itself (style and the script the browser test reads), escaped
text, tables, embedded PNGs, findings, the freeze plan grid and the rows a data file could not give."""

from __future__ import annotations

import base64
import html
from typing import Any

from ..core.errors import shorten_labels

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;padding:0 1.5rem;
max-width:1100px;color:#222}
h1{font-size:1.5rem} h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem} td,th{border:1px solid #ddd;padding:.25rem .5rem}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.finding{border-left:5px solid #999;padding:.4rem .8rem;margin:.5rem 0;background:#fafafa}
.error{border-color:#c0392b} .warning{border-color:#e67e22} .info{border-color:#27ae60}
.badge{font-weight:bold;text-transform:uppercase;font-size:.75rem;margin-right:.4rem}
.fix{color:#555;font-size:.9rem} .on{background:#d5f5e3} .off{background:#d6eaf8} img{max-width:100%}
.muted{color:#777;font-size:.85rem}
"""

# Marks every image once the browser has decoded it (used by the headless-browser test).
SCRIPT = """window.addEventListener('load',()=>{for(const i of document.images){
i.dataset.loaded=(i.complete&&i.naturalWidth>0)?'1':'0';}document.body.dataset.ready='1';});"""


def esc(x: Any) -> str:
    """``x`` as HTML text."""
    return html.escape(str(x))


def img(png: bytes | None, alt: str) -> str:
    """A PNG embedded as data (a muted line when there is none)."""
    if png is None:
        return f'<p class="muted">{esc(alt)}: not available</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def fmt(x: float | None) -> str:
    """A metric to four decimals (``-`` when missing)."""
    return "-" if x is None else f"{x:.4f}"


def is_number(cell: Any) -> bool:
    """Whether a table cell is a number (right-aligned)."""
    return str(cell).replace(",", "").replace(".", "", 1).lstrip("-+").isdigit()


def table(head: list[str], rows: list[list[Any]]) -> str:
    """An HTML table of escaped cells."""
    out = ["<table><tr>", *[f"<th>{esc(h)}</th>" for h in head], "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="{"num" if is_number(c) else ""}">{esc(c)}</td>' for c in row)
                   + "</tr>")
    out.append("</table>")
    return "".join(out)


def findings_html(findings: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    """Every finding with its severity, message and fix (long class names shortened, as in the tables)."""
    if not findings:
        return '<p class="muted">no findings</p>'
    cut = lambda t: shorten_labels(t, labels or [])  # noqa: E731
    return "".join(
        f'<div class="finding {esc(f["severity"])}"><span class="badge">{esc(f["severity"])}</span>'
        f'<b>{esc(f["code"])}</b>: {esc(cut(f["message"]))}'
        + ("" if f["fix"] in ("-", "") else f'<div class="fix">what to do: {esc(cut(f["fix"]))}</div>') + "</div>"
        for f in findings)


def freeze_plan_html(m: dict[str, Any]) -> str:
    """Which parts trained in which epoch (each epoch's plan; runs from before it was recorded: the groups added so
    far, which is the same for strategies that never freeze again)."""
    open_parts: set[str] = set()
    grid = []
    for h in m["history"]:
        open_parts |= set(h["groups_added"])
        grid.append(set(h["parts"]) if "parts" in h else set(open_parts))
    head = ["part", "parameters", *[f"epoch {h['epoch']}" for h in m["history"]]]
    rows = []
    for p in m["parts"]:
        cells = "".join(f'<td class="{"on" if p["name"] in g else "off"}">{"trains" if p["name"] in g else "frozen"}'
                        "</td>" for g in grid)
        rows.append(f"<tr><td>{esc(p['name'])}</td><td class=\"num\">{p['params']:,}</td>{cells}</tr>")
    checked = sum(h.get("frozen_verified", 0) for h in m["history"])
    frozen_any = any(not all(p["name"] in g for p in m["parts"]) for g in grid)
    note = ("nothing was frozen: every part trained in every epoch." if not frozen_any else
            "frozen parts ran in eval mode (BatchNorm statistics and dropout pinned); "
            + (f"{checked} checksums of frozen tensors were taken when each plan started and verified unchanged "
               "when it ended." if checked else "checksum verification was off (--no-verify)."))
    return ("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
            + f'<p class="muted">{note}</p>')


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style><script>{SCRIPT}</script></head><body><h1>{esc(title)}</h1>{body}</body></html>")


def dropped_html(m: dict[str, Any]) -> str:
    """The rows the data files could not give, one warning line per file ('' when none)."""
    lines = [d["line"] for d in ((m.get("data") or {}).get("dropped") or {}).values()]
    return "".join(f"<p><b>warning</b>: {esc(line)}</p>" for line in lines)
