"""Charts as inline SVG text, drawn by matplotlib: the report pages embed them, nothing is fetched.

Why matplotlib SVG rather than plotly: the page must open offline and stay small. Inline SVG needs no
script at all (plotly's inlined JavaScript is some 3.5 MB per page), renders in any browser, is crisp when
zoomed or printed, and its text stays text (``svg.fonttype = none``), searchable and copyable. The
interactivity plotly adds (hover, zoom) is what the table beside each plot gives here.

The output is deterministic (fixed ids, no date), so building twice writes the same report.html.
matplotlib is an optional extra (``fpgac[report]``) imported only when a page is drawn.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fpgac.errors import FpgacError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The palette of every chart (matplotlib's default cycle, named by what it shows).
BLUE, ORANGE, GREEN, RED, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9a9a9a"


class PlotsUnavailable(FpgacError):
    """matplotlib is not installed."""


def require() -> None:
    """Fail with what to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotsUnavailable("the HTML report needs matplotlib: pip install 'fpgac[report]'") from None


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(
        {
            "svg.hashsalt": "fpgac",
            "svg.fonttype": "none",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    ):
        yield


def figure(
    width: float, height: float, draw: Callable[[Figure], None], *, left: float = 0.6, hspace: float = 0.4
) -> str:
    """A figure of ``width`` x ``height`` inches, drawn by ``draw``, as an ``<svg>`` element.

    The margins are fixed (``left`` inches for the row labels): matplotlib's automatic layouts measure
    every tick label's extent first, which made them most of a report's drawing time.
    """
    from matplotlib.figure import Figure

    with _style():
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(
            left=left / width,
            right=1 - 0.2 / width,
            bottom=0.5 / height,
            top=1 - 0.3 / height,
            wspace=0.3,
            hspace=hspace,
        )
        draw(fig)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: the element sits inside HTML


def bars(labels: list[str], series: dict[str, list[float]], *, xlabel: str, log: bool = False) -> str:
    """Horizontal bars, one panel per series side by side, sharing the rows' labels (one row a layer)."""
    height = 1.0 + 0.19 * len(labels)
    colors = [BLUE, ORANGE, GREEN, RED, GREY]

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(series), sharey=True, squeeze=False)[0]
        rows = list(range(len(labels)))
        for i, (ax, (name, values)) in enumerate(zip(axes, series.items(), strict=True)):
            ax.barh(rows, values, color=colors[i % len(colors)], height=0.7)
            ax.set_title(name)
            ax.set_xlabel(xlabel)
            positive = [v for v in values if v > 0]
            if log and positive and max(positive) > 100 * min(positive):  # log only where it helps
                ax.set_xscale("log")
        axes[0].set_yticks(rows, labels)
        axes[0].invert_yaxis()

    left = 0.3 + 0.065 * max((len(label) for label in labels), default=0)  # about 0.065 in a character
    return figure(left + 0.3 + 2.2 * len(series), height, draw, left=left)


def histograms(panels: list[tuple[str, Any]], *, columns: int = 4) -> str:
    """Small histograms, one per (title, values) panel, in a grid."""
    rows = -(-len(panels) // columns)

    def draw(fig: Figure) -> None:
        axes = fig.subplots(rows, columns, squeeze=False)
        for ax, (title, values) in zip(axes.flat, panels, strict=False):
            ax.hist(values, bins=48, color=BLUE, histtype="stepfilled")  # one polygon, not 48 bars
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)

    return figure(2.4 * columns, 1.8 * rows + 0.3, draw, left=0.45, hspace=0.7)


def scatter_front(
    points: list[dict[str, Any]], cost: str, label: str, front: list[int], *, log: bool = False
) -> str:
    """Accuracy against one cost: every built point (hollow where it does not fit), the front as a step line
    with its points numbered."""

    def draw(fig: Figure) -> None:
        ax: Axes = fig.subplots()
        fits = [p for p in points if p["fits"]]
        over = [p for p in points if not p["fits"]]
        ax.scatter([p[cost] for p in fits], [p["accuracy"] for p in fits], s=18, color=BLUE, label="fits")
        if over:
            ax.scatter(
                [p[cost] for p in over],
                [p["accuracy"] for p in over],
                s=18,
                facecolors="none",
                edgecolors=GREY,
                label="does not fit",
            )
        by_point = {p["point"]: p for p in points}
        chosen = [by_point[k] for k in front]
        if chosen:
            xs, ys = [p[cost] for p in chosen], [p["accuracy"] for p in chosen]
            ax.step(xs, ys, where="post", color=RED, linewidth=1.2)
            ax.scatter(xs, ys, s=30, color=RED, zorder=3, label="Pareto front")
            for p in chosen:
                ax.annotate(
                    str(p["point"]),
                    (p[cost], p["accuracy"]),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize=7,
                )
        if log and any(p[cost] > 0 for p in points):
            ax.set_xscale("symlog" if any(p[cost] == 0 for p in points) else "log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right", fontsize=7)

    return figure(3.6, 2.9, draw)
