output "runner_profile" {
  description = "Everything runners/flink.py needs for this region (consumed through the root's runner_profiles output)."
  value = {
    cloud               = "aws"
    runner              = "FlinkRunner"
    region              = var.region
    jurisdiction        = var.jurisdiction
    source              = "kinesis://${aws_kinesis_stream.events.name}?region=${var.region}"
    output              = "s3://${aws_s3_bucket.data.id}/${local.aggregates_prefix}"
    dead_letter         = "s3://${aws_s3_bucket.data.id}/${local.dead_letter_prefix}"
    temp_location       = "s3://${aws_s3_bucket.data.id}/beam-temp"
    flink_version       = local.flink_version
    flink_master_object = "s3://${aws_s3_bucket.data.id}/${local.flink_master_object}"
    emr_cluster_id      = aws_emr_cluster.flink.id
    emr_master_dns      = aws_emr_cluster.flink.master_public_dns
    environment_type    = "EXTERNAL"
    environment_config  = "localhost:${var.worker_pool_port}"
    checkpointing_ms    = var.emr.checkpoint_interval_s * 1000
  }
}

output "stream_arn" {
  description = "ARN of the region's Kinesis stream."
  value       = aws_kinesis_stream.events.arn
}

output "bucket" {
  description = "Name of the region's aggregates/dead-letter bucket."
  value       = aws_s3_bucket.data.id
}

output "athena_workgroup" {
  description = "Athena workgroup that queries the region's aggregates."
  value       = aws_athena_workgroup.this.name
}

output "glue_table" {
  description = "Glue database.table over the aggregates layout."
  value       = "${aws_glue_catalog_database.this.name}.${aws_glue_catalog_table.aggregates.name}"
}
