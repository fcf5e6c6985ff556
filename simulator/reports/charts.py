"""Charts for reports as inline SVG strings (matplotlib, Agg, no pyplot, no network, no JavaScript).

Reports must be self-contained and printable, and weasyprint (PDF) runs no JavaScript, so every
chart is a static SVG written by matplotlib and pasted into the page. Each SVG is cleaned for
inlining: the XML prolog, DOCTYPE (an external DTD URL) and metadata are removed, ids get a
per-chart prefix (several charts share one HTML document), and the fixed size becomes responsive.

Inputs are numbers and rubric/persona ids only. Trainee or model text never goes into a chart, and
the output is produced here, so templates may mark it safe (``Markup``).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "counselsim"  # stable ids, so equal input -> equal SVG
matplotlib.rcParams["font.family"] = "DejaVu Sans"

INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e3e8ee"
BAND = {"below fair": "#f8d7d3", "fair": "#fbeccb", "good": "#d5efdc"}
VERDICT_INK = {"below fair": "#b3261e", "fair": "#9a6700", "good": "#1e7b3c", None: MUTED}
PALETTE = ["#2f6db5", "#1e9e8a", "#7b4fb8", "#d9822b", "#c23b5a", "#4c9a2a", "#8a6d3b",
           "#3d8fd1", "#b04fa0", "#5f6b7a", "#e0a400", "#2a7f62"]
RAPPORT, RESISTANCE = "#2f6db5", "#c2410c"

_lock = threading.Lock()
_counter = [0]


def _style(ax: object) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#aab4bf")
    ax.tick_params(colors=MUTED, labelsize=8.5)
    ax.yaxis.label.set_color(MUTED)
    ax.xaxis.label.set_color(MUTED)


def to_svg(fig: Figure, title: str) -> str:
    """Serialise a figure to an inline-ready SVG string with an accessible title."""
    buf = io.StringIO()
    with _lock:
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                    bbox_inches="tight", pad_inches=0.08, transparent=True)
        _counter[0] += 1
        prefix = f"c{_counter[0]}-"
    return clean_svg(buf.getvalue(), prefix, title)


def clean_svg(svg: str, prefix: str, title: str) -> str:
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'(<svg[^>]*?)\swidth="[^"]*"\s+height="[^"]*"',
                 r'\1 class="chart" preserveAspectRatio="xMidYMid meet"', svg, count=1)
    safe_title = (title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    svg = re.sub(r"(<svg[^>]*>)", lambda m: f'{m.group(1)}<title>{safe_title}</title>', svg,
                 count=1)
    return svg.replace('role="img"', "").replace("<svg ", '<svg role="img" ', 1)


def codes_timeline(rows: Sequence[str], row_labels: Sequence[str],
                   points: Sequence[tuple[int, str]], n_turns: int) -> str:
    """One row per code, a mark at each turn (conversation position, 1-based) that received it;
    ``n_turns`` is the last position, so this chart lines up with the client-state chart."""
    height = 0.9 + 0.3 * max(len(rows), 1)
    fig = Figure(figsize=(7.2, height))
    ax = fig.add_subplot()
    ypos = {code: i for i, code in enumerate(reversed(rows))}
    for i, code in enumerate(rows):
        xs = [x for x, c in points if c == code]
        ax.scatter(xs, [ypos[code]] * len(xs), s=64, marker="s", color=PALETTE[i % len(PALETTE)],
                   edgecolors="white", linewidths=0.8, zorder=3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(list(reversed(row_labels)))
    ax.set_xlim(0.4, max(n_turns, 1) + 0.6)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    ax.set_xlabel("Turn")
    for x in sorted({x for x, _ in points}):
        ax.axvline(x, color=GRID, linewidth=0.8, zorder=0)
    for y in range(len(rows)):
        ax.axhline(y, color=GRID, linewidth=0.6, zorder=0)
    _style(ax)
    return to_svg(fig, "Codes over the session")


class MetricBar:
    """What the metric chart needs of a metric (kept here so charts do not import scores)."""

    def __init__(self, name: str, value: float | None, display: str, fair: float, good: float,
                 higher_is_better: bool, verdict: str | None, scale: float = 1.0,
                 fair_display: str = "", good_display: str = "") -> None:
        self.name, self.value, self.display = name, value, display
        self.fair, self.good, self.higher = fair * scale, good * scale, higher_is_better
        self.verdict, self.scale = verdict, scale
        self.fair_display, self.good_display = fair_display, good_display


def _bands(bar: MetricBar, top: float) -> list[tuple[float, float, str]]:
    """Below-fair / fair / good spans from 0 to ``top``, in the metric's direction."""
    if bar.higher:
        return [(0, bar.fair, "below fair"), (bar.fair, bar.good, "fair"), (bar.good, top, "good")]
    return [(0, bar.good, "good"), (bar.good, bar.fair, "fair"), (bar.fair, top, "below fair")]


def metric_bars(bars: Sequence[MetricBar]) -> str:
    """A bullet chart per metric: the value over below-fair / fair / good bands."""
    fig = Figure(figsize=(7.2, 0.3 + 0.78 * max(len(bars), 1)))
    axes = fig.subplots(max(len(bars), 1), 1, squeeze=False)[:, 0]
    for ax, bar in zip(axes, bars, strict=False):
        value = None if bar.value is None else bar.value * bar.scale
        top = max(bar.fair, bar.good) * 1.6 or 1.0
        if value is not None:
            top = max(top, value * 1.12)
        for a, b, name in _bands(bar, top):
            ax.axvspan(a, b, color=BAND[name], zorder=0, linewidth=0)
        marks = ((bar.fair, f"fair {bar.fair_display}"), (bar.good, f"good {bar.good_display}"))
        for x, label in marks:
            ax.axvline(x, color="#8b97a3", linewidth=1, linestyle=(0, (2, 2)), zorder=1)
            ax.text(x, 1.02, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=7.5, color=MUTED)
        if value is not None:
            ax.barh([0], [value], height=0.42, color=INK, zorder=2)
        ax.text(top, 0, f"  {bar.display}", va="center", ha="left", fontsize=10, fontweight="bold",
                color=VERDICT_INK.get(bar.verdict, MUTED), clip_on=False)
        ax.set_xlim(0, top)
        ax.set_ylim(-0.5, 0.5)
        ax.set_yticks([0])
        ax.set_yticklabels([bar.name], fontsize=9)
        _style(ax)
        ax.tick_params(axis="x", labelsize=7.5)
    fig.subplots_adjust(hspace=1.1)
    return to_svg(fig, "Summary metrics against fair and good thresholds")


def client_state(points: Sequence[tuple[int, float | None, float | None]],
                 disclosures: Sequence[tuple[int, str]] = (), n_turns: int | None = None) -> str:
    """Rapport and resistance (0..1) after each client turn (x = turn position, 1-based);
    with ``n_turns`` the x axis matches ``codes_timeline``'s."""
    fig = Figure(figsize=(7.2, 2.5))
    ax = fig.add_subplot()
    for key, color, label in ((1, RAPPORT, "Rapport"), (2, RESISTANCE, "Resistance")):
        xs = [float(p[0]) for p in points if p[key] is not None]
        ys = [float(p[key] or 0) for p in points if p[key] is not None]
        if xs:
            ax.plot(xs, ys, color=color, linewidth=2, marker="o", markersize=3.5, label=label,
                    zorder=3)
    for n, (x, fact) in enumerate(disclosures):
        ax.axvline(x, color="#7b4fb8", linewidth=0.9, linestyle=(0, (1, 2)), zorder=1)
        ax.text(x, 1.03 + 0.09 * (n % 2), fact, ha="center", va="bottom", fontsize=7,
                color="#7b4fb8", transform=ax.get_xaxis_transform())
    ax.set_ylim(0, 1)
    if n_turns:
        ax.set_xlim(0.4, n_turns + 0.6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    ax.set_xlabel("Turn")
    ax.grid(axis="y", color=GRID, linewidth=0.8, zorder=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False,
              fontsize=8.5)
    _style(ax)
    return to_svg(fig, "Client rapport and resistance over the session")


def progress_lines(labels: Sequence[str], series: Sequence[tuple[MetricBar, Sequence[float | None]]]
                   ) -> str:
    """One small panel per metric: its value per session (x = session label) with thresholds."""
    n = max(len(series), 1)
    fig = Figure(figsize=(7.2, 0.5 + 1.7 * n))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    xs = list(range(1, len(labels) + 1))
    for ax, (bar, values) in zip(axes, series, strict=False):
        ys = [None if v is None else v * bar.scale for v in values]
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        tops = [y for _, y in pts] + [bar.fair, bar.good]
        top = max(tops) * 1.2 or 1.0
        for a, b, name in _bands(bar, top):
            ax.axhspan(a, b, color=BAND[name], zorder=0, linewidth=0)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=INK, marker="o",
                    markersize=4, linewidth=1.8, zorder=3)
        ax.set_ylim(0, top)
        ax.set_xlim(0.5, len(labels) + 0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(list(labels), fontsize=7.5)
        ax.set_title(bar.name, fontsize=9.5, color=INK, loc="left")
        _style(ax)
    fig.subplots_adjust(hspace=0.8)
    return to_svg(fig, "Summary metrics over sessions")
