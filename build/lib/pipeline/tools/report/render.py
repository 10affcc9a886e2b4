"""A report's data as a self-contained HTML page (charts inline as SVG, no internet needed) and as a PDF (the same
tables and charts, drawn by matplotlib's PDF backend). The HTML carries the data it shows in a JSON block
(`<script type="application/json" id="report-data">`), so every number can be checked against the records."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import jinja2
from matplotlib.backends.backend_pdf import PdfPages

from pipeline.kpis.reporting.figures import ROWS, met
from pipeline.tools.report import charts

NOT_AVAILABLE = "not available"
LINES_PER_PAGE = 62  # of the PDF's text pages


def fmt(value: float | None, unit: str, currency: str = "") -> str:
    """A number as the report shows it; None is "not available"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "seconds":
        return f"{value:.1f} s"
    if unit == "hours":
        return f"{value:.1f} h"
    if unit == "money":
        return f"{value:,.2f} {currency}".strip()
    if unit == "score":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def change(now: float | None, before: float | None, unit: str) -> str:
    if now is None or before is None:
        return ""
    diff = now - before
    if unit == "ratio":
        return f"{diff * 100:+.1f} pt"
    if unit in ("contacts",):
        return f"{diff:+,.0f}"
    return f"{diff:+.2f}" if unit in ("money", "score") else f"{diff:+.1f}"


def table_rows(q: dict[str, Any]) -> list[dict[str, str]]:
    """The KPI rows of one queue and channel, formatted."""
    currency = (q["cost"] or {}).get("currency", "")
    out = []
    for key, title, unit in ROWS:
        now, before = q["kpis"].get(key), q["previous"].get(key)
        target = q["targets"].get(key)
        ok = met(key, now, target)
        if key == "service_level":
            title = f"Service level ({q['variant']}, within {q['threshold_seconds']:g} s)"
        if key == "fcr_rate" and q["fcr_provisional_intervals"]:
            title += f"; {q['fcr_provisional_intervals']} provisional intervals left out"
        out.append(
            {
                "key": key,
                "title": title,
                "now": fmt(now, unit, currency),
                "previous": fmt(before, unit, currency),
                "change": change(now, before, unit),
                "target": fmt(target, unit) if target is not None else "",
                "status": "" if ok is None else ("met" if ok else "missed"),
            }
        )
    return out


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.missed{color:#b00;font-weight:600}.met{color:#070}.na{color:#888}
h2{border-bottom:2px solid #333;padding-bottom:.2em;margin-top:2em}figure{margin:0}svg{max-width:100%;height:auto}
.note{color:#555;font-size:.85em}
</style></head><body>
<h1>{{ title }}</h1>
<p>{{ period.label }} ({{ period.kind }}), against the targets and the previous {{ period.kind }} ({{ previous.label }}).
Built from {{ record_count }} final KPI records. Definitions: docs/kpis.md; this report's methods: docs/reports.md.</p>
{% if not data.has_forecast %}<p class="note">No forecast in the records: volume against forecast and forecast accuracy are not available.</p>{% endif %}
{% if not data.has_agents %}<p class="note">No agent records: occupancy, utilization, adherence, staffing gap and cost are not available.</p>{% endif %}
<p class="note">First contact resolution counts final intervals only (their repeat window has passed){% if not data.has_fcr %}; the records hold no FCR records, so it is not available{% endif %}.</p>

<h2>Queues</h2>
{% for q in queues %}
<h3 id="q-{{ q.queue_id }}-{{ q.channel }}">{{ q.queue_id }} ({{ q.channel }}), team {{ q.team }}</h3>
<table><tr><th>KPI</th><th>this {{ period.kind }}</th><th>previous</th><th>change</th><th>target</th><th></th></tr>
{% for r in q.rows %}<tr><td>{{ r.title }}</td><td class="{{ 'na' if r.now == na else '' }}">{{ r.now }}</td><td>{{ r.previous }}</td><td>{{ r.change }}</td><td>{{ r.target }}</td><td class="{{ r.status }}">{{ r.status }}</td></tr>
{% endfor %}</table>
<p class="note">{{ q.intervals_missed }} of {{ q.intervals }} intervals below the service level target.
{% if q.cost %}Cost: agents {{ q.cost_text.agent }} ({{ q.cost_text.agent_hours }} logged in), telephony {{ q.cost_text.telephony }}, self-service {{ q.cost_text.self_service }}; the agents the target needed ({{ q.cost_text.required_hours }} on the phones, by the records' Erlang requirement, no shrinkage) would have cost {{ q.cost_text.of_target }}.{% else %}Cost: not available (no agent_hour_cost for the queue in the queue file).{% endif %}</p>
{% endfor %}

<h2>Self-service share</h2>
<table><tr><th>channel</th><th>resolved in self-service</th><th>reached an agent queue</th><th>self-service share</th><th>previous</th></tr>
{% for s in self_service %}<tr><td>{{ s.channel }}</td><td>{{ s.contained }}</td><td>{{ s.assisted }}</td><td>{{ s.share }}</td><td>{{ s.previous_share }}</td></tr>
{% endfor %}</table>

<h2>Day by day, and why targets were missed</h2>
<p class="note">Each missed interval's shortfall (contacts short of the target) is split between causes by the agents each took away (Erlang C; docs/reports.md); a day's shares weigh its intervals by their shortfall.</p>
<table><tr><th>day</th><th>queue</th><th>service level</th><th>target</th><th>adherence</th><th>missed intervals</th><th>contacts short</th><th>likely causes (share of the miss)</th></tr>
{% for d in days %}<tr><td>{{ d.date }}</td><td>{{ d.queue_id }} ({{ d.channel }})</td><td>{{ d.sl }}</td><td>{{ d.target }}</td><td>{{ d.adherence_text }}</td><td>{{ d.missed_intervals }}</td><td>{{ d.short }}</td><td style="text-align:left">{{ d.causes }}</td></tr>
{% endfor %}</table>
<h3>The worst intervals</h3>
<table><tr><th>interval (UTC)</th><th>queue</th><th>SL</th><th>offered / forecast</th><th>AHT / plan</th><th>agents available / required</th><th>causes</th></tr>
{% for w in worst %}<tr><td>{{ w.start }}</td><td>{{ w.queue }}</td><td>{{ w.sl }}</td><td>{{ w.volume }}</td><td>{{ w.aht }}</td><td>{{ w.agents }}</td><td style="text-align:left">{{ w.causes }}</td></tr>
{% endfor %}</table>

<h2>Charts</h2>
{% for c in charts %}<figure>{{ c | safe }}</figure>
{% endfor %}
<script type="application/json" id="report-data">{{ data_json | safe }}</script>
</body></html>
"""


def _cause_text(causes: list[dict[str, Any]], titles: dict[str, str]) -> str:
    return "; ".join(f"{titles[c['cause']]} {c['share']:.0%}" for c in causes) or ""


def _context(data: dict[str, Any], title: str, record_count: int) -> dict[str, Any]:
    titles = data["causes"]
    queues = []
    for q in data["queues"]:
        cost = q["cost"]
        cost_text = None
        if cost:
            cur = cost["currency"]
            cost_text = {
                "agent": fmt(cost["agent"], "money", cur),
                "agent_hours": fmt(cost["agent_hours"], "hours"),
                "telephony": fmt(cost["telephony"], "money", cur),
                "self_service": fmt(cost["self_service"], "money", cur),
                "required_hours": fmt(cost["required_agent_hours"], "hours"),
                "of_target": fmt(cost["of_target"], "money", cur),
            }
        queues.append({**q, "rows": table_rows(q), "cost_text": cost_text})
    days = [
        {
            **d,
            "sl": fmt(d["service_level"], "ratio"),
            "adherence_text": fmt(d["adherence"], "ratio"),
            "target": fmt(d["target"], "ratio"),
            "short": f"{d['short_contacts']:.0f}",
            "causes": _cause_text(d["causes"], titles),
        }
        for d in data["days"]
    ]
    worst = [
        {
            "start": w["start"][:16].replace("T", " "),
            "queue": f"{w['queue_id']} ({w['channel']})",
            "sl": fmt(w["service_level"], "ratio"),
            "volume": f"{w['offered']} / {fmt(w['forecast_offered'], 'contacts')}",
            "aht": f"{fmt(w['aht'], 'seconds')} / {fmt(w['forecast_aht'], 'seconds')}",
            "agents": f"{w['agents_available']:.1f} / {w['agents_required'] if w['agents_required'] is not None else NOT_AVAILABLE}",
            "causes": _cause_text(w["causes"], titles),
        }
        for w in data["missed_intervals"]
    ]
    self_service = [
        {**s, "share": fmt(s["share"], "ratio"), "previous_share": fmt(s["previous_share"], "ratio")}
        for s in data["self_service"]
    ]
    return {
        "title": title,
        "period": data["period"],
        "previous": data["previous_period"],
        "record_count": record_count,
        "data": data,
        "queues": queues,
        "days": days,
        "worst": worst,
        "self_service": self_service,
        "na": NOT_AVAILABLE,
    }


def figures(data: dict[str, Any]) -> list[Any]:
    """Every chart of the report, in order (new matplotlib figures)."""
    out = []
    for series in data["intraday"]:
        out.append(charts.intraday(series))
    out.append(charts.understaffed(data["understaffed"]))
    if data["tradeoff"]:
        out.append(charts.tradeoff(data["tradeoff"]))
    return out


def html_report(data: dict[str, Any], title: str, record_count: int) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    context = _context(data, title, record_count)
    context["charts"] = [charts.svg(f) for f in figures(data)]
    # `</` inside a script element would end it: JSON allows `<\\/` for the same text
    context["data_json"] = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    return env.from_string(TEMPLATE).render(**context)


def _queue_table(fig: Any, q: dict[str, Any], top: float, height: float) -> None:
    fig.text(0.06, top, f"{q['queue_id']} ({q['channel']}), team {q['team']}", fontsize=11, weight="bold")
    cells = [[r["title"][:60], r["now"], r["previous"], r["change"], r["target"], r["status"]] for r in q["rows"]]
    ax = fig.add_axes((0.04, top - 0.01 - height, 0.92, height))
    ax.set_axis_off()
    table = ax.table(
        cellText=cells,
        colLabels=["KPI", "this period", "previous", "change", "target", ""],
        colWidths=[0.5, 0.13, 0.13, 0.1, 0.09, 0.07],
        loc="upper left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#ddd")
        if col == 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.02
        if row and col == 5 and cells[row - 1][5] == "missed":
            cell.get_text().set_color("#b00")


def pdf_report(data: dict[str, Any], title: str, record_count: int, path: Path) -> int:
    """The same tables and charts as the HTML, one figure per page; returns the number of pages."""
    import matplotlib.pyplot as plt

    context = _context(data, title, record_count)
    pages = 0
    with PdfPages(path, metadata={"Title": title, "CreationDate": None}) as pdf:
        queues = context["queues"]
        for i in range(0, len(queues), 2):
            fig = plt.figure(figsize=(8.27, 11.69))
            top = 0.96
            if i == 0:
                fig.text(0.06, top, title, fontsize=14, weight="bold")
                fig.text(0.06, top - 0.025, f"{context['period']['label']} against {context['previous']['label']}")
                top -= 0.05
            for slot, q in enumerate(queues[i : i + 2]):
                y = top - slot * 0.47
                _queue_table(fig, q, y, min(0.42, y - 0.04))
            pdf.savefig(fig)
            plt.close(fig)
            pages += 1
        lines = [
            f"{s['channel']}: self-service share {s['share']} (previous {s['previous_share']})"
            for s in context["self_service"]
        ]
        lines.append("")
        lines += [
            f"{d['date']} {d['queue_id']} ({d['channel']}): SL {d['sl']} vs {d['target']}, adherence "
            f"{d['adherence_text']}, {d['missed_intervals']} intervals missed: {d['causes']}"
            for d in context["days"]
        ]
        for first in range(0, len(lines), LINES_PER_PAGE):
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(
                0.06, 0.96, "Self-service share, day by day, and why targets were missed", fontsize=12, weight="bold"
            )
            for j, line in enumerate(lines[first : first + LINES_PER_PAGE]):
                fig.text(0.04, 0.93 - j * 0.0145, html.unescape(line)[:160], fontsize=6.3)
            pdf.savefig(fig)
            plt.close(fig)
            pages += 1
        for chart in figures(data):
            pdf.savefig(chart, bbox_inches="tight")
            plt.close(chart)
            pages += 1
    return pages
