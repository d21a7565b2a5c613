# Event Hubs namespace with the Kafka endpoint (Standard and Premium expose it on 9093),
# one hub, the pipeline's consumer group and listen-only / send-only rules.
# Namespaces in regions with availability zones are zone-redundant automatically (the root
# deploys only such regions). Tier, capacity and partitions come from the root's capacity
# derivation (declared peak events per second).

locals {
  namespace_settings = {
    sku                      = var.eventhubs.sku
    capacity                 = var.eventhubs.capacity
    auto_inflate_enabled     = (var.eventhubs.sku == "Standard")
    maximum_throughput_units = (var.eventhubs.sku == "Standard" ? var.eventhubs.maximum_throughput_units : null)
  }

  # Clients connect through the geo-DR alias when there is one, so a failover needs no change
  # on their side; without a pair they use the namespace.
  eventhubs_endpoint = local.geo_dr ? azurerm_eventhub_namespace_disaster_recovery_config.this[0].name : azurerm_eventhub_namespace.this.name
}

resource "azurerm_eventhub_namespace" "this" {
  #checkov:skip=CKV_AZURE_228:azurerm 4 has no zone_redundant argument; Azure makes a namespace zone-redundant by itself only in regions with availability zones, and the root's precondition refuses any region or geo-DR pair missing from regions.json azure_zonal_regions.
  name                          = "${local.name}-ehns"
  location                      = azurerm_resource_group.this.location
  resource_group_name           = azurerm_resource_group.this.name
  sku                           = local.namespace_settings.sku
  capacity                      = local.namespace_settings.capacity
  auto_inflate_enabled          = local.namespace_settings.auto_inflate_enabled
  maximum_throughput_units      = local.namespace_settings.maximum_throughput_units
  minimum_tls_version           = "1.2"
  local_authentication_enabled  = true
  public_network_access_enabled = true
  tags                          = local.tags

  network_rulesets {
    default_action                 = "Deny"
    public_network_access_enabled  = true
    trusted_service_access_enabled = true

    virtual_network_rule {
      subnet_id                                       = azurerm_subnet.hdinsight.id
      ignore_missing_virtual_network_service_endpoint = false
    }

    dynamic "ip_rule" {
      for_each = toset(var.storage.allowed_ip_ranges)

      content {
        ip_mask = ip_rule.value
        action  = "Allow"
      }
    }
  }

  identity {
    type = "SystemAssigned"
  }
}

resource "azurerm_eventhub" "events" {
  name              = "events"
  namespace_id      = azurerm_eventhub_namespace.this.id
  partition_count   = var.eventhubs.partition_count
  message_retention = var.eventhubs.retention_days
}

resource "azurerm_eventhub_consumer_group" "pipeline" {
  name                = var.eventhubs.consumer_group
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.events.name
  resource_group_name = azurerm_resource_group.this.name
}

resource "azurerm_eventhub_authorization_rule" "listen" {
  name                = "pipeline-listen"
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.events.name
  resource_group_name = azurerm_resource_group.this.name
  listen              = true
  send                = false
  manage              = false
}

resource "azurerm_eventhub_authorization_rule" "send" {
  name                = "producers-send"
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.events.name
  resource_group_name = azurerm_resource_group.this.name
  listen              = false
  send                = true
  manage              = false
}

# Geo-DR: the alias fails clients over to the secondary namespace in the pair region.
# It replicates METADATA ONLY (hubs, consumer groups, rules): events stored in the
# primary are not copied, and after a failover the secondary starts empty. The secondary
# admits the same networks as the primary, so clients still get in after a failover.
resource "azurerm_eventhub_namespace" "secondary" {
  count = local.geo_dr ? 1 : 0
  #checkov:skip=CKV_AZURE_228:azurerm 4 has no zone_redundant argument; Azure makes a namespace zone-redundant by itself only in regions with availability zones, and the root's precondition refuses any region or geo-DR pair missing from regions.json azure_zonal_regions.
  name                          = "${local.name}-ehns-dr"
  location                      = azurerm_resource_group.pair[0].location
  resource_group_name           = azurerm_resource_group.pair[0].name
  sku                           = local.namespace_settings.sku
  capacity                      = local.namespace_settings.capacity
  auto_inflate_enabled          = local.namespace_settings.auto_inflate_enabled
  maximum_throughput_units      = local.namespace_settings.maximum_throughput_units
  minimum_tls_version           = "1.2"
  local_authentication_enabled  = true
  public_network_access_enabled = true
  tags                          = merge(local.tags, { region = var.pair_region, role = "geo-dr-secondary" })

  network_rulesets {
    default_action                 = "Deny"
    public_network_access_enabled  = true
    trusted_service_access_enabled = true

    virtual_network_rule {
      subnet_id                                       = azurerm_subnet.hdinsight.id
      ignore_missing_virtual_network_service_endpoint = false
    }

    dynamic "ip_rule" {
      for_each = toset(var.storage.allowed_ip_ranges)

      content {
        ip_mask = ip_rule.value
        action  = "Allow"
      }
    }
  }

  identity {
    type = "SystemAssigned"
  }
}

resource "azurerm_eventhub_namespace_disaster_recovery_config" "this" {
  count                = local.geo_dr ? 1 : 0
  name                 = "${local.name}-ehns-alias"
  resource_group_name  = azurerm_resource_group.this.name
  namespace_name       = azurerm_eventhub_namespace.this.name
  partner_namespace_id = azurerm_eventhub_namespace.secondary[0].id
}
