# Every Azure region deployed by a selected jurisdiction of ../regions.json gets one
# instance of ./modules/region (Event Hubs with geo-DR to the pair region, ADLS Gen2,
# HDInsight with Flink on YARN and Spark, Log Analytics, Synapse serverless SQL). azurerm
# is not bound to a region, so one module call with for_each over regions.json covers them all.

locals {
  regions_doc = jsondecode(file("${path.module}/../regions.json"))

  # region => { jurisdiction, pair } for the jurisdictions selected in var.jurisdictions.
  deployed = merge([
    for j, spec in local.regions_doc.jurisdictions : {
      for r in spec.azure : r => {
        jurisdiction = j
        pair         = lookup(spec.azure_geo_dr_pair, r, "")
      }
    }
    if contains(var.jurisdictions, j)
  ]...)

  tags = merge(var.tags, { "managed-by" = "terraform" })
}

resource "terraform_data" "region_inputs" {
  input = keys(local.deployed)

  lifecycle {
    precondition {
      condition     = alltrue([for r, d in local.deployed : d.pair != ""])
      error_message = "regions.json azure_geo_dr_pair has no pair for: ${join(", ", [for r, d in local.deployed : r if d.pair == ""])}."
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
  jurisdiction        = each.value.jurisdiction
  allowed_regions     = local.regions_doc.allowed_regions[each.value.jurisdiction].azure
  tags                = local.tags
  eventhubs           = var.eventhubs
  storage             = var.storage
  network             = lookup(var.networks, each.key, { vnet_cidr = "10.255.0.0/16", subnet_cidr = "10.255.0.0/24" })
  hdinsight           = var.hdinsight
  pipeline_wheel_path = abspath(var.pipeline_wheel_path)
  beam_version        = var.beam_version
  worker_pool_port    = var.worker_pool_port
  log_retention_days  = var.log_retention_days
  synapse             = var.synapse

  depends_on = [terraform_data.region_inputs]
}
