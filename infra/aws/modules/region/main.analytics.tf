# Glue table + Athena workgroup over the sink layout:
#   s3://BUCKET/aggregates/dt=YYYY-MM-DD/hour=HH/region=R/part-*.parquet
# Partition projection means no crawler and no MSCK REPAIR.

locals {
  aggregate_columns = [
    { name = "window_start", type = "string" },
    { name = "window_end", type = "string" },
    { name = "key", type = "string" },
    { name = "count", type = "bigint" },
    { name = "sum", type = "double" },
    { name = "min", type = "double" },
    { name = "max", type = "double" },
    { name = "mean", type = "double" },
    { name = "p50", type = "double" },
    { name = "p95", type = "double" },
    { name = "p99", type = "double" },
    { name = "distinct_ids", type = "bigint" },
    { name = "pane", type = "string" },
    { name = "pane_index", type = "bigint" },
  ]
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

  partition_keys {
    name = "dt"
    type = "string"
  }

  partition_keys {
    name = "hour"
    type = "string"
  }

  partition_keys {
    name = "region"
    type = "string"
  }

  storage_descriptor {
    location      = local.aggregates_location
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.aggregate_columns

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
