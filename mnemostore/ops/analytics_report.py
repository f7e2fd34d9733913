"""Charts (PNG, matplotlib) and the self-contained HTML report of an ``AnalyticsResult``: ``write_report``.

It sits above ``analytics`` (it imports it, never the reverse).

The HTML embeds every chart as a base64 data URI and carries its own CSS, so it can be mailed or archived as one
file. Every value from the database (model and tool names) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnemostore.ops.analytics import AnalyticsResult, require

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["format_value", "write_report"]

_TIERS_ORDER = ("working", "short_term", "long_term")


def write_report(result: AnalyticsResult, out_dir: Path | str, *, title: str = "mnemostore analytics") -> list[Path]:
    """Write a PNG chart per question and ``report.html`` (self-contained: charts embedded) into ``out_dir``.

    Returns:
        The files written, the HTML report last.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts: list[tuple[str, str, bytes]] = []  # (file name, caption, png)
    for name, caption, draw in _CHARTS:
        charts.append((f"{name}.png", caption, _render(draw, result)))
    written = []
    for file_name, _, png in charts:
        path = out_dir / file_name
        path.write_bytes(png)
        written.append(path)
    report = out_dir / "report.html"
    report.write_text(_html(result, charts, title), encoding="utf-8")
    written.append(report)
    return written


def format_value(value: Any) -> str:
    """How a cell reads in the terminal and the HTML report."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- charts ----------------------------------------------------------------------------------------------------


def _render(draw: Callable[[Axes, AnalyticsResult], None], result: AnalyticsResult) -> bytes:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure

    figure: Figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    axes = figure.subplots()
    draw(axes, result)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _no_data(axes: Axes, title: str) -> None:
    axes.set_title(title)
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="grey")
    axes.set_axis_off()


def _daily(axes: Axes, result: AnalyticsResult) -> None:
    rows = result.daily_activity.to_pylist()
    title = "Messages and active users per day"
    if not rows:
        return _no_data(axes, title)
    days = [str(r["day"]) for r in rows]
    axes.bar(days, [r["messages"] for r in rows], color="#4C78A8", label="messages")
    axes.set_ylabel("messages")
    users = axes.twinx()
    users.plot(days, [r["active_users"] for r in rows], color="#F58518", marker="o", label="active users")
    users.set_ylabel("active users")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)
    return None


def _models(axes: Axes, result: AnalyticsResult) -> None:
    rows = result.models.to_pylist()
    title = "Tokens per model"
    if not rows:
        return _no_data(axes, title)
    names = [r["model"] for r in rows][::-1]
    axes.barh(names, [r["prompt_tokens"] for r in rows][::-1], color="#4C78A8", label="prompt")
    axes.barh(
        names,
        [r["completion_tokens"] for r in rows][::-1],
        left=[r["prompt_tokens"] for r in rows][::-1],
        color="#72B7B2",
        label="completion",
    )
    axes.set_xlabel("tokens")
    axes.set_title(title)
    axes.legend(loc="lower right")
    return None


def _tools(axes: Axes, result: AnalyticsResult) -> None:
    rows = result.tools.to_pylist()
    title = "Tool latency percentiles (ms)"
    if not rows:
        return _no_data(axes, title)
    width = 0.27
    positions = range(len(rows))
    for offset, (key, color) in enumerate((("p50_ms", "#4C78A8"), ("p95_ms", "#F58518"), ("p99_ms", "#E45756"))):
        axes.bar(
            [p + (offset - 1) * width for p in positions],
            [r[key] or 0 for r in rows],
            width=width,
            color=color,
            label=key.removesuffix("_ms"),
        )
    axes.set_xticks(list(positions), [f"{r['tool']}\n{r['success_rate']:.0%} ok" for r in rows])
    axes.set_ylabel("ms")
    axes.set_title(title)
    axes.legend()
    return None


def _memory(axes: Axes, result: AnalyticsResult) -> None:
    rows = result.memory_growth.to_pylist()
    title = "Memories per tier (running total)"
    if not rows:
        return _no_data(axes, title)
    tiers = sorted({r["tier"] for r in rows}, key=lambda t: (_TIERS_ORDER.index(t) if t in _TIERS_ORDER else 9, t))
    for tier in tiers:
        points = [r for r in rows if r["tier"] == tier]
        axes.plot([str(r["day"]) for r in points], [r["total"] for r in points], marker="o", label=tier)
    axes.set_ylabel("memories")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)
    axes.legend()
    return None


_CHARTS: Sequence[tuple[str, str, Callable[[Axes, AnalyticsResult], None]]] = (
    ("daily_activity", "Messages and active users per day", _daily),
    ("models", "Tokens per model", _models),
    ("tools", "Tool latency and success rate", _tools),
    ("memory_growth", "Memory growth per tier", _memory),
)


# -- HTML ------------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .meta { color: #666; font-size: 0.85rem; }
"""

_SECTIONS = (
    ("daily_activity", "Messages and active users per day"),
    ("models", "Tokens and estimated cost per model"),
    ("conversations", "Conversations"),
    ("tools", "Tools: success rate and latency"),
    ("memory_growth", "Memory growth per tier"),
)


def _table_html(table: Any) -> str:
    rows = table.to_pylist()
    head = "".join(f"<th>{html.escape(name)}</th>" for name in table.column_names)
    if not rows:
        return f"<table><tr>{head}</tr><tr><td colspan='{len(table.column_names)}'>no data</td></tr></table>"
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(row[n]))}</td>" for n in table.column_names) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(result: AnalyticsResult, charts: Sequence[tuple[str, str, bytes]], title: str) -> str:
    images = {name.removesuffix(".png"): (caption, png) for name, caption, png in charts}
    scope = f"tenant {result.tenant_id}" if result.tenant_id is not None else "all tenants"
    since = f", since {result.since.isoformat()}" if result.since is not None else ""
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(scope + since)}; generated {datetime.now(UTC).isoformat(timespec='seconds')}."
        " Costs are estimates from the configured price table (MNEMOSTORE_MODEL_PRICES).</p>",
    ]
    tables = result.tables()
    for key, heading in _SECTIONS:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if key in images:
            caption, png = images[key]
            data = base64.b64encode(png).decode()
            parts.append(f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>")
        parts.append(_table_html(tables[key]))
    parts.append("</body></html>")
    return "\n".join(parts)
