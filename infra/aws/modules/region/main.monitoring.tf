resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# The pipeline falls behind when the oldest unread record gets old: page on it.
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${local.name}-iterator-age"
  alarm_description   = "Records in ${aws_kinesis_stream.events.name} wait longer than ${var.iterator_age_alarm_ms} ms: the Flink job is lagging or stopped."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.events.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# Producers are being throttled: the stream has too few shards for the traffic.
resource "aws_cloudwatch_metric_alarm" "write_throttled" {
  alarm_name          = "${local.name}-write-throttled"
  alarm_description   = "Writes to ${aws_kinesis_stream.events.name} are throttled: raise capacity.peak_events_per_second (more shards)."
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = aws_kinesis_stream.events.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# Job health: a core or task node YARN considers unhealthy takes Flink TaskManagers with it.
resource "aws_cloudwatch_metric_alarm" "unhealthy_nodes" {
  alarm_name          = "${local.name}-emr-unhealthy-nodes"
  alarm_description   = "EMR cluster ${aws_emr_cluster.flink.name} has unhealthy nodes: Flink loses TaskManagers and restarts from its last checkpoint."
  namespace           = "AWS/ElasticMapReduce"
  metric_name         = "MRUnhealthyNodes"
  dimensions          = { JobFlowId = aws_emr_cluster.flink.id }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# Dead-letter growth: S3 request metrics counted on the dead-letters/ prefix only.
resource "aws_s3_bucket_metric" "dead_letters" {
  bucket = aws_s3_bucket.data.id
  name   = "dead-letters"

  filter {
    prefix = "${local.dead_letter_prefix}/"
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${local.name}-dead-letters"
  alarm_description   = "The pipeline wrote dead letters to s3://${aws_s3_bucket.data.id}/${local.dead_letter_prefix}/: records it could not decode."
  namespace           = "AWS/S3"
  metric_name         = "PutRequests"
  dimensions          = { BucketName = aws_s3_bucket.data.id, FilterId = aws_s3_bucket_metric.dead_letters.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}
