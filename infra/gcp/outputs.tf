output "runner_profiles" {
  description = "Per deployed region: the values runners/dataflow.py turns into DataflowRunner options (see docs/runners.md)."
  value       = { for r, m in module.region : r => m.runner_profile }
}

output "topics" {
  description = "Pub/Sub topic per deployed region."
  value       = { for r, m in module.region : r => m.topic }
}

output "repositories" {
  description = "Artifact Registry repository per deployed region, for `make flex-template`."
  value       = { for r, m in module.region : r => m.repository }
}

output "bigquery_tables" {
  description = "BigQuery external table per deployed region."
  value       = { for r, m in module.region : r => m.bigquery_table }
}

output "job_ids" {
  description = "Dataflow job id per deployed region (null until dataflow.deploy_job = true)."
  value       = { for r, m in module.region : r => m.job_id }
}
