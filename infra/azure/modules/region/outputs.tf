output "runner_profile" {
  description = "Everything runners/flink.py (streaming) and runners/spark.py (backfill) need for this region."
  value = {
    cloud               = "azure"
    runner              = "FlinkRunner"
    region              = var.region
    pair_region         = var.pair_region
    jurisdiction        = var.jurisdiction
    source              = "eventhubs://${local.eventhubs_endpoint}/${azurerm_eventhub.events.name}?consumer_group=${azurerm_eventhub_consumer_group.pipeline.name}"
    output              = "azfs://${azurerm_storage_account.this.name}/${azurerm_storage_container.aggregates.name}/${local.aggregates_container}"
    dead_letter         = "azfs://${azurerm_storage_account.this.name}/${azurerm_storage_container.aggregates.name}/${local.dead_letter_prefix}"
    flink_version       = join(".", slice(split(".", var.hdinsight.flink_version), 0, 2))
    flink_master_object = "abfs://${azurerm_storage_data_lake_gen2_filesystem.hdinsight.name}@${azurerm_storage_account.this.name}.dfs.core.windows.net/flink/flink-master.txt"
    cluster_ssh_host    = "${azurerm_hdinsight_spark_cluster.this.name}-ssh.azurehdinsight.net"
    spark_master_url    = "yarn"
    environment_type    = "EXTERNAL"
    environment_config  = "localhost:${var.worker_pool_port}"
    checkpointing_ms    = var.hdinsight.checkpoint_ms
  }
}

output "eventhubs_alias" {
  description = "Geo-DR alias name (null without a pair in the jurisdiction); runner_profile.source connects through it, so clients fail over to the pair region (metadata only)."
  value       = one(azurerm_eventhub_namespace_disaster_recovery_config.this[*].name)
}

output "listen_rule_id" {
  description = "Id of the listen-only rule the pipeline reads with (fetch its connection string with az eventhubs eventhub authorization-rule keys list)."
  value       = azurerm_eventhub_authorization_rule.listen.id
}

output "send_rule_id" {
  description = "Id of the send-only rule producers write with."
  value       = azurerm_eventhub_authorization_rule.send.id
}

output "gateway_password" {
  description = "Password of the HDInsight gateway user admin (Ambari, YARN UI)."
  value       = random_password.gateway.result
  sensitive   = true
}

output "synapse" {
  description = "Synapse serverless SQL endpoint and the aggregates URL its external data source points at (infra/azure/sql/apply.sh reads both)."
  value = {
    workspace      = azurerm_synapse_workspace.this.name
    sql_endpoint   = azurerm_synapse_workspace.this.connectivity_endpoints["sqlOnDemand"]
    aggregates_url = local.aggregates_url
  }
}
