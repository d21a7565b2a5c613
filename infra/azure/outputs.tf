output "runner_profiles" {
  description = "Per deployed region: the values runners/flink.py and runners/spark.py turn into Beam options (see docs/runners.md)."
  value       = { for r, m in module.region : r => m.runner_profile }
}

output "eventhubs_aliases" {
  description = "Geo-DR alias per deployed region (replicates metadata only, not events)."
  value       = { for r, m in module.region : r => m.eventhubs_alias }
}

output "listen_rule_ids" {
  description = "Listen-only authorization rule per deployed region (the pipeline's credentials)."
  value       = { for r, m in module.region : r => m.listen_rule_id }
}

output "send_rule_ids" {
  description = "Send-only authorization rule per deployed region (producers' credentials)."
  value       = { for r, m in module.region : r => m.send_rule_id }
}

output "gateway_passwords" {
  description = "HDInsight gateway (admin) password per deployed region."
  value       = { for r, m in module.region : r => m.gateway_password }
  sensitive   = true
}

output "synapse" {
  description = "Per deployed region: the Synapse serverless SQL endpoint and the aggregates URL (input of infra/azure/sql/apply.sh)."
  value       = { for r, m in module.region : r => m.synapse }
}
