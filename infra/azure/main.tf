# Every Azure region deployed by a selected jurisdiction of ../regions.json gets one
# instance of ./modules/region (Event Hubs with geo-DR to the pair region, ADLS Gen2,
# HDInsight with Flink on YARN and Spark, Log Analytics, Synapse serverless SQL). azurerm
# is not bound to a region, so one module call with for_each over regions.json covers them all.

locals {
  regions_doc = jsondecode(file("${path.module}/../regions.json"))

  # region => { jurisdiction, pair, grs_secondary } for the jurisdictions in var.jurisdictions.
  # pair: the Event Hubs geo-DR secondary ("" when the jurisdiction has no second Azure region,
  # as in Singapore); grs_secondary: where Azure's fixed pairing would copy GRS storage.
  deployed = merge([
    for j, spec in local.regions_doc.jurisdictions : {
      for r in spec.azure : r => {
        jurisdiction  = j
        pair          = lookup(spec.azure_geo_dr_pair, r, "")
        grs_secondary = lookup(local.regions_doc.azure_paired_regions, r, "")
      }
    }
    if contains(var.jurisdictions, j)
  ]...)

  tags = merge(var.tags, { "managed-by" = "terraform" })

  # Capacity from the declared peak, spread evenly over every Azure region regions.json deploys
  # (tests/infra/test_capacity.py evaluates these: 100k events/s of 1 KB over three regions).
  all_regions                = flatten([for j, spec in local.regions_doc.jurisdictions : spec.azure])
  regional_events_per_second = ceil(var.capacity.peak_events_per_second / max(length(local.all_regions), 1))
  regional_mb_per_second     = local.regional_events_per_second * var.capacity.event_bytes / 1000000
  # Standard: a throughput unit takes 1 MB/s or 1000 events/s of ingress (at most 40 per
  # namespace), and a hub has at most 32 partitions of about 1 MB/s each: Standard fits up
  # to 32 units, with one partition per unit. Above that, Premium.
  derived_tus = ceil(max(local.regional_events_per_second / 1000, local.regional_mb_per_second) * var.capacity.headroom)
  # Premium: processing units of capacity.mb_per_processing_unit each, in steps 1, 2, 4, 8, 16.
  derived_pus = [for pu in [1, 2, 4, 8, 16] : pu if pu * var.capacity.mb_per_processing_unit >= local.regional_mb_per_second * var.capacity.headroom]
  standard_fits        = local.derived_tus <= 32
  eventhubs_sku        = local.standard_fits ? "Standard" : "Premium"
  eventhubs_capacity   = local.standard_fits ? min(max(var.eventhubs.capacity, 1), local.derived_tus) : (length(local.derived_pus) > 0 ? local.derived_pus[0] : 16)
  eventhubs_max_tus    = local.standard_fits ? max(local.derived_tus, var.eventhubs.capacity) : 0
  eventhubs_partitions = local.standard_fits ? max(var.eventhubs.partition_count, local.derived_tus) : min(max(var.eventhubs.partition_count, ceil(local.regional_mb_per_second * var.capacity.headroom)), 100)
  eventhubs = merge(var.eventhubs, {
    sku                      = local.eventhubs_sku
    capacity                 = local.eventhubs_capacity
    maximum_throughput_units = local.eventhubs_max_tus
    partition_count          = local.eventhubs_partitions
  })
}

resource "terraform_data" "region_inputs" {
  input = keys(local.deployed)

  lifecycle {
    precondition {
      condition     = alltrue([for r, d in local.deployed : d.pair == "" || contains(local.regions_doc.allowed_regions[d.jurisdiction].azure, d.pair)])
      error_message = "regions.json pairs Event Hubs geo-DR across jurisdictions: ${join(", ", [for r, d in local.deployed : "${r} -> ${d.pair}" if d.pair != "" && !contains(local.regions_doc.allowed_regions[d.jurisdiction].azure, d.pair)])}."
    }

    precondition {
      condition     = alltrue([for r, d in local.deployed : contains(local.regions_doc.azure_zonal_regions, r) && (d.pair == "" || contains(local.regions_doc.azure_zonal_regions, d.pair))])
      error_message = "Every deployed Azure region and geo-DR pair must have availability zones (regions.json azure_zonal_regions): Event Hubs namespaces are zone-redundant only there."
    }

    precondition {
      condition     = alltrue([for j in var.jurisdictions : contains(local.regions_doc.allowed_regions[j].azure, var.state_region)])
      error_message = "The state storage account's region ${var.state_region} must lie inside every deployed jurisdiction (regions.json allowed_regions): the state holds the gateway passwords and keys, so keep one state per jurisdiction, in it."
    }

    precondition {
      condition     = local.standard_fits || length(local.derived_pus) > 0
      error_message = "capacity.peak_events_per_second needs ${local.regional_mb_per_second} MB/s per region: more than 16 Premium processing units; use a dedicated Event Hubs cluster."
    }

    precondition {
      condition     = length(setsubtract(keys(local.deployed), keys(var.networks))) == 0
      error_message = "networks has no address space for: ${join(", ", setsubtract(keys(local.deployed), keys(var.networks)))}."
    }
  }
}

module "region" {
  source   = "./modules/region"
  for_each = local.deployed

  name_prefix         = var.name_prefix
  region              = each.key
  pair_region         = each.value.pair
  grs_secondary       = each.value.grs_secondary
  jurisdiction        = each.value.jurisdiction
  allowed_regions     = local.regions_doc.allowed_regions[each.value.jurisdiction].azure
  tags                = local.tags
  eventhubs           = local.eventhubs
  storage             = var.storage
  network             = lookup(var.networks, each.key, { vnet_cidr = "10.255.0.0/16", subnet_cidr = "10.255.0.0/24" })
  hdinsight           = var.hdinsight
  pipeline_wheel_path = abspath(var.pipeline_wheel_path)
  beam_version        = var.beam_version
  worker_pool_port    = var.worker_pool_port
  log_retention_days  = var.log_retention_days
  synapse             = var.synapse
  alert_emails        = var.alert_emails

  source_lag_alert_minutes = var.source_lag_alert_minutes

}
