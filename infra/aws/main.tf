# Every AWS region deployed by a selected jurisdiction of ../regions.json gets one
# instance of ./modules/region (stream, bucket, EMR Flink runner, IAM, alarm, Glue/Athena).
# Providers cannot be created with for_each, so each region has one aliased provider
# (providers.tf) and one module block below, enabled by count when regions.json deploys
# it. terraform_data.region_wiring refuses to plan when regions.json names a region
# that has no block here.

locals {
  regions_doc = jsondecode(file("${path.module}/../regions.json"))

  # region => jurisdiction, for the jurisdictions selected in var.jurisdictions.
  deployed = merge([
    for j, spec in local.regions_doc.jurisdictions : { for r in spec.aws : r => j }
    if contains(var.jurisdictions, j)
  ]...)

  wired_regions = toset(["us-east-1", "eu-west-1", "ap-southeast-1"])

  base_tags = merge(var.tags, { "managed-by" = "terraform" })

  module_settings = {
    name_prefix           = var.name_prefix
    kinesis               = { mode = var.kinesis.mode, shard_count = var.kinesis.shard_count, retention_hours = var.kinesis.retention_hours }
    bucket                = var.bucket
    pipeline_wheel_path   = abspath(var.pipeline_wheel_path)
    beam_version          = var.beam_version
    worker_pool_port      = var.worker_pool_port
    iterator_age_alarm_ms = var.iterator_age_alarm_ms
    alarm_emails          = var.alarm_emails
  }
}

resource "terraform_data" "region_wiring" {
  input = keys(local.deployed)

  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(local.deployed), local.wired_regions)) == 0
      error_message = "regions.json deploys AWS regions without a provider alias and module block in infra/aws: ${join(", ", setsubtract(keys(local.deployed), local.wired_regions))}."
    }

    precondition {
      condition     = length(setsubtract(keys(local.deployed), keys(var.emr_subnet_ids))) == 0
      error_message = "emr_subnet_ids has no subnet for: ${join(", ", setsubtract(keys(local.deployed), keys(var.emr_subnet_ids)))}."
    }
  }
}

module "us_east_1" {
  source = "./modules/region"
  count  = contains(keys(local.deployed), "us-east-1") ? 1 : 0

  providers = {
    aws = aws.us_east_1
  }

  region          = "us-east-1"
  jurisdiction    = lookup(local.deployed, "us-east-1", "us")
  allowed_regions = local.regions_doc.allowed_regions[lookup(local.deployed, "us-east-1", "us")].aws
  tags            = var.tags

  name_prefix           = local.module_settings.name_prefix
  kinesis               = local.module_settings.kinesis
  bucket                = local.module_settings.bucket
  emr                   = merge(var.emr, { subnet_id = lookup(var.emr_subnet_ids, "us-east-1", "subnet-00000000") })
  pipeline_wheel_path   = local.module_settings.pipeline_wheel_path
  beam_version          = local.module_settings.beam_version
  worker_pool_port      = local.module_settings.worker_pool_port
  iterator_age_alarm_ms = local.module_settings.iterator_age_alarm_ms
  alarm_emails          = local.module_settings.alarm_emails

  depends_on = [terraform_data.region_wiring]
}

module "eu_west_1" {
  source = "./modules/region"
  count  = contains(keys(local.deployed), "eu-west-1") ? 1 : 0

  providers = {
    aws = aws.eu_west_1
  }

  region          = "eu-west-1"
  jurisdiction    = lookup(local.deployed, "eu-west-1", "us")
  allowed_regions = local.regions_doc.allowed_regions[lookup(local.deployed, "eu-west-1", "us")].aws
  tags            = var.tags

  name_prefix           = local.module_settings.name_prefix
  kinesis               = local.module_settings.kinesis
  bucket                = local.module_settings.bucket
  emr                   = merge(var.emr, { subnet_id = lookup(var.emr_subnet_ids, "eu-west-1", "subnet-00000000") })
  pipeline_wheel_path   = local.module_settings.pipeline_wheel_path
  beam_version          = local.module_settings.beam_version
  worker_pool_port      = local.module_settings.worker_pool_port
  iterator_age_alarm_ms = local.module_settings.iterator_age_alarm_ms
  alarm_emails          = local.module_settings.alarm_emails

  depends_on = [terraform_data.region_wiring]
}

module "ap_southeast_1" {
  source = "./modules/region"
  count  = contains(keys(local.deployed), "ap-southeast-1") ? 1 : 0

  providers = {
    aws = aws.ap_southeast_1
  }

  region          = "ap-southeast-1"
  jurisdiction    = lookup(local.deployed, "ap-southeast-1", "us")
  allowed_regions = local.regions_doc.allowed_regions[lookup(local.deployed, "ap-southeast-1", "us")].aws
  tags            = var.tags

  name_prefix           = local.module_settings.name_prefix
  kinesis               = local.module_settings.kinesis
  bucket                = local.module_settings.bucket
  emr                   = merge(var.emr, { subnet_id = lookup(var.emr_subnet_ids, "ap-southeast-1", "subnet-00000000") })
  pipeline_wheel_path   = local.module_settings.pipeline_wheel_path
  beam_version          = local.module_settings.beam_version
  worker_pool_port      = local.module_settings.worker_pool_port
  iterator_age_alarm_ms = local.module_settings.iterator_age_alarm_ms
  alarm_emails          = local.module_settings.alarm_emails

  depends_on = [terraform_data.region_wiring]
}
