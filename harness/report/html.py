"""The HTML leaderboard: one self-contained file (inline CSS, JS and SVG; no network, no CDN).

Every stored string goes through :func:`html.escape` and lands in text or attribute positions only;
no data is embedded in the script, and a Content-Security-Policy forbids any fetch. Sorting and
filtering are a few lines of vanilla JS over ``data-v`` attributes that hold the raw values.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ..results.rank import BoardRow
from ..results.record import Result
from .cells import energy_text, ms_text, percent_text
from .columns import FLAG, GRADE_RULE, LEGEND, Column, RowExtras, board_columns
from .label import file_stem, svg_label
from .plots import colour_map, svg_plot
from .sections import ReportData, from_board, iso_datetime, row_id

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--fg:#1d232a;--mut:#5d6b78;--bg:#f6f7f9;--card:#fff;--line:#dde2e7;--acc:#1b6ca8}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg);margin:0}header{background:#1f2d3d;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#c9d3dd}main{padding:14px 28px 40px}
.controls{position:sticky;top:0;z-index:2;background:var(--bg);padding:10px 0;border-bottom:1px solid var(--line);
display:flex;gap:14px;flex-wrap:wrap;align-items:center}.controls label{color:var(--mut)}
select,button{font:inherit;padding:3px 6px;border:1px solid var(--line);border-radius:4px;background:#fff}
section.task{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:18px 0;padding:6px 18px 16px}
h2{margin:12px 0 4px}h3{margin:18px 0 6px;font-size:15px}.meta{color:var(--mut);margin:0 0 8px}
table{border-collapse:collapse;width:100%;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 5px;font-size:12.5px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
th{background:#eef1f4;position:relative;user-select:none}th.sortable{cursor:pointer}
th.sortable:after{content:" \\2195";color:#9aa5b1}th[aria-sort=ascending]:after{content:" \\25B2";color:var(--fg)}
th[aria-sort=descending]:after{content:" \\25BC";color:var(--fg)}td.n{text-align:right}
tr.row:hover{background:#f3f8fc}.tbl{overflow-x:auto}
.cls{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;background:#e8eef5}
.cls-estimate{background:#fde9d9}.cls-simulated{background:#efe3f7}.cls-external{background:#dff3e2}
.cls-counter{background:#e0ecfa}.yes{color:#1a7f37}.no{color:#b42318}
details summary{cursor:pointer;color:var(--acc)}details dl{display:grid;grid-template-columns:max-content auto;
gap:1px 10px;margin:6px 0;font-size:12px;white-space:normal}details dt{color:var(--mut)}details dd{margin:0}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,560px));gap:12px}.plot{background:#fff;border:1px solid var(--line);border-radius:6px;width:100%;height:auto}
.plot .frame{fill:none;stroke:#c5ccd3}.plot .grid{stroke:#eef1f4}.plot .tick{font-size:10px;fill:#5d6b78}
.plot .axis{font-size:11px;fill:#1d232a}.plot .ptitle{font-size:12px;font-weight:600;fill:#1d232a}.plot .front{fill:none;stroke:#1d232a;stroke-width:1.5}
.plot .minline{stroke:#9aa5b1;stroke-dasharray:4 3}.plot .pt{stroke:#fff;stroke-width:1}
.plot .pt.on-front{stroke:#1d232a;stroke-width:1.5}.plot .pt.below{opacity:.45}.plot .pt.dim{opacity:.08}
.legend{display:flex;gap:12px;flex-wrap:wrap;font-size:12px;color:var(--mut)}.sw{display:inline-block;
width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:-1px}
.labels{display:flex;flex-wrap:wrap;gap:10px}.labels figure{margin:0}.labels figcaption{font-size:12px}.labels button.png{font-size:12px;padding:0 4px}
.note{color:var(--mut);font-size:13px}.best{margin:2px 0}footer{color:var(--mut);font-size:12px;padding:0 28px 30px}
.hidden{display:none}.miss{color:#b42318;font-weight:600}.wrap{white-space:normal;display:inline-block;min-width:16em}
.legend-box{margin:12px 0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:6px 14px}
.legend-box dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:12.5px;margin:6px 0}
.legend-box dt{font-weight:600}.legend-box dd{margin:0;color:var(--mut)}
"""

JS = r"""
(function(){
function val(td){var v=td.getAttribute('data-v');if(v===null||v==='')return null;var n=Number(v);
  return isNaN(n)?v.toLowerCase():n;}
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th.sortable').forEach(function(th){
    th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();th.click();}});
    th.addEventListener('click',function(){
    var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
    var asc=th.getAttribute('aria-sort')!=='ascending';
    t.querySelectorAll('th').forEach(function(o){o.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    var tb=t.tBodies[0];var rows=Array.prototype.slice.call(tb.rows);
    rows.sort(function(a,b){var x=val(a.cells[idx]),y=val(b.cells[idx]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      var c=x<y?-1:x>y?1:0;return asc?c:-c;});
    rows.forEach(function(r){tb.appendChild(r);});});});});
var sels=document.querySelectorAll('select.filter');
function apply(){var f={};sels.forEach(function(s){if(s.value)f[s.getAttribute('data-key')]=s.value;});
  document.querySelectorAll('tr.row, figure.card').forEach(function(r){var ok=true;
    for(var k in f){if(r.getAttribute('data-'+k)!==f[k])ok=false;}r.classList.toggle('hidden',!ok);});
  document.querySelectorAll('.plot circle.pt').forEach(function(c){var ok=true;
    for(var k in f){var a=c.getAttribute('data-'+k);if(a!==null&&a!==f[k])ok=false;
      if(k==='class'&&c.closest('svg').getAttribute('data-class')!==f[k])ok=false;}
    c.classList.toggle('dim',!ok);});
  var n=document.querySelectorAll('tr.row:not(.hidden)').length;
  document.getElementById('shown').textContent=n;}
sels.forEach(function(s){s.addEventListener('change',apply);});
document.getElementById('reset').addEventListener('click',function(){sels.forEach(function(s){s.value='';});apply();});
apply();
function svgUrl(fig){return 'data:image/svg+xml;charset=utf-8,'+
  encodeURIComponent(new XMLSerializer().serializeToString(fig.querySelector('svg')));}
document.querySelectorAll('figure.card a.svg').forEach(function(a){a.addEventListener('click',function(){
  a.href=svgUrl(a.closest('figure'));});});
document.querySelectorAll('figure.card button.png').forEach(function(b){b.addEventListener('click',function(){
  var fig=b.closest('figure'),svg=fig.querySelector('svg'),a=fig.querySelector('a[download]');
  var w=svg.viewBox.baseVal.width,h=svg.viewBox.baseVal.height,img=new Image();
  img.onload=function(){var c=document.createElement('canvas');c.width=2*w;c.height=2*h;
    var g=c.getContext('2d');g.scale(2,2);g.drawImage(img,0,0,w,h);var d=document.createElement('a');
    d.download=a.getAttribute('download').replace(/\.svg$/,'.png');d.href=c.toDataURL('image/png');
    document.body.appendChild(d);d.click();d.remove();};
  img.src=svgUrl(fig);});});
})();
"""


def _t(x: Any) -> str:
    return escape("–" if x is None else str(x))


def _num(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _td(text: str, v: Any = None, *, num: bool = False, raw: bool = False) -> str:
    dv = "" if v is None else (v if isinstance(v, str) else json.dumps(v))
    body = text if raw else escape(text)
    return f'<td{" class=n" if num else ""} data-v="{escape(str(dv))}">{body}</td>'


def _cls(c: str | None) -> str:
    c = c or "none"
    return f'<span class="cls cls-{escape(c)}">{escape(c)}</span>'


def _gzip_text(size: int | None, gz: int | None) -> str:
    """File size and its gzip size, each ``unknown`` when not recorded."""
    return f"{'unknown' if size is None else size} (gzip: {'unknown' if gz is None else gz})"


def _provenance(r: BoardRow, x: RowExtras) -> str:
    target = x["ci_target"]
    items: list[tuple[str, Any]] = [
        ("runtime", f"{r['runtime']} {r['runtime_version'] or ''}".strip()),
        ("ISA", ", ".join(r["isa"]) if isinstance(r["isa"], list) else r["isa"]),
        ("threads", r["threads"]),
        ("batch", r["batch"]),
        ("meter", r["meter"]),
        ("boundary", r["boundary"]),
        ("marker method", r["marker_method"]),
        ("valid windows", x["n_windows"]),
        ("CI target of the run (±)", None if target is None else percent_text(target)),
        ("latency CI of median (±)", _ci_text(r["latency_ci_rel"], target)),
        ("energy CI of median (±)", _ci_text(r["energy_ci_rel"], target)),
        ("p90", ms_text(r["latency_p90_ms"]) if r["latency_p90_ms"] is not None else None),
        ("P idle", None if r["p_idle_w"] is None else f"{r['p_idle_w']:.3g} W"),
        ("E dynamic", energy_text(r["energy_dyn_j"]) if r["energy_dyn_j"] is not None else None),
        ("date (UTC)", iso_datetime(r["date"])),
        ("git revision", r["git_rev"]),
        ("run", r["run_id"]),
        ("grid factor", f"{r['grid_g_per_kwh']} gCO2e/kWh, PUE {r['pue']}: {r['grid_source']}"),
        ("fine-tuned", f"{'yes' if r['fine_tuned'] else 'no'} ({r['epochs'] or 0} epochs)"),
        ("params / MACs", f"{_t(r['params'])} / {_t(r['macs'])}"),
        ("bytes", _gzip_text(r["model_bytes"], r["model_bytes_gz"])),
    ]
    prov = r.get("provenance") or {}
    items += _cpu_items(prov)
    shown = ("isa", "threads", "batch", "runtime_version", "git_rev", "date", *CPU_KEYS)
    for k, v in sorted(prov.items()):
        if k not in shown:
            items.append((k, json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v))
    dl = "".join(f"<dt>{_t(k)}</dt><dd>{_t(v)}</dd>" for k, v in items)
    return f"<details><summary>details</summary><dl>{dl}</dl></details>"


# provenance keys of the CPU state and package versions (local target), shown by :func:`_cpu_items`
CPU_KEYS = ("governor", "cpu_freq_cur_mhz", "cpu_freq_max_mhz", "load_avg", "packages")


def _mhz_range(per_core: Any) -> str:
    """Per-core MHz as one figure, or lowest–highest when the cores differ; – when none is known."""
    values = per_core.values() if isinstance(per_core, dict) else ()
    known = sorted(v for v in values if v is not None)
    if not known:
        return "–"
    return f"{known[0]:g}" if known[0] == known[-1] else f"{known[0]:g}–{known[-1]:g}"


def _cpu_items(prov: dict[str, Any]) -> list[tuple[str, Any]]:
    """Details items for the CPU state and package versions, each only where the result recorded it."""
    items: list[tuple[str, Any]] = []
    if "governor" in prov:
        items.append(("CPU governor", prov["governor"]))
    if "cpu_freq_cur_mhz" in prov or "cpu_freq_max_mhz" in prov:
        cur, top = prov.get("cpu_freq_cur_mhz"), prov.get("cpu_freq_max_mhz")
        both = None if cur is None and top is None else f"{_mhz_range(cur)} / {_mhz_range(top)} MHz"
        items.append(("CPU frequency at start / max", both))
    if "load_avg" in prov:
        load = prov["load_avg"]
        items.append(("load average at start (1, 5, 15 min)", ", ".join(map(str, load)) if load else None))
    if isinstance(prov.get("packages"), dict):
        vers = ", ".join(f"{k} {'–' if v is None else v}" for k, v in prov["packages"].items())
        items.append(("package versions", vers))
    return items


def _ci_text(rel: float | None, target: float | None) -> str | None:
    if rel is None:
        return None
    miss = target is not None and rel > target
    return percent_text(rel) + (f" {FLAG} above the target {percent_text(target)}" if miss else "")


TAB = ' tabindex="0"'


def _board_td(c: Column, r: BoardRow, x: RowExtras) -> str:
    def styled(text: str, style: str) -> str:
        return f'<span class="{style}">{escape(text)}</span>' if style else escape(text)

    v = c.cell(r, x)
    text = " / ".join(styled(t, s) for t, s in v.parts) if v.parts else styled(v.text, v.style)
    if c.key == "class":
        text = _cls(r["energy_class"])
    elif c.key == "meter":  # the longest text of a row: wraps instead of widening the table
        text = f'<span class="wrap">{text}</span>'
    return _td(text, v.value, num=c.numeric, raw=True)


def _board_table(task: str, rows: list[BoardRow], data: ReportData, kind: str) -> str:
    cols = board_columns(rows)
    head = "".join(
        f'<th class="sortable" data-key="{c.key}" title="{escape(c.legend)}"{TAB}>{escape(c.header)}</th>'
        for c in cols
    )
    head += '<th data-key="prov">details</th>'
    body = []
    for r in rows:
        x = data.extra(r)
        cells = [_board_td(c, r, x) for c in cols] + [f"<td>{_provenance(r, x)}</td>"]
        body.append(
            f'<tr class="row" data-id="{escape(row_id(r))}" data-target="{escape(r["target"] or "")}" '
            f'data-technique="{escape(r["technique"] or "")}" data-class="{escape(r["energy_class"] or "")}">'
            + "".join(cells)
            + "</tr>"
        )
    return (
        f'<div class="tbl"><table class="board sortable {kind}" data-task="{escape(task)}" data-kind="{kind}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _legend() -> str:
    dl = "".join(f"<dt>{escape(h)}</dt><dd>{escape(d)}</dd>" for h, d in LEGEND)
    dl += "<dt>details</dt><dd>provenance of the row: runtime version, meter, windows, CIs, host, date</dd>"
    return (
        '<details class="legend-box"><summary>How to read the tables</summary>'
        f'<dl class="legend-dl">{dl}</dl><p class="note">{escape(GRADE_RULE)}</p></details>'
    )


def _simple_table(cls: str, cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> str:
    head = "".join(f'<th class="sortable"{TAB}>{escape(lab)}</th>' for _, lab in cols)
    body = []
    for r in rows:
        tds = []
        for k, _ in cols:
            v = r.get(k)
            if isinstance(v, bool):
                tds.append(
                    _td(
                        f'<span class="{"yes" if v else "no"}">{"yes" if v else "no"}</span>',
                        int(v),
                        raw=True,
                    )
                )
            elif isinstance(v, float):
                txt = energy_text(v) if k.endswith("_j") else format(v, ".4g")
                tds.append(_td(txt, v, num=True))
            else:
                tds.append(_td("–" if v is None else str(v), v))
        body.append(f"<tr>{''.join(tds)}</tr>")
    return (
        f'<div class="tbl"><table class="{cls} sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _label_figure(lab: dict[str, Any]) -> str:
    # the download link's data: URL is made from the inline SVG on click (no second copy in the file)
    return (
        f'<figure class="card" data-target="{escape(lab["target"] or "")}" '
        f'data-technique="{escape(lab["technique"] or "")}" data-class="{escape(lab["energy_class"] or "")}">'
        f'{svg_label(lab)}<figcaption><a class="svg" download="{escape(file_stem(lab))}.svg" href="#">'
        'download SVG</a> · <button type="button" class="png">download PNG</button></figcaption></figure>'
    )


def _options(key: str, label: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v or "none")}</option>' for v in values)
    return (
        f'<label>{escape(label)} <select class="filter" data-key="{key}" id="filter-{key}">'
        f'<option value="">all</option>{opts}</select></label>'
    )


def render(data: ReportData) -> str:
    """The whole page from report rows (nothing is computed here)."""
    board = data.board
    colours = colour_map([r["technique"] or "" for r in board])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>frugalbench leaderboard</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>frugalbench leaderboard</h1><p>Ranked by quality per joule among variants that meet "
        "the task's minimum, within one measurement class; classes are never ranked against each other.",
    ]
    if data.runs:
        runs = "; ".join(
            f"run {r['id']} of suite {escape(str(r['suite']))} ({_t(r['started'])}, git {_t(r['git_rev'])}, "
            f"host {_t(r['host'])}, {_t(r['status'])})"
            for r in data.runs
        )
        parts.append(f"<br>{runs}")
    parts.append("</p></header><main>")
    parts.append(
        '<div class="controls">'
        + _options("target", "target", sorted({r["target"] or "" for r in board}))
        + _options("technique", "technique", sorted({r["technique"] or "" for r in board}))
        + _options("class", "measurement class", sorted({r["energy_class"] or "" for r in board}))
        + '<button id="reset" type="button">reset</button>'
        + f'<span class="note"><span id="shown">{len(board)}</span> of {len(board)} rows shown</span>'
        + '<span class="legend">'
        + "".join(
            f'<span><span class="sw" style="background:{c}"></span>{escape(t or "none")}</span>'
            for t, c in colours.items()
        )
        + "</span></div>"
    )
    parts.append(_legend())
    for n_task, t in enumerate(data.tasks):
        task = t["task"]
        rows = [r for r in board if r["task"] == task]
        hib = "at least" if t["higher_is_better"] else "at most"
        parts.append(f'<section class="task" data-task="{escape(task)}"><h2>{escape(task)}</h2>')
        meta = (
            f"Metric <b>{escape(t['metric'])}</b>, minimum acceptable: {hib} <b>{_t(t['min_accuracy'])}</b>"
        )
        if t["why_min"]:
            meta += f" ({escape(t['why_min'])})"
        if t["budget_g_per_1000"] is not None:
            meta += f". Carbon budget: <b>{t['budget_g_per_1000']:.3g} gCO2e</b> per 1000 inferences"
        parts.append(f'<p class="meta">{meta}.</p>')
        for b in t.get("best", []):
            parts.append(
                f'<p class="best">Best in class {_cls(b["energy_class"])}: <b>{escape(b["id"])}</b> · '
                f"{_num(b['accuracy_per_joule'], '.4g')} {escape(t['metric'])}/J · "
                f"{escape(energy_text(b['energy_per_inference_j']))} per inference · {escape(t['metric'])} "
                f"{_num(b['accuracy'], '.4g')} · p50 {escape(ms_text(b['latency_p50_ms']))}</p>"
            )
        parts.append('<div class="plots">')
        for i, p in enumerate(x for x in data.plots if x["task"] == task):
            svg = svg_plot(p, colours, plot_id=f"plot-{n_task}-{i}")
            parts.append(svg.replace("<svg ", f'<svg data-class="{escape(p["energy_class"])}" ', 1))
        parts.append("</div>")
        ranked = [r for r in rows if r["passes_gate"]]
        below = [r for r in rows if not r["passes_gate"]]
        parts.append("<h3>Ranked (meets the minimum)</h3>")
        parts.append(_board_table(task, ranked, data, "ranked") if ranked else '<p class="note">none</p>')
        if below:
            parts.append("<h3>Below the minimum (not ranked)</h3>")
            parts.append(_board_table(task, below, data, "below"))
        tech = [x for x in data.techniques if x["task"] == task]
        if tech:
            parts.append("<h3>Per technique: best variant and its accuracy cost against the base model</h3>")
            parts.append(
                _simple_table(
                    "techniques",
                    [
                        ("technique", "technique"),
                        ("energy_class", "class"),
                        ("best", "best variant"),
                        ("rank", "rank"),
                        ("accuracy", "quality"),
                        ("base_accuracy", "base (fp32)"),
                        ("accuracy_cost", "accuracy cost"),
                        ("energy_per_inference_j", "E / inference"),
                        ("n_variants", "variants"),
                        *(
                            [("fine_tune", "validation: base → projection → fine-tuned")]
                            if any(x.get("fine_tune") for x in tech)
                            else []
                        ),
                    ],
                    tech,
                )
            )
        models = [x for x in data.models if x["task"] == task]
        if models:
            parts.append(
                "<h3>Per model across targets: where each variant runs, how fast, at what energy</h3>"
            )
            parts.append(
                _simple_table(
                    "models",
                    [
                        ("variant", "variant"),
                        ("target", "target"),
                        ("hardware", "hardware"),
                        ("status", "status"),
                        ("energy_class", "class"),
                        ("latency_p50_ms", "p50 (ms)"),
                        ("energy_per_inference_j", "E / inference"),
                        ("model_bytes", "model bytes"),
                        ("ram_bytes", "model RAM"),
                        ("flash_bytes", "model flash"),
                        ("board_ram_bytes", "board RAM"),
                        ("board_flash_bytes", "board flash"),
                        ("reason", "why not"),
                    ],
                    models,
                )
            )
        emb = [x for x in data.embodied if x["task"] == task]
        if emb:
            parts.append(
                "<h3>Use phase and embodied carbon per 1000 inferences (shown apart, not summed)</h3>"
            )
            parts.append(
                _simple_table(
                    "embodied",
                    [
                        ("id", "variant@target"),
                        ("use_g_per_1000", "use phase gCO2e"),
                        ("use_class", "use class"),
                        ("embodied_g_per_1000", "embodied gCO2e"),
                        ("embodied_kgco2e", "device kgCO2e"),
                        ("lifetime_years", "lifetime (y)"),
                        ("duty", "duty"),
                        ("source", "embodied source"),
                    ],
                    emb,
                )
            )
        labs = [x for x in data.labels if x["task"] == task]
        if labs:
            parts.append(f"<h3>Energy labels</h3><p class='note'>{escape(GRADE_RULE)}</p>")
            parts.append('<div class="labels">' + "".join(_label_figure(x) for x in labs) + "</div>")
        parts.append("</section>")
    if data.run_budgets:
        parts.append('<section class="task"><h2>Carbon budget of the run</h2>')
        parts.append(
            _simple_table(
                "run-budgets",
                [
                    ("run_id", "run"),
                    ("suite", "suite"),
                    ("budget_g", "budget gCO2e"),
                    ("spent_g", "spent gCO2e"),
                    ("fits", "fits"),
                ],
                data.run_budgets,
            )
        )
        parts.append(
            '<p class="note">Spent = energy of the measured windows and of producing the variants, '
            "× PUE × grid factor; classes mixed in this sum: "
            + escape(
                "; ".join(
                    f"run {b['run_id']}: "
                    + ", ".join(f"{k} {v:.3g} g" for k, v in sorted(b["by_class"].items()))
                    for b in data.run_budgets
                )
            )
            + ".</p></section>"
        )
    if data.skipped:
        parts.append('<section class="task"><h2>Not measured</h2><ul class="skipped">')
        for g in data.skipped_groups:
            jobs = g["jobs"]
            parts.append(
                f"<li>{_t(g['status'])} ({len(jobs)} job{'s' if len(jobs) != 1 else ''}): {_t(g['reason'])}"
                f"<ul>{''.join(f'<li>{_t(j)}</li>' for j in jobs)}</ul></li>"
            )
        parts.append("</ul></section>")
    parts.append("</main><footer>")
    for g in data.grid_sources:
        parts.append(
            f"<p>CO2e = E × PUE ({_t(g['pue'])}) × grid factor ({_t(g['g_per_kwh'])} gCO2e/kWh); "
            f"factor source: {_t(g['source'])}.</p>"
        )
    if any(r["energy_class"] == "estimate" for r in board):
        parts.append(
            "<p>estimate: no meter or counter on the machine; energy modelled from latency "
            "(Green Algorithms per-core power), so it ranks like latency. Not a measurement.</p>"
        )
    parts.append("<p>Generated by frugalbench; this file is self-contained and makes no network request.</p>")
    parts.append(f"</footer><script>{JS}</script></body></html>")
    return "\n".join(parts)


def to_html(board: list[BoardRow], skipped: list[Result], data: ReportData | None = None) -> str:
    """HTML renderer with the registry's signature; the richer rows come in ``data`` when available."""
    return render(data if data is not None else from_board(board, skipped))
