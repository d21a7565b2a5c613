# Synapse serverless SQL over the region's aggregates, in var.region: the workspace keeps its
# own files in a `synapse` filesystem of the region's ADLS Gen2 account (same jurisdiction),
# reads the aggregates container with its system-assigned identity (read-only), and admits
# only Entra ID logins (no SQL password, so none in the state). Public access is off unless
# synapse.allowed_ip_ranges lists client ranges for the firewall. The external data source,
# file formats and views are T-SQL in ../../sql (apply.sh), generated from the schema.

data "azurerm_client_config" "current" {}

locals {
  synapse_name = "${local.short}-syn"
  # Built, not referenced, so the storage firewall can admit the workspace without a cycle.
  synapse_id     = "/subscriptions/${data.azurerm_client_config.current.subscription_id}/resourceGroups/${azurerm_resource_group.this.name}/providers/Microsoft.Synapse/workspaces/${local.synapse_name}"
  aggregates_url = "https://${azurerm_storage_account.this.name}.dfs.core.windows.net/${azurerm_storage_container.aggregates.name}/${local.aggregates_container}"
}

resource "azurerm_storage_data_lake_gen2_filesystem" "synapse" {
  name               = "synapse"
  storage_account_id = azurerm_storage_account.this.id
}

resource "azurerm_synapse_workspace" "this" {
  #checkov:skip=CKV2_AZURE_19:Firewall rules exist only for the client ranges listed in synapse.allowed_ip_ranges (default none, and then public access is off); private endpoints are not part of this deployment.
  #checkov:skip=CKV_AZURE_240:Microsoft-managed keys, as for the region's storage account; a customer-managed key needs a Key Vault per region that this deployment does not create.
  name                                 = local.synapse_name
  resource_group_name                  = azurerm_resource_group.this.name
  location                             = azurerm_resource_group.this.location
  storage_data_lake_gen2_filesystem_id = azurerm_storage_data_lake_gen2_filesystem.synapse.id
  managed_resource_group_name          = "${local.name}-synapse-managed-rg"
  azuread_authentication_only          = true
  managed_virtual_network_enabled      = true
  data_exfiltration_protection_enabled = true
  public_network_access_enabled        = length(var.synapse.allowed_ip_ranges) > 0
  tags                                 = local.tags

  identity {
    type = "SystemAssigned"
  }

  depends_on = [terraform_data.sovereignty]
}

resource "azurerm_synapse_workspace_aad_admin" "this" {
  synapse_workspace_id = azurerm_synapse_workspace.this.id
  login                = var.synapse.entra_admin_login
  object_id            = var.synapse.entra_admin_object_id
  tenant_id            = data.azurerm_client_config.current.tenant_id
}

resource "azurerm_synapse_firewall_rule" "allowed" {
  for_each             = toset(var.synapse.allowed_ip_ranges)
  name                 = "allow-${replace(replace(each.value, ".", "-"), "/", "_")}"
  synapse_workspace_id = azurerm_synapse_workspace.this.id
  start_ip_address     = cidrhost(each.value, 0)
  end_ip_address       = cidrhost(each.value, -1)
}

# Read-only on the aggregates container: the views' credential is this identity.
resource "azurerm_role_assignment" "synapse_aggregates_reader" {
  scope                = azurerm_storage_container.aggregates.resource_manager_id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_synapse_workspace.this.identity[0].principal_id
}

# The workspace's own filesystem (its default storage) needs write access.
resource "azurerm_role_assignment" "synapse_filesystem" {
  scope                = "${azurerm_storage_account.this.id}/blobServices/default/containers/${azurerm_storage_data_lake_gen2_filesystem.synapse.name}"
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_synapse_workspace.this.identity[0].principal_id
}

# Audit records of SQL requests go to the region's Log Analytics workspace (diagnostic setting).
resource "azurerm_synapse_workspace_extended_auditing_policy" "this" {
  synapse_workspace_id   = azurerm_synapse_workspace.this.id
  log_monitoring_enabled = true
}

resource "azurerm_monitor_diagnostic_setting" "synapse" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_synapse_workspace.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "allLogs"
  }
}
