resource "aws_kinesis_stream" "events" {
  name             = "${local.name}-events"
  retention_period = var.kinesis.retention_hours
  shard_count      = var.kinesis.mode == "PROVISIONED" ? var.kinesis.shard_count : null
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.this.arn

  stream_mode_details {
    stream_mode = var.kinesis.mode
  }

  shard_level_metrics = ["IncomingRecords", "IteratorAgeMilliseconds", "ReadProvisionedThroughputExceeded"]

  tags = local.tags

  depends_on = [terraform_data.sovereignty]
}
