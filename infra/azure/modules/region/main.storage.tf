# ADLS Gen2 account in var.region: the aggregates container (aggregates/ and
# dead-letters/ prefixes), the HDInsight file system and the scripts container.

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys with infrastructure encryption (double encryption at rest); a customer-managed key needs a Key Vault per region that this deployment does not create.
  #checkov:skip=CKV2_AZURE_33:The pipeline runs from laptops and HDInsight; access is restricted by the storage firewall (VNet rule + allowed IP ranges) instead of private endpoints.
  #checkov:skip=CKV2_AZURE_40:Shared keys sign the short-lived SAS that delivers the script action and the wheel to HDInsight.
  #checkov:skip=CKV_AZURE_59:Public endpoint kept for laptops that run the pipeline, but the firewall denies by default (VNet rule + allowed_ip_ranges only).
  #checkov:skip=CKV_AZURE_33:The account has no queues; blob access is logged through diagnostic settings.
  name                              = "${local.short}st"
  location                          = azurerm_resource_group.this.location
  resource_group_name               = azurerm_resource_group.this.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "GRS"
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
    ip_rules                   = var.storage.allowed_ip_ranges

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
    # GRS keeps a copy in Azure's paired region: refuse it unless that pair is inside
    # the jurisdiction (true for every pair in regions.json).
    postcondition {
      condition     = self.secondary_location == "" || contains(var.allowed_regions, lower(replace(self.secondary_location, " ", "")))
      error_message = "The GRS secondary ${self.secondary_location} of ${var.region} lies outside jurisdiction ${var.jurisdiction}."
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

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${local.aggregates_container}/"]
    }

    actions {
      base_blob {
        tier_to_cool_after_days_since_modification_greater_than    = 30
        tier_to_archive_after_days_since_modification_greater_than = 90
        delete_after_days_since_modification_greater_than          = var.storage.delete_after_days
      }

      snapshot {
        delete_after_days_since_creation_greater_than = 30
      }
    }
  }
}
