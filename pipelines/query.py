"""CLI: `python -m pipelines.query OUTPUT_URI "SQL" [--format table|csv|json] [--plot METRIC]`.

SQL over the pipeline's output with DuckDB, locally, whatever the store (file, s3, gs, azfs) and
the output format (jsonl, parquet, avro). Two views:

- `aggregates`: every pane of every window and dimensions, plus the partition columns dt, hour
  (and region) decoded from the Hive path;
- `latest`: the last pane (highest pane_index) of each window and dimensions, the current answer.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import sys
from typing import Any, Sequence

import orjson
from apache_beam.options.pipeline_options import AzureOptions, PipelineOptions, S3Options

from io_connectors.uri import redact_text, redact_uri
from pipelines.options import ConfigError
from pipelines.query_plot import METRICS, check_plot_args, plot_metric
from pipelines.query_sources import INSTALL_HINT, QueryError, load_aggregates
from pipelines.sink_options import check_sink_options
from pipelines.table_cli import OUTPUT_FORMS, table_parser
from transforms.formats import non_finite_text

FORMATS = ("table", "csv", "json")
DEFAULT_TOP = 10
DEFAULT_PLOT_OUT = "query-plot.png"
# This command's own arguments; the others are Beam's store options.
OURS = ("output_uri", "sql", "format", "plot", "top", "plot_by", "plot_out")
# Cells wider than this are cut in --format table (csv and json carry them in full).
MAX_CELL = 60

DESCRIPTION = """Run SQL over the aggregates a pipeline run wrote to OUTPUT_URI, with DuckDB.
Views: `aggregates` (every pane of every window and dimensions) and `latest` (the last pane of each
window and dimensions: the current answer). Columns: window_start, window_end, the dimensions
(region, key, ...), count, sum, min, max, mean, p50, p95, p99, distinct_ids, pane, pane_index, and
the partition columns dt and hour. Stores are reached with the pipeline's settings: S3 through
--s3_endpoint_url/--s3_region_name or boto3's environment (AWS_ENDPOINT_URL, AWS_REGION, the
credential chain), GCS through default credentials or STORAGE_EMULATOR_HOST, Azure Blob through
AZURE_STORAGE_CONNECTION_STRING or --blob_service_endpoint with Azure AD."""

EPILOG = """examples:
  python -m pipelines.query ./output "select region, sum(count) as events from latest group by region"
  python -m pipelines.query s3://analytics-eu/aggregates "select * from latest limit 5" --format csv
  python -m pipelines.query ./output --plot p95 --top 5 --plot_out p95.png"""


def build_parser() -> argparse.ArgumentParser:
    parser = table_parser("python -m pipelines.query", DESCRIPTION, EPILOG,
                          f"The --output of a pipeline run: {OUTPUT_FORMS}.")
    parser.add_argument(
        "sql",
        metavar="SQL",
        nargs="?",
        help='DuckDB SQL over the views aggregates and latest, e.g. "select sum(count) from latest". '
        "Optional with --plot.",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="How the result is printed: table (aligned columns), csv (with a header row) or json (an array "
        "of objects; NaN and infinities as the strings NaN, Infinity, -Infinity). Default: table",
    )
    parser.add_argument(
        "--plot",
        metavar="METRIC",
        default=None,
        help=f"Write a PNG chart of METRIC ({', '.join(METRICS)}) from the `latest` view over window_start, one "
        "line per dimension value (each combination of --plot_by), the --top largest by total count.",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=DEFAULT_TOP,
        help=f"With --plot: how many dimension values get a line, the largest by total count. Default: {DEFAULT_TOP}",
    )
    parser.add_argument(
        "--plot_by",
        default=None,
        help="With --plot: comma-separated dimensions whose values make the lines, e.g. region; groups are "
        "combined over the other dimensions (count, sum, min, max, mean only: quantiles and distinct_ids "
        "cannot be combined). Default: every dimension",
    )
    parser.add_argument(
        "--plot_out",
        default=DEFAULT_PLOT_OUT,
        help=f"With --plot: the PNG file to write. Default: {DEFAULT_PLOT_OUT}",
    )
    # Beam's own store options, so the query reaches the store exactly as the pipeline's sinks do.
    stores = parser.add_argument_group(
        "stores (Beam's S3 and Azure options, as the pipeline takes them)",
        description="Credentials never come from the command line: --s3_access_key_id, --s3_secret_access_key,\n"
        "--s3_session_token and --azure_connection_string are refused, as in the pipeline; use the AWS\n"
        "credential chain and AZURE_STORAGE_CONNECTION_STRING instead (docs/query.md).",
    )
    S3Options._add_argparse_args(stores)  # noqa: SLF001 - Beam's option definitions, reused as they are
    AzureOptions._add_argparse_args(stores)  # noqa: SLF001
    return parser


def store_options(args: argparse.Namespace) -> PipelineOptions:
    """Beam options for the stores from the command line, refusing credentials on it as the pipeline does."""
    given = {k: v for k, v in vars(args).items() if k not in OURS and v is not None}
    options = PipelineOptions.from_dictionary(given)
    try:
        check_sink_options(options)
    except ConfigError as err:
        raise QueryError(str(err)) from None
    return options


def connect(table: Any, dimensions: Sequence[str]) -> Any:  # noqa: ANN401 - pyarrow Table -> DuckDB connection
    try:
        import duckdb
    except ImportError:
        raise QueryError(
            f"the query needs DuckDB, which is not installed; {INSTALL_HINT.format(extra='query')}"
        ) from None
    con = duckdb.connect()
    con.register("aggregates", table)
    group = ", ".join(_quote(name) for name in ("window_start", "window_end", *dimensions))
    # Rows that tie on pane_index (files of two runs, see duplicate_panes) are ordered by their
    # values too, so that the same files always give the same answer.
    con.execute(
        "CREATE VIEW latest AS SELECT * FROM aggregates QUALIFY row_number() OVER (PARTITION BY "
        f'{group} ORDER BY pane_index DESC, "count" DESC, "sum" DESC, "max" DESC, "min", distinct_ids DESC) = 1'
    )
    return con


def duplicate_panes(con: Any, dimensions: Sequence[str]) -> int:  # noqa: ANN401 - a DuckDB connection
    """How many (window, dimensions, pane_index) keys have more than one row. A run writes each key
    once; more come from files of several runs under one output."""
    key = ", ".join(_quote(name) for name in ("window_start", "window_end", *dimensions, "pane_index"))
    [(count,)] = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM aggregates GROUP BY {key} HAVING count(*) > 1)"
    ).fetchall()
    return count


def warn_of_duplicates(con: Any, dimensions: Sequence[str], shown: str) -> None:  # noqa: ANN401
    count = duplicate_panes(con, dimensions)
    if count:
        print(
            f"warning: {count:,} (window, dimensions, pane) keys have more than one row under {shown}: it holds "
            "files of more than one run, e.g. a re-run with another --window_shards or --output_format, or a "
            "series of --resume runs that each read part of a window (docs/storage.md). `latest` keeps one row "
            "of each; sum count and sum over `aggregates` for the series' totals, or give each run its own "
            "--output.",
            file=sys.stderr,
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_sql(con: Any, sql: str, columns: Sequence[str]) -> tuple[list[str], list[tuple]]:  # noqa: ANN401
    import duckdb

    empty = QueryError('the SQL holds no statement; give a query, e.g. "select * from latest limit 10"')
    if not sql.strip():
        raise empty
    try:
        cursor = con.execute(sql)
        if cursor is None:  # only comments
            raise empty
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as err:
        raise QueryError(
            f"DuckDB could not run the query: {err}\n"
            f"Query the views `aggregates` (every pane) or `latest` (last pane per window and dimensions); "
            f"their columns are {', '.join(columns)}. Quote a column name that is also a keyword, "
            'e.g. "count", and check the SQL against DuckDB\'s dialect.'
        ) from None


def _cell(value: Any) -> Any:  # noqa: ANN401 - a DuckDB result value
    if isinstance(value, float) and not math.isfinite(value):
        return non_finite_text(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    return str(value)  # timestamps, decimals, dates: their SQL text


def render(columns: Sequence[str], rows: Sequence[tuple], fmt: str) -> str:
    """The result as text in one of FORMATS."""
    cells = [[_cell(v) for v in row] for row in rows]
    if fmt == "json":
        return orjson.dumps(
            [dict(zip(columns, row, strict=True)) for row in cells], option=orjson.OPT_INDENT_2
        ).decode()
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in cells])
        return buffer.getvalue().rstrip("\n")
    text = [[_table_cell(v) for v in row] for row in cells]
    widths = [max([len(c), *(len(row[i]) for row in text)]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in cells) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    out = [line(columns), "  ".join("-" * w for w in widths), *(line(row) for row in text)]
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(s.rstrip() for s in out)


def _table_cell(value: Any) -> str:  # noqa: ANN401
    if value is None:
        return "NULL"
    text = repr(value) if isinstance(value, float) else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sql is None and args.plot is None:
        parser.error('give SQL (e.g. "select * from latest limit 10") or --plot METRIC')
    try:
        if args.plot is not None:
            check_plot_args(args.plot, args.top)
        options = store_options(args)
        table, dimensions = load_aggregates(args.output_uri, options)
        con = connect(table, dimensions)
        warn_of_duplicates(con, dimensions, redact_uri(args.output_uri))
        if args.sql is not None:
            columns, rows = run_sql(con, args.sql, table.column_names)
            if columns:
                print(render(columns, rows, args.format))
        if args.plot is not None:
            summary = plot_metric(con, dimensions, args.plot, args.top, args.plot_by, args.plot_out)
            print(summary, file=sys.stderr if args.sql is not None else sys.stdout)
    except QueryError as err:
        print(f"error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
