"""The video timeline chart: garments of each class on screen over time, as SVG (matplotlib's Figure
API, never pyplot: pyplot keeps global state and leaks in a server)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, selectable, readable by tests


def timeline_alt(timeline: dict[str, Any], name: str = "the clip") -> str:
    """One sentence a screen reader can say instead of the chart."""
    times, counts = timeline.get("times_s") or [], timeline.get("counts") or {}
    if not times or not counts:
        return f"Timeline of {name}: no garments were found on screen."
    parts = []
    for label, series in sorted(counts.items(), key=lambda kv: -max(kv[1])):
        on = [t for t, c in zip(times, series, strict=True) if c]
        if on:
            parts.append(f"{label} {on[0]:.1f}-{on[-1]:.1f} s (up to {max(series)} at once)")
    return (f"Timeline of {name}, {times[-1]:.1f} s analysed: garments on screen by class: "
            + "; ".join(parts) + ".")


def timeline_svg(timeline: dict[str, Any], colours: dict[str, str], title: str = "Garments on screen",
                 alt: str | None = None) -> str:
    """Step lines, one per class, of how many garments of it are on screen at each analysed time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    times, counts = timeline.get("times_s") or [], timeline.get("counts") or {}
    fig = Figure(figsize=(7.5, 2.9), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if times and counts:
        for label, series in sorted(counts.items()):
            ax.step(times, series, where="post", label=label, color=colours.get(label, "#555555"), linewidth=2)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
        ax.set_xlim(0, max(times[-1], 0.1))
        ax.set_ylim(0, max(max(s) for s in counts.values()) + 0.5)
    else:
        ax.text(0.5, 0.5, "no garments found", ha="center", va="center", transform=ax.transAxes, color="#6b7080")
        ax.set_yticks([])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=11, loc="left", parse_math=False)  # a file name: "$...$" is not maths
    ax.set_xlabel("time in the clip (s)")
    ax.set_ylabel("garments on screen")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML
    if alt:
        from markupsafe import escape

        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(alt)}" ', 1)
        head_end = svg.index(">") + 1
        svg = svg[:head_end] + f"<title>{escape(alt)}</title>" + svg[head_end:]
    return svg
