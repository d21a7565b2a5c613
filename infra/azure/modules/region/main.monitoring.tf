resource "azurerm_log_analytics_workspace" "this" {
  name                = "${local.name}-logs"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

resource "azurerm_monitor_diagnostic_setting" "eventhub" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_eventhub_namespace.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}

resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }

  enabled_metric {
    category = "Transaction"
  }
}

resource "azurerm_monitor_diagnostic_setting" "hdinsight" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_hdinsight_spark_cluster.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_metric {
    category = "AllMetrics"
  }
}

resource "azurerm_monitor_action_group" "alerts" {
  name                = "${local.name}-alerts"
  resource_group_name = azurerm_resource_group.this.name
  short_name          = substr(replace(var.name_prefix, "-", ""), 0, 12)
  tags                = local.tags

  dynamic "email_receiver" {
    for_each = toset(var.alert_emails)

    content {
      name                    = replace(email_receiver.value, "@", "-at-")
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }
}

# Source lag: events keep arriving but the pipeline's consumer group reads none of them for
# var.source_lag_alert_minutes. Azure Monitor publishes no consumer-group lag for Event Hubs, so
# the lag is measured as how long arriving events have gone unread.
locals {
  source_lag_windows = { "5" = "PT5M", "15" = "PT15M", "30" = "PT30M", "60" = "PT1H" }
}

resource "azurerm_monitor_metric_alert" "consumer_stalled" {
  name                = "${local.name}-eventhubs-consumer-stalled"
  resource_group_name = azurerm_resource_group.this.name
  scopes              = [azurerm_eventhub_namespace.this.id]
  description         = "Events arrive in ${azurerm_eventhub.events.name} but none were read for ${var.source_lag_alert_minutes} minutes: the Flink job is stopped or lagging."
  severity            = 2
  frequency           = "PT5M"
  window_size         = local.source_lag_windows[tostring(var.source_lag_alert_minutes)]
  tags                = local.tags

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "IncomingMessages"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 0
  }

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "OutgoingMessages"
    aggregation      = "Total"
    operator         = "LessThan"
    threshold        = 1
  }

  action {
    action_group_id = azurerm_monitor_action_group.alerts.id
  }
}

# Capacity: requests are throttled once throughput or processing units are exhausted.
resource "azurerm_monitor_metric_alert" "throttled" {
  name                = "${local.name}-eventhubs-throttled"
  resource_group_name = azurerm_resource_group.this.name
  scopes              = [azurerm_eventhub_namespace.this.id]
  description         = "Event Hubs throttles requests: raise capacity.peak_events_per_second."
  severity            = 2
  frequency           = "PT5M"
  window_size         = "PT15M"
  tags                = local.tags

  criteria {
    metric_namespace = "Microsoft.EventHub/namespaces"
    metric_name      = "ThrottledRequests"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 0
  }

  action {
    action_group_id = azurerm_monitor_action_group.alerts.id
  }
}

# Dead-letter growth: blob writes under the dead-letters/ prefix, from the storage logs the
# diagnostic setting above sends to the workspace.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "dead_letters" {
  name                 = "${local.name}-dead-letters"
  resource_group_name  = azurerm_resource_group.this.name
  location             = azurerm_resource_group.this.location
  scopes               = [azurerm_log_analytics_workspace.this.id]
  description          = "The pipeline wrote dead letters (records it could not decode)."
  severity             = 3
  evaluation_frequency = "PT15M"
  window_duration      = "PT15M"
  tags                 = local.tags

  criteria {
    query                   = <<-KQL
      StorageBlobLogs
      | where Category == "StorageWrite" and Uri has "/${local.aggregates_container}/${local.dead_letter_prefix}/"
      | summarize writes = count()
    KQL
    time_aggregation_method = "Total"
    metric_measure_column   = "writes"
    operator                = "GreaterThan"
    threshold               = 0
  }

  action {
    action_groups = [azurerm_monitor_action_group.alerts.id]
  }
}
