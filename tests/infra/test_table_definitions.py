"""Every engine's table matches transforms/schemas/aggregate.avsc field by field (names, types
mapped per engine, order), the generated definitions are current, and the Synapse workspace
follows the deployment's rules (region, tags, Entra-only, read-only identity, no public access)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from tests.infra import tf
from transforms import table_definitions as td

AWS_MODULE = tf.INFRA / "aws/modules/region"
GCP_MODULE = tf.INFRA / "gcp/modules/region"
AZURE_MODULE = tf.INFRA / "azure/modules/region"
SQL = tf.INFRA / "azure/sql"

# The expected mapping, written out here rather than imported, so a wrong mapping in the
# generator fails instead of agreeing with itself. Synapse strings carry a UTF-8 collation.
EXPECTED_TYPES = {
    "glue": {"string": "string", "long": "bigint", "double": "double", "enum": "string"},
    "presto": {"string": "varchar", "long": "bigint", "double": "double", "enum": "varchar"},
    "bigquery": {"string": "STRING", "long": "INT64", "double": "FLOAT64", "enum": "STRING"},
    "synapse": {"string": "varchar(8000)", "long": "bigint", "double": "float", "enum": "varchar(7)"},
}
PARTITIONS = ["dt", "hour", "region"]


def _avro_kind(field: dict) -> str:
    return field["type"]["type"] if isinstance(field["type"], dict) else field["type"]


def _schema() -> dict:
    with open(tf.REPO / "transforms/schemas/aggregate.avsc", encoding="utf-8") as handle:
        return json.load(handle)


def _expected(engine: str) -> list[tuple[str, str]]:
    """(name, type) of the data columns: every schema field in order, except the partition keys."""
    return [
        (f["name"], EXPECTED_TYPES[engine][_avro_kind(f)]) for f in _schema()["fields"] if f["name"] not in PARTITIONS
    ]


def _dynamic(body: dict, name: str) -> dict:
    for block in body.get("dynamic", []):
        if name in block:
            return block[name]
    raise AssertionError(f"no dynamic {name!r} block")


def test_generated_definitions_are_current():
    stale = [str(p.relative_to(tf.REPO)) for p in td.stale_files()]
    assert not stale, f"regenerate with `python -m transforms.table_definitions`: {stale}"


def test_a_schema_change_makes_every_generated_file_stale():
    schema = copy.deepcopy(_schema())
    schema["fields"].insert(5, {"name": "sum_of_squares", "type": "double"})
    assert set(td.stale_files(schema)) == set(td.generated_files())
    with pytest.raises(ValueError, match="no table mapping"):
        td.generated_files({"fields": [{"name": "tags", "type": {"type": "array", "items": "string"}}]})


def test_glue_table_reads_the_generated_columns_and_matches_the_schema():
    local = tf.locals_(AWS_MODULE)["glue"]
    assert "aggregates.glue.json" in local and "jsondecode(file(" in local
    table = tf.resource(AWS_MODULE, "aws_glue_catalog_table", "aggregates")
    assert tf.expr(_dynamic(table, "partition_keys")["for_each"]) == "local.glue.partition_keys"
    assert tf.expr(_dynamic(tf.one(table["storage_descriptor"]), "columns")["for_each"]) == "local.glue.columns"

    glue = json.loads((AWS_MODULE / "aggregates.glue.json").read_text(encoding="utf-8"))
    assert [(c["name"], c["type"]) for c in glue["columns"]] == _expected("glue")
    assert [(p["name"], p["type"]) for p in glue["partition_keys"]] == [(p, "string") for p in PARTITIONS]

    params = table["parameters"]
    assert params["projection.enabled"] == "true" and params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert (params["projection.hour.type"], params["projection.hour.range"], params["projection.hour.digits"]) == (
        "integer",
        "0,23",
        "2",
    )
    assert params["projection.region.type"] in ("enum", "injected")
    template = params["storage.location.template"]
    assert template.endswith("/dt=$${dt}/hour=$${hour}/region=$${region}"), template


def test_athena_latest_view_is_the_last_pane_of_each_group():
    view = tf.resource(AWS_MODULE, "aws_glue_catalog_table", "aggregates_latest")
    assert view["table_type"] == "VIRTUAL_VIEW" and view["parameters"]["presto_view"] == "true"
    original = view["view_original_text"]
    assert original.startswith("/* Presto View: ${base64encode(jsonencode(")
    assert "local.glue.latest_view.sql" in original and "local.glue.latest_view.columns" in original
    assert (
        tf.expr(_dynamic(tf.one(view["storage_descriptor"]), "columns")["for_each"]) == "local.glue.latest_view.columns"
    )

    latest = json.loads((AWS_MODULE / "aggregates.glue.json").read_text(encoding="utf-8"))["latest_view"]
    columns = [(c["name"], c["type"]) for c in latest["columns"]]
    assert columns == _expected("presto") + [(p, "varchar") for p in PARTITIONS]
    _assert_latest_sql(latest["sql"], '"', '"')


def _assert_latest_sql(sql: str, left: str, right: str) -> None:
    def q(name: str) -> str:
        return f"{left}{name}{right}"

    group = re.search(r"PARTITION BY (.*?) ORDER BY (.*?) DESC", sql)
    assert group, sql
    keys = [k.strip() for k in group.group(1).split(",")]
    assert {q("window_start"), q("window_end"), q("region"), q("key")} <= set(keys)
    assert {q("dt"), q("hour")} <= set(keys), "dt and hour must be group keys so partition filters push down"
    assert group.group(2) == q("pane_index")
    assert sql.endswith("WHERE pane_rank = 1")
    listed = sql.split(" FROM ", 1)[0].removeprefix("SELECT ").split(", ")
    assert listed == [q(n) for n, _ in _expected("glue")] + [q(p) for p in PARTITIONS]


def test_bigquery_table_uses_the_generated_schema_and_hive_partitioning():
    assert "aggregates.bigquery.json" in tf.locals_(GCP_MODULE)["bigquery"]
    table = tf.resource(GCP_MODULE, "google_bigquery_table", "aggregates")
    external = tf.one(table["external_data_configuration"])
    assert external["autodetect"] is False
    assert tf.expr(external["schema"]) == "jsonencode(local.bigquery.schema)"
    hive = tf.one(external["hive_partitioning_options"])
    assert hive["mode"] == "CUSTOM"
    assert hive["source_uri_prefix"].endswith("/${local.bigquery.hive_partition_keys}")
    assert hive["require_partition_filter"] is True

    generated = json.loads((GCP_MODULE / "aggregates.bigquery.json").read_text(encoding="utf-8"))
    assert [(c["name"], c["type"]) for c in generated["schema"]] == _expected("bigquery")
    assert generated["hive_partition_keys"] == "{dt:DATE}/{hour:INTEGER}/{region:STRING}"
    _assert_latest_sql(generated["latest_view_query"], "`", "`")

    view = tf.one(tf.resource(GCP_MODULE, "google_bigquery_table", "aggregates_latest")["view"])
    assert view["use_legacy_sql"] is False
    assert "local.bigquery.latest_view_query" in view["query"] and "google_bigquery_table.aggregates" in view["query"]


def test_bigquery_format_follows_the_dataflow_jobs_output_format():
    formats = tf.locals_(GCP_MODULE)["bigquery_formats"]
    assert formats == {"parquet": "PARQUET", "jsonl": "NEWLINE_DELIMITED_JSON", "avro": "AVRO"}
    assert "var.pipeline_options.output_format" in tf.locals_(GCP_MODULE)["output_format"]
    conditions = [v["condition"] for v in tf.variables(tf.INFRA / "gcp")["pipeline_options"]["validation"]]
    assert any("'parquet', 'jsonl', 'avro'" in c.replace('"', "'") for c in conditions)
    assert any("'region,key'" in c.replace('"', "'") and "dimensions" in c for c in conditions)


def _sql_columns(block: str) -> list[tuple[str, str]]:
    """(name, type without collation) of each `[name] type ...` line of a WITH clause."""
    found = []
    for line in block.strip().splitlines():
        match = re.fullmatch(r"\s*\[(\w+)\]\s+(\w+(?:\(\d+\))?)(?: COLLATE \w+)?(?: '\$\.(\w+)')?,?", line)
        assert match, f"unexpected WITH line {line!r}"
        if match.group(3):
            assert match.group(3) == match.group(1), f"{line!r} reads another JSON key"
        found.append((match.group(1), match.group(2)))
    return found


def _view(sql: str, name: str) -> str:
    match = re.search(rf"CREATE OR ALTER VIEW dbo\.{name} AS\n(.*?);\nGO", sql, flags=re.S)
    assert match, f"no view dbo.{name}"
    return match.group(1)


def _select_names(view: str) -> list[str]:
    select = view.split("\nFROM ", 1)[0].removeprefix("SELECT\n")
    names = []
    for item in select.split(",\n"):
        alias = re.search(r"AS \[(\w+)\]$", item.strip()) or re.fullmatch(r"\w\.\[(\w+)\]", item.strip())
        assert alias, f"unexpected select item {item!r}"
        names.append(alias.group(1))
    return names


def test_synapse_parquet_view_matches_the_schema():
    sql = (SQL / "aggregates.parquet.sql").read_text(encoding="utf-8")
    view = _view(sql, "aggregates")
    assert "BULK 'dt=*/hour=*/region=*/*.parquet'" in view and "DATA_SOURCE = 'aggregates'" in view
    with_clause = re.search(r"\) WITH \(\n(.*?)\n\) AS r", view, flags=re.S).group(1)
    assert _sql_columns(with_clause) == _expected("synapse")
    assert all("COLLATE Latin1_General_100_BIN2_UTF8" in line for line in with_clause.splitlines() if "varchar" in line)
    assert _select_names(view) == [n for n, _ in _expected("synapse")] + PARTITIONS
    for n, name in enumerate(PARTITIONS, start=1):
        assert f"r.filepath({n}) AS [{name}]" in view


def test_synapse_jsonl_view_matches_the_schema():
    sql = (SQL / "aggregates.jsonl.sql").read_text(encoding="utf-8")
    view = _view(sql, "aggregates")
    assert "BULK 'dt=*/hour=*/region=*/*.jsonl'" in view and "FIELDTERMINATOR = '0x0b'" in view
    with_clause = re.search(r"OPENJSON\(r\.doc\) WITH \(\n(.*?)\n\) AS j", view, flags=re.S).group(1)
    # Doubles are read as text and converted with TRY_CONVERT (non-finite values become NULL).
    expected = [(n, "varchar(32)" if t == "float" else t) for n, t in _expected("synapse")]
    assert _sql_columns(with_clause) == expected
    doubles = [n for n, t in _expected("synapse") if t == "float"]
    for name in doubles:
        assert f"TRY_CONVERT(float, j.[{name}]) AS [{name}]" in view
    assert _select_names(view) == [n for n, _ in _expected("synapse")] + PARTITIONS


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_synapse_latest_view_is_the_last_pane_of_each_group(output_format):
    latest = _view((SQL / f"aggregates.{output_format}.sql").read_text(encoding="utf-8"), "aggregates_latest")
    assert "FROM dbo.aggregates)" in latest
    _assert_latest_sql(latest, "[", "]")


def test_synapse_sql_setup_uses_the_managed_identity_and_no_secret():
    setup = (SQL / "setup.sql").read_text(encoding="utf-8")
    assert "WITH IDENTITY = 'Managed Identity'" in setup
    assert "LOCATION = '$(AGGREGATES_URL)', CREDENTIAL = workspace_identity" in setup
    assert "FORMAT_TYPE = PARQUET" in setup
    assert not re.search(r"PASSWORD|SECRET\s*=|SAS", setup.split("\n\n", 1)[1]), "setup.sql must hold no secret"
    script = (SQL / "apply.sh").read_text(encoding="utf-8")
    assert "output -json synapse" in script and "ActiveDirectoryDefault" in script
    assert 'setup.sql"' in script and 'aggregates.$FORMAT.sql"' in script
    assert "avro" not in td.SYNAPSE_FORMATS


def test_synapse_workspace_is_regional_entra_only_private_and_tagged():
    workspace = tf.resource(AZURE_MODULE, "azurerm_synapse_workspace", "this")
    assert workspace["location"] == "${azurerm_resource_group.this.location}"
    assert workspace["tags"] == "${local.tags}"
    assert workspace["azuread_authentication_only"] is True
    assert not {"sql_administrator_login", "sql_administrator_login_password"} & set(workspace)
    assert tf.one(workspace["identity"])["type"] == "SystemAssigned"
    assert tf.expr(workspace["public_network_access_enabled"]) == "length(var.synapse.allowed_ip_ranges) > 0"
    assert workspace["managed_virtual_network_enabled"] is True
    assert workspace["data_exfiltration_protection_enabled"] is True
    # Its own files sit in the region's ADLS Gen2 account (checked against the jurisdiction).
    assert "azurerm_storage_data_lake_gen2_filesystem.synapse" in workspace["storage_data_lake_gen2_filesystem_id"]
    filesystem = tf.resource(AZURE_MODULE, "azurerm_storage_data_lake_gen2_filesystem", "synapse")
    assert filesystem["storage_account_id"] == "${azurerm_storage_account.this.id}"
    admin = tf.resource(AZURE_MODULE, "azurerm_synapse_workspace_aad_admin", "this")
    assert admin["object_id"] == "${var.synapse.entra_admin_object_id}"
    rule = tf.resource(AZURE_MODULE, "azurerm_synapse_firewall_rule", "allowed")
    assert tf.expr(rule["for_each"]) == "toset(var.synapse.allowed_ip_ranges)"


def test_synapse_identity_reads_only_the_aggregates_container():
    reader = tf.resource(AZURE_MODULE, "azurerm_role_assignment", "synapse_aggregates_reader")
    assert reader["role_definition_name"] == "Storage Blob Data Reader"
    assert reader["scope"] == "${azurerm_storage_container.aggregates.resource_manager_id}"
    assert "azurerm_synapse_workspace.this.identity[0].principal_id" in reader["principal_id"]
    rules = tf.one(tf.resource(AZURE_MODULE, "azurerm_storage_account", "this")["network_rules"])
    assert tf.one(rules["private_link_access"])["endpoint_resource_id"] == "${local.synapse_id}"
    assert "Microsoft.Synapse/workspaces/${local.synapse_name}" in tf.locals_(AZURE_MODULE)["synapse_id"]


def test_synapse_inputs_are_passed_and_validated():
    call = tf.module_calls(tf.INFRA / "azure")["region"]
    assert tf.expr(call["synapse"]) == "var.synapse"
    for directory in (tf.INFRA / "azure", AZURE_MODULE):
        conditions = [v["condition"] for v in tf.variables(directory)["synapse"]["validation"]]
        patterns = [p for c in conditions for p in re.findall(r'regex\("([^"]+)"', c)]
        assert patterns, "entra_admin_object_id has no regex"
        pattern = patterns[0].replace("\\\\", "\\").replace("$", r"\Z")
        assert re.search(pattern, "0b1f6471-1bf0-4dda-aec3-cb9272f09590")
        assert not re.search(pattern, "admin@example.com") and not re.search(pattern, "0b1f6471")
        assert any("cidrhost(r, 0)" in c and "allowed_ip_ranges" in c for c in conditions)
    outputs = {n: b for block in tf.blocks(tf.INFRA / "azure", "output") for n, b in block.items()}
    assert "synapse" in outputs
