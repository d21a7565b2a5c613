# ADLS Gen2 account in var.region: the aggregates container (aggregates/ and
# dead-letters/ prefixes), the HDInsight file system and the scripts container.

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV2_AZURE_1:Not fixed yet: Microsoft-managed keys with infrastructure encryption; a customer-managed key needs a Key Vault with purge protection per region, which this module does not create (docs/infra.md lists it as open).
  #checkov:skip=CKV2_AZURE_33:Not fixed yet: no private endpoint; the firewall denies by default and admits the HDInsight subnet (service endpoint) and the listed pipeline and deployer IP ranges only (docs/infra.md lists private endpoints as open).
  #checkov:skip=CKV2_AZURE_40:Shared keys sign the read-only SAS of the script action and wheel (60 days, rotated every 30); HDInsight keeps the URI it was created with, so workers autoscaled after it expires fail their script action (docs/infra.md, open).
  #checkov:skip=CKV_AZURE_59:The public endpoint stays because Terraform and the pipeline hosts reach the data plane over it; the firewall denies every other address (no private endpoints yet, see docs/infra.md).
  #checkov:skip=CKV_AZURE_33:The account has no queues; blob access is logged through diagnostic settings.
  name                              = "${local.short}st"
  location                          = azurerm_resource_group.this.location
  resource_group_name               = azurerm_resource_group.this.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = local.replication
  is_hns_enabled                    = true
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  public_network_access_enabled     = true
  shared_access_key_enabled         = true
  infrastructure_encryption_enabled = var.storage.infrastructure_encryption
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  tags                              = local.tags

  network_rules {
    default_action             = "Deny"
    bypass                     = ["AzureServices", "Logging", "Metrics"]
    virtual_network_subnet_ids = [azurerm_subnet.hdinsight.id]
    # Terraform itself writes blobs and file systems through the data plane (deployer_ip_ranges).
    ip_rules = distinct(concat(var.storage.allowed_ip_ranges, var.storage.deployer_ip_ranges))

    # Resource instance rule: the region's Synapse workspace reads through the firewall.
    private_link_access {
      endpoint_resource_id = local.synapse_id
      endpoint_tenant_id   = data.azurerm_client_config.current.tenant_id
    }
  }

  blob_properties {
    delete_retention_policy {
      days = var.storage.soft_delete_days
    }

    container_delete_retention_policy {
      days = var.storage.soft_delete_days
    }
  }

  sas_policy {
    expiration_period = "02.00:00:00"
    expiration_action = "Log"
  }

  lifecycle {
    # Checked at plan, before anything is replicated: geo-redundant storage copies to Azure's
    # fixed pair, so it is allowed only when that pair is inside the jurisdiction.
    precondition {
      condition     = !contains(["GRS", "RAGRS", "GZRS", "RAGZRS"], local.replication) || contains(var.allowed_regions, var.grs_secondary)
      error_message = "Geo-redundant storage in ${var.region} would copy data to ${var.grs_secondary}, outside jurisdiction ${var.jurisdiction}."
    }
  }
}

resource "azurerm_storage_container" "aggregates" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is configured through the account's diagnostic settings (main.monitoring.tf).
  name                  = local.aggregates_container
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_data_lake_gen2_filesystem" "hdinsight" {
  name               = "hdinsight"
  storage_account_id = azurerm_storage_account.this.id
}

resource "azurerm_storage_container" "scripts" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is configured through the account's diagnostic settings (main.monitoring.tf).
  name                  = "scripts"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_blob" "flink_script" {
  name                   = "install-flink-on-yarn.sh"
  storage_account_name   = azurerm_storage_account.this.name
  storage_container_name = azurerm_storage_container.scripts.name
  type                   = "Block"
  source                 = "${path.module}/../../scripts/install-flink-on-yarn.sh"
  content_md5            = filemd5("${path.module}/../../scripts/install-flink-on-yarn.sh")
}

resource "azurerm_storage_blob" "wheel" {
  name                   = basename(var.pipeline_wheel_path)
  storage_account_name   = azurerm_storage_account.this.name
  storage_container_name = azurerm_storage_container.scripts.name
  type                   = "Block"
  source                 = var.pipeline_wheel_path
  content_md5            = filemd5(var.pipeline_wheel_path)
}

resource "time_rotating" "scripts_sas" {
  rotation_days = 30
}

# Read-only SAS on the scripts container, used by HDInsight when it runs the script
# action (at creation and whenever a worker is added).
data "azurerm_storage_account_blob_container_sas" "scripts" {
  connection_string = azurerm_storage_account.this.primary_connection_string
  container_name    = azurerm_storage_container.scripts.name
  https_only        = true
  start             = time_rotating.scripts_sas.rfc3339
  expiry            = timeadd(time_rotating.scripts_sas.rfc3339, "1440h")

  permissions {
    read   = true
    add    = false
    create = false
    write  = false
    delete = false
    list   = false
  }
}

resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  rule {
    name    = "tier-and-delete"
    enabled = true

    # Only the pipeline's output: aggregates and dead letters inside the aggregates container.
    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${local.aggregates_container}/${local.aggregates_container}/", "${local.aggregates_container}/${local.dead_letter_prefix}/"]
    }

    actions {
      # Cool stays readable by Synapse, HDInsight and the pipeline; Archive does not (a blob
      # must be rehydrated first), so nothing is archived inside the query horizon.
      base_blob {
        tier_to_cool_after_days_since_modification_greater_than    = 30
        tier_to_archive_after_days_since_modification_greater_than = var.storage.query_horizon_days < var.storage.delete_after_days ? var.storage.query_horizon_days : null
        delete_after_days_since_modification_greater_than          = var.storage.delete_after_days
      }

      snapshot {
        delete_after_days_since_creation_greater_than = 30
      }
    }
  }
}
