"""Table definitions for Athena/Glue, BigQuery and Synapse serverless SQL, generated from the one
output schema (transforms/schemas/aggregate.avsc), so no engine's columns can drift from the files.

    python -m transforms.table_definitions          # rewrite the generated files
    python -m transforms.table_definitions --check  # exit 1 when a generated file is stale

The generated files are committed and read by Terraform (`jsondecode(file(...))`) or applied as
T-SQL (infra/azure/sql/apply.sh); tests/infra/test_table_definitions.py fails when one of them
differs from what this module generates from the schema.

Every engine sees the same columns in the same order: the schema's fields, except those the Hive
layout also carries as a partition key (`region`), then the partition columns `dt`, `hour`,
`region` read from the path. Hive/Glue tables may not declare a name twice and BigQuery refuses
partition keys that overlap columns, so `region` comes from the path in every engine; it equals
the rows' value whenever that value needs no escaping and is at most 200 bytes (every cloud
region name), see transforms/partition_paths.py.

Each engine also gets a `latest` view: per window and dimensions the row of the highest
`pane_index` (accumulating panes give EARLY, ON_TIME and LATE rows for the same group). `dt` and
`hour` (functions of `window_start`) are in its PARTITION BY so that partition filters on the view
are pushed below the window function and still prune folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transforms.formats import METRIC_FIELDS, PUBLISHED_SCHEMA

REPO = Path(__file__).resolve().parents[1]
GLUE_FILE = REPO / "infra/aws/modules/region/aggregates.glue.json"
BIGQUERY_FILE = REPO / "infra/gcp/modules/region/aggregates.bigquery.json"
SYNAPSE_DIR = REPO / "infra/azure/sql"
SYNAPSE_FORMATS = ("parquet", "jsonl")  # serverless SQL pools cannot read Avro

WINDOW_FIELDS = ("window_start", "window_end")
PANE_FIELDS = ("pane", "pane_index")
ORDER_FIELD = "pane_index"


@dataclass(frozen=True)
class Partition:
    """One Hive partition key of the layout `dt=YYYY-MM-DD/hour=HH/region=R/`, typed per engine."""

    name: str
    glue: str
    presto: str
    bigquery: str
    synapse: str  # what filepath(n) returns


# Glue/Athena declare every key as a string (partition projection types the values);
# BigQuery's CUSTOM mode types them; Synapse's filepath() always returns nvarchar(1024).
PARTITIONS = (
    Partition("dt", "string", "varchar", "DATE", "nvarchar(1024)"),
    Partition("hour", "string", "varchar", "INTEGER", "nvarchar(1024)"),
    Partition("region", "string", "varchar", "STRING", "nvarchar(1024)"),
)

UTF8 = "COLLATE Latin1_General_100_BIN2_UTF8"
# Avro type -> engine type. Synapse reads Parquet strings as UTF-8 only under a *_UTF8 collation.
TYPES: dict[str, dict[str, str]] = {
    "string": {"glue": "string", "presto": "varchar", "bigquery": "STRING", "synapse": f"varchar(8000) {UTF8}"},
    "long": {"glue": "bigint", "presto": "bigint", "bigquery": "INT64", "synapse": "bigint"},
    "double": {"glue": "double", "presto": "double", "bigquery": "FLOAT64", "synapse": "float"},
}


def load_schema(path: Path = PUBLISHED_SCHEMA) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def avro_kind(field: dict[str, Any]) -> str:
    """`string`, `long`, `double` or `enum`; refuses what no engine mapping covers."""
    kind = field["type"]
    if isinstance(kind, dict) and kind.get("type") == "enum":
        return "enum"
    if isinstance(kind, str) and kind in TYPES:
        return kind
    raise ValueError(
        f"field {field['name']!r} has Avro type {kind!r}, which has no table mapping; "
        f"add it to transforms.table_definitions.TYPES ({', '.join(TYPES)} and enum are mapped)"
    )


def engine_type(field: dict[str, Any], engine: str) -> str:
    """The column type of one Avro field in `engine` (glue, presto, bigquery or synapse)."""
    kind = avro_kind(field)
    if kind != "enum":
        return TYPES[kind][engine]
    if engine == "synapse":
        return f"varchar({max(len(s) for s in field['type']['symbols'])}) {UTF8}"
    return TYPES["string"][engine]  # Parquet and JSON carry the symbol as a string


def data_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's fields that are table columns: all but those the path carries as partitions."""
    keys = {p.name for p in PARTITIONS}
    return [f for f in schema["fields"] if f["name"] not in keys]


def dimensions(schema: dict[str, Any]) -> list[str]:
    """The group's dimension fields: neither window bounds, nor metrics, nor pane fields."""
    others = {*WINDOW_FIELDS, *PANE_FIELDS, *(name for name, _ in METRIC_FIELDS)}
    return [f["name"] for f in schema["fields"] if f["name"] not in others]


def column_names(schema: dict[str, Any]) -> list[str]:
    """Every engine's column order: data columns, then the partition columns."""
    return [f["name"] for f in data_fields(schema)] + [p.name for p in PARTITIONS]


def latest_group(schema: dict[str, Any]) -> list[str]:
    """What identifies one group's panes: window, dimensions, and dt/hour so filters push down."""
    group = [*WINDOW_FIELDS, *dimensions(schema)]
    return group + [p.name for p in PARTITIONS if p.name not in group]


def _latest_sql(columns: list[str], group: list[str], table: str, quote: tuple[str, str]) -> str:
    left, right = quote

    def q(name: str) -> str:
        return f"{left}{name}{right}"

    listed = ", ".join(q(c) for c in columns)
    return (
        f"SELECT {listed} FROM (SELECT {listed}, ROW_NUMBER() OVER (PARTITION BY "
        f"{', '.join(q(c) for c in group)} ORDER BY {q(ORDER_FIELD)} DESC) AS pane_rank FROM {table}) AS panes "
        "WHERE pane_rank = 1"
    )


def glue_definition(schema: dict[str, Any]) -> dict[str, Any]:
    """Columns and partition keys of the Glue table, and the Athena (Presto) view `latest`."""
    columns = [{"name": f["name"], "type": engine_type(f, "glue")} for f in data_fields(schema)]
    partitions = [{"name": p.name, "type": p.glue} for p in PARTITIONS]
    view_columns = [{"name": f["name"], "type": engine_type(f, "presto")} for f in data_fields(schema)]
    view_columns += [{"name": p.name, "type": p.presto} for p in PARTITIONS]
    return {
        "columns": columns,
        "partition_keys": partitions,
        "latest_view": {
            "columns": view_columns,
            # ${table} is replaced by Terraform with "database"."table".
            "sql": _latest_sql(column_names(schema), latest_group(schema), "${table}", ('"', '"')),
        },
    }


def bigquery_definition(schema: dict[str, Any]) -> dict[str, Any]:
    """The external table's schema (without partition keys), its CUSTOM hive prefix and `latest`."""
    return {
        "schema": [
            {"name": f["name"], "type": engine_type(f, "bigquery"), "mode": "NULLABLE"}
            | ({"description": f["doc"]} if f.get("doc") else {})
            for f in data_fields(schema)
        ],
        "hive_partition_keys": "/".join(f"{{{p.name}:{p.bigquery}}}" for p in PARTITIONS),
        # ${table} is replaced by Terraform with `project.dataset.table`.
        "latest_view_query": _latest_sql(column_names(schema), latest_group(schema), "${table}", ("`", "`")),
    }


def _synapse_files_path(output_format: str) -> str:
    return "/".join(f"{p.name}=*" for p in PARTITIONS) + f"/*.{output_format}"


def _partition_selects() -> list[str]:
    return [f"r.filepath({n}) AS [{p.name}]" for n, p in enumerate(PARTITIONS, start=1)]


def synapse_sql(schema: dict[str, Any], output_format: str) -> str:
    """T-SQL creating the views `aggregates` and `aggregates_latest` over one output format."""
    if output_format not in SYNAPSE_FORMATS:
        raise ValueError(f"Synapse serverless SQL reads {' or '.join(SYNAPSE_FORMATS)}, not {output_format!r}")
    fields = data_fields(schema)
    width = max(len(f["name"]) for f in fields) + 2
    source = f"    BULK '{_synapse_files_path(output_format)}',\n    DATA_SOURCE = 'aggregates',\n"
    if output_format == "parquet":
        with_clause = ",\n".join(f"    {_bracketed(f, width)} {engine_type(f, 'synapse')}" for f in fields)
        selects = [f"r.[{f['name']}]" for f in fields]
        body = f"FROM OPENROWSET(\n{source}    FORMAT = 'PARQUET'\n) WITH (\n{with_clause}\n) AS r"
    else:
        # One JSON object per line read as a single column; 0x0b never occurs in JSON text.
        with_clause = ",\n".join(f"    {_bracketed(f, width)} {_json_type(f)} '$.{f['name']}'" for f in fields)
        selects = [_json_select(f) for f in fields]
        body = (
            f"FROM OPENROWSET(\n{source}    FORMAT = 'CSV',\n    FIELDTERMINATOR = '0x0b',\n"
            "    FIELDQUOTE = '0x0b',\n    ROWTERMINATOR = '0x0a'\n) WITH (doc nvarchar(max)) AS r\n"
            f"CROSS APPLY OPENJSON(r.doc) WITH (\n{with_clause}\n) AS j"
        )
    select_list = ",\n    ".join(selects + _partition_selects())
    names = column_names(schema)
    latest = _latest_sql(names, latest_group(schema), "dbo.aggregates", ("[", "]"))
    return (
        f"-- Generated by `python -m transforms.table_definitions` from transforms/schemas/aggregate.avsc\n"
        f"-- ({output_format} files); do not edit. Applied by infra/azure/sql/apply.sh after setup.sql.\n"
        "-- filepath(n) is the n-th wildcard of BULK: filters on dt, hour and region prune folders.\n"
        "CREATE OR ALTER VIEW dbo.aggregates AS\n"
        f"SELECT\n    {select_list}\n{body};\nGO\n\n"
        "-- The last pane (highest pane_index) of each window and dimensions.\n"
        f"CREATE OR ALTER VIEW dbo.aggregates_latest AS\n{latest};\nGO\n"
    )


def _bracketed(field: dict[str, Any], width: int) -> str:
    return f"[{field['name']}]".ljust(width)


def _json_type(field: dict[str, Any]) -> str:
    # Doubles as text: JSON lines write a non-finite sum or mean as "NaN"/"Infinity", which
    # float cannot hold; TRY_CONVERT in the select list turns them into NULL instead of failing.
    return f"varchar(32) {UTF8}" if avro_kind(field) == "double" else engine_type(field, "synapse")


def _json_select(field: dict[str, Any]) -> str:
    name = field["name"]
    if avro_kind(field) == "double":
        return f"TRY_CONVERT(float, j.[{name}]) AS [{name}]"
    return f"j.[{name}]"


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def generated_files(schema: dict[str, Any] | None = None) -> dict[Path, str]:
    """Every generated file and its exact text."""
    schema = schema or load_schema()
    files = {
        GLUE_FILE: _json_text(glue_definition(schema)),
        BIGQUERY_FILE: _json_text(bigquery_definition(schema)),
    }
    for output_format in SYNAPSE_FORMATS:
        files[SYNAPSE_DIR / f"aggregates.{output_format}.sql"] = synapse_sql(schema, output_format)
    return files


def stale_files(schema: dict[str, Any] | None = None) -> list[Path]:
    """Generated files whose committed text differs from what the schema gives."""
    return [
        path
        for path, text in generated_files(schema).items()
        if not path.is_file() or path.read_bytes() != text.encode("utf-8")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(REPO)} (run python -m transforms.table_definitions)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
