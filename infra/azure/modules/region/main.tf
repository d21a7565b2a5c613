# One region of the Azure deployment: Event Hubs -> HDInsight (Flink on YARN for
# streaming, Spark for backfills) -> ADLS Gen2, all in var.region; the Event Hubs geo-DR
# secondary sits in var.pair_region, inside the same jurisdiction.
# Topic files: main.eventhub.tf, main.storage.tf, main.network.tf, main.hdinsight.tf,
# main.monitoring.tf.

resource "random_string" "suffix" {
  length  = 6
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  name  = "${var.name_prefix}-${var.region}"
  short = "${var.name_prefix}${random_string.suffix.result}"

  tags = merge(var.tags, {
    jurisdiction = var.jurisdiction
    region       = var.region
  })

  aggregates_container = "aggregates"
  dead_letter_prefix   = "dead-letters"

  geo_dr = var.pair_region != ""
  # GRS copies to Azure's fixed pair: only when that pair is inside the jurisdiction.
  replication = contains(var.allowed_regions, var.grs_secondary) ? "GRS" : "ZRS"
}

# Refuses to plan when the region or its geo-DR pair lies outside the jurisdiction.
resource "terraform_data" "sovereignty" {
  input = {
    region       = var.region
    pair_region  = var.pair_region
    jurisdiction = var.jurisdiction
  }

  lifecycle {
    precondition {
      condition     = contains(var.allowed_regions, var.region)
      error_message = "Region ${var.region} is not inside jurisdiction ${var.jurisdiction} (regions.json allowed_regions)."
    }

    precondition {
      condition     = !local.geo_dr || (contains(var.allowed_regions, var.pair_region) && var.pair_region != var.region)
      error_message = "Geo-DR pair ${var.pair_region} of ${var.region} must be another region inside jurisdiction ${var.jurisdiction}."
    }
  }
}

resource "azurerm_resource_group" "this" {
  name     = "${local.name}-rg"
  location = var.region
  tags     = local.tags

  depends_on = [terraform_data.sovereignty]
}

# The geo-DR secondary namespace lives in its own resource group in the pair region.
resource "azurerm_resource_group" "pair" {
  count    = local.geo_dr ? 1 : 0
  name     = "${local.name}-dr-${var.pair_region}-rg"
  location = var.pair_region
  tags     = merge(local.tags, { role = "geo-dr-secondary" })

  depends_on = [terraform_data.sovereignty]
}
