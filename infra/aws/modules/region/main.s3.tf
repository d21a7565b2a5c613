# Aggregates and dead letters share one bucket (prefixes aggregates/ and dead-letters/);
# S3 server access logs and EMR logs go to a second bucket in the same region.

resource "aws_s3_bucket" "data" {
  bucket        = "${local.name}-data-${local.account_id}"
  force_destroy = false
  #checkov:skip=CKV_AWS_144:Cross-region replication would copy data out of the region; durability comes from S3's multi-AZ storage and versioning.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events; Athena and Glue read the layout on demand.
  tags = local.tags

  depends_on = [terraform_data.sovereignty]
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "data" {
  bucket        = aws_s3_bucket.data.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${aws_s3_bucket.data.id}/"
}

# Rules cover only what may age out: aggregates and dead letters tier and expire; Beam's temp
# files and Athena's results expire; Flink's checkpoints drop old versions. The EMR scripts,
# the pipeline wheel and the Flink master address (emr/) are never touched.
resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "aggregates"
    status = "Enabled"

    filter {
      prefix = "${local.aggregates_prefix}/"
    }

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    # Glacier Instant Retrieval stays readable by Athena; Glacier Flexible and Deep Archive do not.
    transition {
      days          = 90
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.bucket.expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.bucket.noncurrent_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  rule {
    id     = "dead-letters"
    status = "Enabled"

    filter {
      prefix = "${local.dead_letter_prefix}/"
    }

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    # Glacier Instant Retrieval stays readable by Athena; Glacier Flexible and Deep Archive do not.
    transition {
      days          = 90
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.bucket.expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.bucket.noncurrent_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  rule {
    id     = "beam-temp"
    status = "Enabled"

    filter {
      prefix = "beam-temp/"
    }

    expiration {
      days = 7
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "athena-results"
    status = "Enabled"

    filter {
      prefix = "athena-results/"
    }

    expiration {
      days = 30
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  rule {
    id     = "flink-old-versions"
    status = "Enabled"

    filter {
      prefix = "flink/"
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  # The only whole-bucket rule: it removes the parts of uploads that never completed, never an object.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {
      prefix = ""
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.data]
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyOldTls"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]
        Condition = { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.data]
}

resource "aws_s3_bucket" "logs" {
  bucket        = "${local.name}-logs-${local.account_id}"
  force_destroy = false
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it to itself would loop.
  #checkov:skip=CKV_AWS_144:Cross-region replication would copy logs out of the region.
  #checkov:skip=CKV2_AWS_62:Log objects need no event notifications.
  tags = local.tags

  depends_on = [terraform_data.sovereignty]
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "s3-access-logs"
    status = "Enabled"

    filter {
      prefix = "s3-access/"
    }

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = 90
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  rule {
    id     = "emr-logs"
    status = "Enabled"

    filter {
      prefix = "emr/"
    }

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = 90
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  # The only whole-bucket rule: it removes the parts of uploads that never completed, never an object.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {
      prefix = ""
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.bucket.abort_incomplete_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3-access/*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

resource "aws_s3_object" "bootstrap" {
  bucket                 = aws_s3_bucket.data.id
  key                    = "emr/bootstrap/install-pipeline.sh"
  source                 = "${path.module}/scripts/install-pipeline.sh"
  source_hash            = filemd5("${path.module}/scripts/install-pipeline.sh")
  server_side_encryption = "aws:kms"
  kms_key_id             = aws_kms_key.this.arn
  tags                   = local.tags
}

resource "aws_s3_object" "flink_session" {
  bucket                 = aws_s3_bucket.data.id
  key                    = "emr/bootstrap/start-flink-session.sh"
  source                 = "${path.module}/scripts/start-flink-session.sh"
  source_hash            = filemd5("${path.module}/scripts/start-flink-session.sh")
  server_side_encryption = "aws:kms"
  kms_key_id             = aws_kms_key.this.arn
  tags                   = local.tags
}

resource "aws_s3_object" "wheel" {
  bucket                 = aws_s3_bucket.data.id
  key                    = "emr/artifacts/${basename(var.pipeline_wheel_path)}"
  source                 = var.pipeline_wheel_path
  source_hash            = filemd5(var.pipeline_wheel_path)
  server_side_encryption = "aws:kms"
  kms_key_id             = aws_kms_key.this.arn
  tags                   = local.tags
}
