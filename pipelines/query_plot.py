"""`python -m pipelines.query --plot METRIC`: a PNG of one metric over the windows of the `latest`
view, one line per dimension value, the --top values with the most events."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any, Sequence

from pipelines.query_sources import INSTALL_HINT, QueryError
from transforms.formats import METRIC_FIELDS

METRICS = tuple(name for name, _ in METRIC_FIELDS)
# How a metric of several groups combines into one of their union; the others (quantiles,
# distinct ids) are sketches that the files no longer hold, so they cannot be combined.
COMBINED = {
    "count": "sum(count)",
    "sum": "sum(sum)",
    "min": "min(min)",
    "max": "max(max)",
    "mean": "sum(sum) / sum(count)",
}
MAX_LABEL = 40


def check_plot_args(metric: str, top: int) -> None:
    """Refuse an unknown metric or a --top below 1 before any file is read (QueryError)."""
    if metric not in METRICS:
        raise QueryError(f"--plot {metric!r} is not a metric; choose one of {', '.join(METRICS)}.")
    if top < 1:
        raise QueryError(f"--top {top} must be at least 1 (how many dimension values get a line).")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plot_dimensions(dimensions: Sequence[str], plot_by: str | None, metric: str) -> list[str]:
    """The dimensions whose values make the lines (QueryError for an unknown one or a metric that
    would have to be combined over the others and cannot be)."""
    if not plot_by:
        return list(dimensions)
    chosen = [name.strip() for name in plot_by.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in dimensions]
    if unknown or not chosen:
        raise QueryError(
            f"--plot_by {plot_by!r} names {', '.join(unknown) or 'no dimension'}; the dimensions of this output "
            f"are {', '.join(dimensions)}."
        )
    if set(chosen) != set(dimensions) and metric not in COMBINED:
        raise QueryError(
            f"--plot {metric} cannot be combined over {', '.join(d for d in dimensions if d not in chosen)}: "
            f"quantiles and distinct_ids of several groups are not derivable from their files. Plot it by every "
            f"dimension (leave out --plot_by) or plot one of {', '.join(COMBINED)}."
        )
    return chosen


def series(con: Any, by: Sequence[str], metric: str, top: int) -> tuple[int, dict[str, list[tuple]]]:  # noqa: ANN401
    """(how many dimension values there are, {label: [(window_start, value), ...]} for the top ones by count)."""
    cols = ", ".join(_quote(name) for name in by)
    # One row per group and window when `by` is every dimension: max() of one value is the value.
    value = COMBINED.get(metric, f"max({_quote(metric)})")
    total = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {cols} FROM latest)").fetchone()[0]
    rows = con.execute(
        f"WITH top AS (SELECT {cols}, sum(count) AS volume FROM latest GROUP BY {cols} "
        f"ORDER BY volume DESC, {cols} LIMIT {int(top)}) "
        f"SELECT {cols}, window_start, {value} AS value, any_value(top.volume) AS volume "
        f"FROM latest JOIN top USING ({cols}) GROUP BY ALL ORDER BY volume DESC, {cols}, window_start"
    ).fetchall()
    lines: dict[str, list[tuple]] = {}
    for row in rows:
        label = "/".join(str(v) for v in row[: len(by)])
        label = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 3] + "..."
        start = datetime.fromisoformat(row[len(by)].replace("Z", "+00:00"))
        lines.setdefault(label, []).append((start, row[len(by) + 1]))
    return total, lines


def plot_metric(
    con: Any,  # noqa: ANN401 - a DuckDB connection with the `latest` view
    dimensions: Sequence[str],
    metric: str,
    top: int,
    plot_by: str | None,
    path: str,
) -> str:
    """Write the chart to `path`; returns a one-line summary of what it shows."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is needed or wanted
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise QueryError(
            f"--plot needs matplotlib, which is not installed; {INSTALL_HINT.format(extra='query')}"
        ) from None
    by = plot_dimensions(dimensions, plot_by, metric)
    total, lines = series(con, by, metric, top)
    name = "/".join(by)
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=100)
    windows = set()
    for label, points in lines.items():
        xs, ys = zip(*points, strict=True)
        windows.update(xs)
        ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, linewidth=1.4, label=label)
    ax.set_title(f"{metric} per window (latest pane): top {len(lines)} of {total} {name} values by event count")
    ax.set_xlabel("window start (UTC)")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.legend(title=name, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fig.savefig(path, format="png")
    except OSError as err:
        raise QueryError(f"cannot write --plot_out {path!r}: {err.strerror}; choose a writable path.") from None
    finally:
        plt.close(fig)
    return f"wrote {path}: {metric} of the top {len(lines)} of {total} {name} values over {len(windows)} windows"
