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

  # Capacity from the declared peak, spread evenly over every AWS region regions.json deploys
  # (in all jurisdictions: each state deploys one of them). tests/infra/test_capacity.py
  # evaluates these expressions: 100k events/s of 1 KB over three regions must fit.
  all_regions                = flatten([for j, spec in local.regions_doc.jurisdictions : spec.aws])
  regional_events_per_second = ceil(var.capacity.peak_events_per_second / max(length(local.all_regions), 1))
  regional_mib_per_second    = local.regional_events_per_second * var.capacity.event_bytes / 1048576
  # A shard accepts 1 MiB/s or 1000 records/s of writes.
  derived_shards = ceil(max(local.regional_events_per_second / 1000, local.regional_mib_per_second) * var.capacity.headroom)
  # EMR fleet units (one m7g.xlarge each) the Flink job needs at the peak.
  derived_emr_units = ceil(local.regional_events_per_second * var.capacity.headroom / var.capacity.events_per_unit)
  shard_count       = coalesce(var.kinesis.shard_count, local.derived_shards)

  base_tags = merge(var.tags, { "managed-by" = "terraform" })

  module_settings = {
    name_prefix           = var.name_prefix
    kinesis               = { mode = var.kinesis.mode, shard_count = local.shard_count, retention_hours = var.kinesis.retention_hours }
    bucket                = var.bucket
    pipeline_wheel_path   = abspath(var.pipeline_wheel_path)
    beam_version          = var.beam_version
    worker_pool_port      = var.worker_pool_port
    iterator_age_alarm_ms = var.iterator_age_alarm_ms
    alarm_emails          = var.alarm_emails
    emr_max_units         = max(var.emr.max_units, var.emr.core_units + var.emr.task_spot_units + local.derived_emr_units)
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
      condition     = alltrue([for j in var.jurisdictions : contains(local.regions_doc.allowed_regions[j].aws, var.state_region)])
      error_message = "The state bucket's region ${var.state_region} must lie inside every deployed jurisdiction (regions.json allowed_regions): the state holds this deployment's secrets and outputs, so keep one state per jurisdiction, in it."
    }

    precondition {
      condition     = var.kinesis.mode == "PROVISIONED" || local.regional_mib_per_second <= 200
      error_message = "An on-demand stream takes at most 200 MiB/s of writes; capacity.peak_events_per_second needs ${local.regional_mib_per_second} MiB/s per region: use PROVISIONED."
    }

    precondition {
      condition     = local.shard_count * 1000 >= local.regional_events_per_second && local.shard_count * 1048576 >= local.regional_events_per_second * var.capacity.event_bytes
      error_message = "kinesis.shard_count ${local.shard_count} does not carry the declared peak of ${local.regional_events_per_second} events/s per region."
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
  emr                   = merge(var.emr, { subnet_id = lookup(var.emr_subnet_ids, "us-east-1", "subnet-00000000"), max_units = local.module_settings.emr_max_units })
  pipeline_wheel_path   = local.module_settings.pipeline_wheel_path
  beam_version          = local.module_settings.beam_version
  worker_pool_port      = local.module_settings.worker_pool_port
  iterator_age_alarm_ms = local.module_settings.iterator_age_alarm_ms
  alarm_emails          = local.module_settings.alarm_emails

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
  emr                   = merge(var.emr, { subnet_id = lookup(var.emr_subnet_ids, "eu-west-1", "subnet-00000000"), max_units = local.module_settings.emr_max_units })
  pipeline_wheel_path   = local.module_settings.pipeline_wheel_path
  beam_version          = local.module_settings.beam_version
  worker_pool_port      = local.module_settings.worker_pool_port
  iterator_age_alarm_ms = local.module_settings.iterator_age_alarm_ms
  alarm_emails          = local.module_settings.alarm_emails

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
  emr                   = merge(var.emr, { subnet_id = lookup(var.emr_subnet_ids, "ap-southeast-1", "subnet-00000000"), max_units = local.module_settings.emr_max_units })
  pipeline_wheel_path   = local.module_settings.pipeline_wheel_path
  beam_version          = local.module_settings.beam_version
  worker_pool_port      = local.module_settings.worker_pool_port
  iterator_age_alarm_ms = local.module_settings.iterator_age_alarm_ms
  alarm_emails          = local.module_settings.alarm_emails

}
