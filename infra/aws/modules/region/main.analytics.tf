# Glue table + Athena workgroup over the sink layout:
#   s3://BUCKET/aggregates/dt=YYYY-MM-DD/hour=HH/region=R/part-*.parquet
# Partition projection means no crawler and no MSCK REPAIR. `region` is only a partition key:
# Hive tables may not declare a name twice (its value comes from the path).

locals {
  # Generated from transforms/schemas/aggregate.avsc by `python -m transforms.table_definitions`;
  # tests/infra/test_table_definitions.py fails when it is stale.
  glue                = jsondecode(file("${path.module}/aggregates.glue.json"))
  aggregates_location = "s3://${aws_s3_bucket.data.id}/${local.aggregates_prefix}"
}

resource "aws_glue_catalog_database" "this" {
  name        = replace("${local.name}_analytics", "-", "_")
  description = "Aggregates of ${local.name}"
}

resource "aws_glue_catalog_table" "aggregates" {
  name          = "aggregates"
  database_name = aws_glue_catalog_database.this.name
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL                    = "TRUE"
    classification              = "parquet"
    "projection.enabled"        = "true"
    "projection.dt.type"        = "date"
    "projection.dt.format"      = "yyyy-MM-dd"
    "projection.dt.range"       = "2024-01-01,NOW"
    "projection.hour.type"      = "integer"
    "projection.hour.range"     = "0,23"
    "projection.hour.digits"    = "2"
    "projection.region.type"    = "enum"
    "projection.region.values"  = var.region
    "storage.location.template" = "${local.aggregates_location}/dt=$${dt}/hour=$${hour}/region=$${region}"
  }

  dynamic "partition_keys" {
    for_each = local.glue.partition_keys

    content {
      name = partition_keys.value.name
      type = partition_keys.value.type
    }
  }

  storage_descriptor {
    location      = local.aggregates_location
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.glue.columns

      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

# Athena view `aggregates_latest`: the last pane (highest pane_index) of each window and
# dimensions. Athena keeps views in Glue as VIRTUAL_VIEW tables whose original text is the
# base64 of a Presto view definition; the SQL and its columns are generated with the table's.
resource "aws_glue_catalog_table" "aggregates_latest" {
  name          = "aggregates_latest"
  database_name = aws_glue_catalog_database.this.name
  table_type    = "VIRTUAL_VIEW"
  parameters = {
    presto_view = "true"
    comment     = "Presto View"
  }
  view_expanded_text = "/* Presto View */"
  view_original_text = "/* Presto View: ${base64encode(jsonencode({
    originalSql = replace(local.glue.latest_view.sql, "$${table}", "\"${aws_glue_catalog_database.this.name}\".\"${aws_glue_catalog_table.aggregates.name}\"")
    catalog     = "awsdatacatalog"
    schema      = aws_glue_catalog_database.this.name
    columns     = local.glue.latest_view.columns
  }))} */"

  storage_descriptor {
    dynamic "columns" {
      for_each = local.glue.latest_view.columns

      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = "${local.name}-analytics"
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = 10737418240

    result_configuration {
      output_location = "s3://${aws_s3_bucket.data.id}/athena-results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.this.arn
      }
    }
  }

  tags = local.tags
}
