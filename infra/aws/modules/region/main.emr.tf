# EMR cluster running Flink (YARN session) for Beam's FlinkRunner.
# emr-7.4.0 ships Flink 1.19, a version the Beam 2.77 FlinkRunner publishes a job server for.

locals {
  flink_version = {
    "emr-7.4.0" = "1.19"
    "emr-7.5.0" = "1.20"
  }[var.emr.release_label]

  flink_master_object = "emr/flink-master.txt"
}

data "aws_subnet" "emr" {
  id = var.emr.subnet_id
}

# EMR-managed security groups start empty: EMR adds only the intra-cluster rules it
# needs. Nothing is open to the internet; reach the primary node through SSM.
resource "aws_security_group" "emr_primary" {
  name                   = "${local.name}-emr-primary"
  description            = "EMR primary node of ${local.name}; rules managed by EMR"
  vpc_id                 = data.aws_subnet.emr.vpc_id
  revoke_rules_on_delete = true
  tags                   = local.tags
}

resource "aws_security_group" "emr_nodes" {
  name                   = "${local.name}-emr-nodes"
  description            = "EMR core and task nodes of ${local.name}; rules managed by EMR"
  vpc_id                 = data.aws_subnet.emr.vpc_id
  revoke_rules_on_delete = true
  tags                   = local.tags
}

resource "aws_security_group" "emr_service_access" {
  name                   = "${local.name}-emr-service-access"
  description            = "EMR service access to ${local.name} in a private subnet; rules managed by EMR"
  vpc_id                 = data.aws_subnet.emr.vpc_id
  revoke_rules_on_delete = true
  tags                   = local.tags
}

# Terraform deletes the allow-all egress rule AWS puts in a new group, and EMR adds only the
# intra-cluster rules: without these the nodes reach neither S3, Kinesis, KMS and the EMR
# control plane (HTTPS, through the subnet's gateway/interface endpoints or NAT) nor PyPI for
# the bootstrap action. Separate rule resources, so Terraform leaves EMR's own rules alone.
resource "aws_vpc_security_group_egress_rule" "emr_https" {
  for_each = {
    primary = aws_security_group.emr_primary.id
    nodes   = aws_security_group.emr_nodes.id
  }

  security_group_id = each.value
  description       = "HTTPS to AWS APIs (S3, Kinesis, KMS, EMR) and PyPI"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_emr_security_configuration" "this" {
  name = "${local.name}-at-rest"
  configuration = jsonencode({
    EncryptionConfiguration = {
      EnableInTransitEncryption = false
      EnableAtRestEncryption    = true
      AtRestEncryptionConfiguration = {
        S3EncryptionConfiguration = {
          EncryptionMode = "SSE-KMS"
          AwsKmsKey      = aws_kms_key.this.arn
        }
        LocalDiskEncryptionConfiguration = {
          EncryptionKeyProviderType = "AwsKms"
          AwsKmsKey                 = aws_kms_key.this.arn
          EnableEbsEncryption       = true
        }
      }
    }
  })
}

resource "aws_emr_cluster" "flink" {
  name                              = "${local.name}-flink"
  release_label                     = var.emr.release_label
  applications                      = ["Hadoop", "Flink"]
  service_role                      = aws_iam_role.emr_service.arn
  security_configuration            = aws_emr_security_configuration.this.name
  log_uri                           = "s3://${aws_s3_bucket.logs.id}/emr/"
  log_encryption_kms_key_id         = aws_kms_key.this.arn
  keep_job_flow_alive_when_no_steps = true
  termination_protection            = false
  ebs_root_volume_size              = 32

  ec2_attributes {
    subnet_id                         = var.emr.subnet_id
    instance_profile                  = aws_iam_instance_profile.emr_ec2.arn
    emr_managed_master_security_group = aws_security_group.emr_primary.id
    emr_managed_slave_security_group  = aws_security_group.emr_nodes.id
    service_access_security_group     = aws_security_group.emr_service_access.id
  }

  master_instance_fleet {
    name                      = "master"
    target_on_demand_capacity = 1

    instance_type_configs {
      instance_type = var.emr.master_instance_type
    }
  }

  core_instance_fleet {
    name                      = "core-on-demand"
    target_on_demand_capacity = var.emr.core_units

    instance_type_configs {
      instance_type     = var.emr.core_instance_type
      weighted_capacity = 1

      ebs_config {
        size                 = 64
        type                 = "gp3"
        volumes_per_instance = 1
      }
    }
  }

  bootstrap_action {
    name = "install-python-and-pipeline"
    path = "s3://${aws_s3_object.bootstrap.bucket}/${aws_s3_object.bootstrap.key}"
    args = [
      "s3://${aws_s3_object.wheel.bucket}/${aws_s3_object.wheel.key}",
      var.beam_version,
      tostring(var.worker_pool_port),
    ]
  }

  step {
    name              = "start-flink-yarn-session"
    action_on_failure = "CONTINUE"

    hadoop_jar_step {
      jar = "command-runner.jar"
      args = [
        "bash", "-c",
        "aws s3 cp s3://${aws_s3_object.flink_session.bucket}/${aws_s3_object.flink_session.key} /tmp/start-flink-session.sh && bash /tmp/start-flink-session.sh s3://${aws_s3_bucket.data.id}/${local.flink_master_object} ${var.emr.task_slots}",
      ]
    }
  }

  configurations_json = jsonencode([
    {
      Classification = "flink-conf"
      Properties = {
        "taskmanager.numberOfTaskSlots"                             = tostring(var.emr.task_slots)
        "state.backend.type"                                        = "rocksdb"
        "state.backend.incremental"                                 = "true"
        "state.checkpoints.dir"                                     = "s3://${aws_s3_bucket.data.id}/flink/checkpoints"
        "state.savepoints.dir"                                      = "s3://${aws_s3_bucket.data.id}/flink/savepoints"
        "execution.checkpointing.interval"                          = "${var.emr.checkpoint_interval_s}s"
        "execution.checkpointing.mode"                              = "EXACTLY_ONCE"
        "restart-strategy.type"                                     = "exponential-delay"
        "classloader.resolve-order"                                 = "parent-first"
        "execution.checkpointing.externalized-checkpoint-retention" = "RETAIN_ON_CANCELLATION"
      }
    },
  ])

  lifecycle {
    # Steps run once at creation; later edits are submitted with `aws emr add-steps`.
    ignore_changes = [step]
  }

  tags = local.tags

  depends_on = [
    terraform_data.sovereignty,
    aws_iam_role_policy.emr_ec2,
    aws_iam_role_policy.emr_service_ebs_key,
    aws_iam_role_policy_attachment.emr_service,
    aws_vpc_security_group_egress_rule.emr_https,
  ]
}

resource "aws_emr_instance_fleet" "task_spot" {
  cluster_id           = aws_emr_cluster.flink.id
  name                 = "task-spot"
  target_spot_capacity = var.emr.task_spot_units

  dynamic "instance_type_configs" {
    for_each = toset(var.emr.task_instance_types)

    content {
      instance_type                              = instance_type_configs.value
      weighted_capacity                          = 1
      bid_price_as_percentage_of_on_demand_price = 100
    }
  }

  launch_specifications {
    spot_specification {
      allocation_strategy      = "capacity-optimized"
      timeout_action           = "SWITCH_TO_ON_DEMAND"
      timeout_duration_minutes = 10
    }
  }

  lifecycle {
    # Managed scaling resizes this fleet; Terraform sets only its starting size.
    ignore_changes = [target_spot_capacity, target_on_demand_capacity]
  }
}

resource "aws_emr_managed_scaling_policy" "this" {
  cluster_id = aws_emr_cluster.flink.id

  compute_limits {
    unit_type                       = "InstanceFleetUnits"
    minimum_capacity_units          = var.emr.core_units + 1
    maximum_capacity_units          = var.emr.max_units
    maximum_ondemand_capacity_units = var.emr.max_on_demand_units
    maximum_core_capacity_units     = var.emr.core_units
  }
}
