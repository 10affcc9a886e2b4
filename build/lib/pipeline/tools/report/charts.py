"""The report's charts with matplotlib (Agg: no display): intraday service level against target, volume against
forecast, a heat map of understaffed intervals, and the staffing trade-off (service level, ASA, occupancy, cost
against agents). Each function draws on a new figure from the report's data and returns it; `svg` and `png`
turn a figure into inline HTML or image bytes."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402

# a fixed salt and no dates: the same data draws the same files (the committed sample diffs only when it changes)
plt.rcParams.update(
    {
        "svg.hashsalt": "cc-kpi-report",
        "font.size": 8,
        "svg.fonttype": "none",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def svg(fig: Figure) -> str:
    buf = io.StringIO()
    # no metadata: it links matplotlib's site, and the report must not point outside itself
    fig.savefig(
        buf, format="svg", bbox_inches="tight", metadata={"Creator": None, "Date": None, "Format": None, "Type": None}
    )
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _ticks(ax: Any, labels: list[str], every: int = 8) -> None:
    ax.set_xticks(range(0, len(labels), every))
    ax.set_xticklabels(labels[::every])


def intraday(series: dict[str, Any]) -> Figure:
    """One queue's day: service level against target above, volume against forecast below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 4.6), sharex=True)
    service_level(series, top)
    volume(series, bottom)
    fig.tight_layout()
    return fig


def service_level(series: dict[str, Any], ax: Any) -> None:
    """Headline service level by time of day (counts summed over the period's days) and the target."""
    pts = series["points"]
    times = [p["time"] for p in pts]
    values = [p["service_level"] * 100 if p["service_level"] is not None else float("nan") for p in pts]
    ax.plot(range(len(times)), values, marker=".", lw=1.2, label="service level")
    ax.axhline(series["target"] * 100, color="tab:red", ls="--", lw=1, label=f"target {series['target']:.0%}")
    ax.set_ylim(0, 102)
    ax.set_ylabel("%")
    _ticks(ax, times)
    ax.set_title(f"{series['queue_id']} ({series['channel']}): service level by time of day")
    ax.legend(loc="lower right", frameon=False)


def volume(series: dict[str, Any], ax: Any) -> None:
    """Offered against forecast by time of day."""
    pts = series["points"]
    times = [p["time"] for p in pts]
    ax.bar(range(len(times)), [p["offered"] for p in pts], color="tab:blue", alpha=0.6, label="offered")
    if any(p["forecast"] is not None for p in pts):
        fc = [p["forecast"] if p["forecast"] is not None else float("nan") for p in pts]
        ax.plot(range(len(times)), fc, color="black", lw=1.2, label="forecast")
    else:
        ax.text(0.5, 0.9, "no forecast", transform=ax.transAxes, ha="center")
    _ticks(ax, times)
    ax.set_ylabel("contacts")
    ax.set_title(f"{series['queue_id']} ({series['channel']}): volume against forecast")
    ax.legend(loc="upper right", frameon=False)


def understaffed(heat: dict[str, Any]) -> Figure:
    """Agents short (required - available), summed over the queues, by day and time of day."""
    rows = max(1, len(heat["dates"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.28 * rows))
    if not heat["dates"]:
        ax.text(0.5, 0.5, "no staffing data (no agent records or no handled contacts)", ha="center")
        ax.set_axis_off()
        return fig
    image = ax.imshow(heat["agents_short"], aspect="auto", cmap="Reds", vmin=0, interpolation="nearest")
    ax.set_yticks(range(len(heat["dates"])))
    ax.set_yticklabels(heat["dates"])
    _ticks(ax, heat["times"])
    fig.colorbar(image, ax=ax, label="agents short", fraction=0.03)
    ax.set_title("Understaffed intervals: agents required (Erlang, by the records) - agents available")
    return fig


def tradeoff(t: dict[str, Any]) -> Figure:
    """Service level, ASA, occupancy and cost against agents, at one interval's volume and AHT (Erlang C)."""
    rows = t["rows"]
    agents = [r["agents"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 2.8))
    left.plot(agents, [r["service_level"] * 100 for r in rows], marker=".", label="service level %")
    left.plot(agents, [r["occupancy"] * 100 for r in rows], marker=".", label="occupancy %")
    left.axhline(t["target"] * 100, color="tab:red", ls="--", lw=1, label=f"target {t['target']:.0%}")
    left.set_xlabel("agents")
    left.set_ylim(0, 102)
    left.legend(frameon=False, loc="lower right")
    asa = [r["asa"] if r["asa"] is not None else float("nan") for r in rows]
    right.plot(agents, asa, marker=".", color="tab:purple", label="ASA (s)")
    right.set_xlabel("agents")
    right.set_ylabel("ASA (s)")
    if rows and rows[0]["cost_per_contact"] is not None:
        cost = right.twinx()
        cost.plot(
            agents, [r["cost_per_contact"] for r in rows], color="tab:green", marker=".", label="cost per contact"
        )
        cost.set_ylabel(f"cost per contact ({t['currency']})")
        cost.spines["right"].set_visible(True)
    fig.suptitle(
        f"Staffing trade-off: {t['offered']:g} contacts per {t['span_seconds'] / 60:g} min, AHT {t['aht']:.0f} s "
        f"(load {t['load']:.1f} Erlangs), {t['threshold_seconds']:g} s threshold"
    )
    fig.tight_layout()
    return fig
