# Least privilege: the EMR nodes read this region's stream and write this region's
# bucket; nothing else in the account.

data "aws_iam_policy_document" "emr_service_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["elasticmapreduce.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "emr_service" {
  name               = "${local.name}-emr-service"
  assume_role_policy = data.aws_iam_policy_document.emr_service_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "emr_service" {
  role       = aws_iam_role.emr_service.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
}

data "aws_iam_policy_document" "emr_service_pass_role" {
  statement {
    sid       = "PassOnlyTheNodeRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.emr_ec2.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
}

# The cluster's EBS volumes are encrypted with this region's key (security configuration), and
# it is the service role that launches the instances: without these rights EC2 cannot create
# the encrypted volumes and the cluster never starts.
data "aws_iam_policy_document" "emr_service_ebs_key" {
  statement {
    sid       = "UseTheRegionsKeyForEbs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid       = "LetEc2HoldGrantsOnTheKey"
    actions   = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}

resource "aws_iam_role_policy" "emr_service_ebs_key" {
  name   = "ebs-encryption-key"
  role   = aws_iam_role.emr_service.id
  policy = data.aws_iam_policy_document.emr_service_ebs_key.json
}

resource "aws_iam_role_policy" "emr_service_pass_role" {
  name   = "pass-node-role"
  role   = aws_iam_role.emr_service.id
  policy = data.aws_iam_policy_document.emr_service_pass_role.json
}

data "aws_iam_policy_document" "emr_ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "emr_ec2" {
  name               = "${local.name}-emr-node"
  assume_role_policy = data.aws_iam_policy_document.emr_ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "emr_ec2" {
  name = "${local.name}-emr-node"
  role = aws_iam_role.emr_ec2.name
  tags = local.tags
}

data "aws_iam_policy_document" "emr_ec2" {
  statement {
    sid = "ReadThisRegionsStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.events.arn]
  }

  statement {
    sid       = "ListThisRegionsBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.data.arn, aws_s3_bucket.logs.arn]
  }

  statement {
    sid     = "WriteAggregatesDeadLettersAndFlinkState"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [
      "${aws_s3_bucket.data.arn}/${local.aggregates_prefix}/*",
      "${aws_s3_bucket.data.arn}/${local.dead_letter_prefix}/*",
      "${aws_s3_bucket.data.arn}/flink/*",
      "${aws_s3_bucket.data.arn}/beam-temp/*",
      "${aws_s3_bucket.data.arn}/${local.flink_master_object}",
    ]
  }

  statement {
    sid       = "ReadBootstrapArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.data.arn}/emr/bootstrap/*", "${aws_s3_bucket.data.arn}/emr/artifacts/*"]
  }

  statement {
    sid       = "WriteClusterLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/emr/*"]
  }

  statement {
    sid       = "UseThisRegionsKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "emr_ec2" {
  name   = "stream-read-bucket-write"
  role   = aws_iam_role.emr_ec2.id
  policy = data.aws_iam_policy_document.emr_ec2.json
}
