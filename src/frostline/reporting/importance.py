"""Importance scores as a person reads them: a terminal table and the report's section on automatic strategies."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from rich.table import Table


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value else "0"


def importance_table(scores: dict[str, Any], chosen: list[str] | None = None, title: str = "") -> Table:
    """Parts input to output with their three scores and each score's rank (1 = most important; head excluded)."""
    parts = scores["parts"]
    kinds = list(scores["scores"])
    ranks: dict[str, dict[str, int]] = {}
    for kind in kinds:
        body = [p for p in parts if p["name"] != "head"]
        order = sorted(range(len(body)), key=lambda i: (-body[i][kind], -i))
        ranks[kind] = {body[i]["name"]: r + 1 for r, i in enumerate(order)}
    table = Table(title=title or "importance per part", header_style="bold")
    table.add_column("part", no_wrap=True)
    table.add_column("params", justify="right")
    for kind in kinds:
        table.add_column(kind, justify="right")
        table.add_column("#", justify="right", style="dim")
    for p in parts:
        mark = " *" if chosen and p["name"] in chosen else ""
        cells = [p["name"] + mark, f"{p['params']:,}"]
        for kind in kinds:
            cells += [_fmt(p[kind]), str(ranks[kind].get(p["name"], "-"))]
        table.add_row(*cells)
    table.caption = (f"{scores['batches']} batches, {scores['samples']} samples, {scores['seconds']:.2f} s; "
                     + "; ".join(f"{k}: {v}" for k, v in scores["scores"].items())
                     + ("; *: chosen" if chosen else ""))
    return table


def auto_html(auto: dict[str, Any] | None, history: list[dict[str, Any]]) -> str:
    """The report's section on what an automatic strategy measured and chose ('' for other strategies)."""
    if not auto:
        return ""
    from . import plots

    adapters = auto.get("adapters")
    out = [f"<h2>{escape(auto['strategy'])}: what it {'adapts' if adapters else 'measured'}</h2>"]
    if adapters:
        what = (f"LoRA (rank {adapters['r']}, alpha {adapters['alpha']:g}, dropout {adapters['dropout']:g})"
                if adapters["kind"] == "lora" else "(IA)3 scaling vectors")
        ff = f"; feed-forward (input scaled): {len(adapters['feedforward'])}" if adapters.get("feedforward") else ""
        out.append(f"<p>{what} from PEFT {escape(adapters.get('peft', ''))} on {len(adapters['targets'])} layers"
                   f"{ff}; the base model stayed frozen (checksummed), only the adapters and the head trained, and "
                   "the run folder holds only them.</p><ul>"
                   + "".join(f"<li><code>{escape(t)}</code></li>" for t in adapters["targets"]) + "</ul>")
    scores = auto.get("importance")
    if scores:
        kinds = list(scores["scores"])
        head = "".join(f"<th>{escape(k)}</th>" for k in ["part", "parameters", *kinds])
        rows = "".join(
            f"<tr><td>{escape(p['name'])}{' (chosen)' if p['name'] in auto.get('chosen', []) else ''}</td>"
            f"<td class=\"num\">{p['params']:,}</td>" + "".join(f"<td class=\"num\">{_fmt(p[k])}</td>" for k in kinds)
            + "</tr>" for p in scores["parts"])
        png = base64.b64encode(plots.importance_bars(scores, auto.get("chosen"))).decode()
        out.append(f"<p>{escape(auto['strategy'])} trains <b>{escape(', '.join(auto['chosen']))}</b> (highest "
                   f"{escape(auto['score'])}) and the head; scored on {scores['batches']} batches "
                   f"({scores['samples']} samples) in {scores['seconds']:.2f} s.</p>"
                   f"<table><tr>{head}</tr>{rows}</table><img alt=\"importance per part\" "
                   f"src=\"data:image/png;base64,{png}\">")
    decisions = [(h, d) for h in history for d in (h.get("auto") or {}).get("intervals", []) if "change" in d]
    if decisions:
        froze = {h["epoch"]: ", ".join(h["auto"].get("froze", [])) for h, _d in decisions}
        rows = "".join(
            f"<tr><td>{h['epoch']}</td><td class=\"num\">{d['step']}</td><td>{escape(d['start'])}</td>"
            f"<td class=\"num\">{d['threshold']:.3g}</td><td>"
            + escape(", ".join(f"{k} {v:.3g}" for k, v in d["change"].items())) + "</td><td>"
            + (escape(froze[h["epoch"]] or "-") if d is h["auto"]["intervals"][-1] else "") + "</td></tr>"
            for h, d in decisions)
        out.append("<p>every interval (half an epoch), each trainable block's summed gradient was compared with the "
                   "previous interval's (change = |before - now| / before); the blocks before the first one at or "
                   "above the median change froze, with the stem, from the next epoch on.</p>"
                   "<table><tr><th>epoch</th><th>step</th><th>first block to train</th><th>median change</th>"
                   f"<th>change per block</th><th>froze after the epoch</th></tr>{rows}</table>")
    if auto.get("trainable_elements") is not None:
        out.append(f"<p>{auto['trainable_elements']:,} of {auto['elements']:,} elements of {auto['tensors']} block "
                   f"weight matrices trained (top by diagonal Fisher over {auto['samples']} samples); the rest "
                   "were held by element masks.</p>")
    return "".join(out)
