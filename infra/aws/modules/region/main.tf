# One region of the AWS deployment: stream -> EMR (Flink) -> bucket, all in var.region.
# Topic files: main.kinesis.tf, main.s3.tf, main.emr.tf, main.iam.tf,
# main.monitoring.tf, main.analytics.tf.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  name       = "${var.name_prefix}-${var.region}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  tags = merge(var.tags, {
    jurisdiction = var.jurisdiction
    region       = var.region
    # AmazonEMRServicePolicy_v2 only acts on resources carrying this tag.
    "for-use-with-amazon-emr-managed-policies" = "true"
  })

  aggregates_prefix  = "aggregates"
  dead_letter_prefix = "dead-letters"
}

# Refuses to plan when the provider alias, the region and the jurisdiction disagree,
# so nothing is ever created outside the jurisdiction in regions.json.
resource "terraform_data" "sovereignty" {
  input = {
    region       = var.region
    jurisdiction = var.jurisdiction
  }

  lifecycle {
    precondition {
      condition     = contains(var.allowed_regions, var.region)
      error_message = "Region ${var.region} is not inside jurisdiction ${var.jurisdiction} (regions.json allowed_regions)."
    }

    precondition {
      condition     = data.aws_region.current.region == var.region
      error_message = "The aws provider passed to this module is configured for ${data.aws_region.current.region}, not ${var.region}."
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${local.name}: stream, bucket, EMR and alarm encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "ServicesInThisRegionUseTheKey"
        Effect    = "Allow"
        # logging.s3 writes the server access logs into the SSE-KMS logs bucket.
        Principal = { Service = ["cloudwatch.amazonaws.com", "sns.amazonaws.com", "logs.${var.region}.amazonaws.com", "logging.s3.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*", "kms:Encrypt", "kms:DescribeKey"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })
  tags = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.this.key_id
}
