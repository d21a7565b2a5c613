output "runner_profile" {
  description = "Everything runners/dataflow.py needs for this region (consumed through the root's runner_profiles output)."
  value = {
    cloud                 = "gcp"
    runner                = "DataflowRunner"
    project               = var.project_id
    region                = var.region
    jurisdiction          = var.jurisdiction
    source                = local.derived_parameters.source
    output                = local.derived_parameters.output
    dead_letter           = local.derived_parameters.dead_letter
    temp_location         = "gs://${google_storage_bucket.data.name}/dataflow/temp"
    staging_location      = "gs://${google_storage_bucket.data.name}/dataflow/staging"
    service_account_email = google_service_account.dataflow.email
    sdk_container_image   = local.image
    subnetwork            = google_compute_subnetwork.dataflow.self_link
    max_num_workers       = var.dataflow.max_workers
    machine_type          = var.dataflow.machine_type
    dataflow_kms_key      = google_kms_crypto_key.this.id
    template_spec         = "gs://${google_storage_bucket.data.name}/${google_storage_bucket_object.template_spec.name}"
    network_tag           = "dataflow-${local.name}"
  }
}

output "topic" {
  description = "Pub/Sub topic producers publish events to."
  value       = google_pubsub_topic.events.id
}

output "repository" {
  description = "Artifact Registry repository path for the flex template image."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "job_id" {
  description = "Id of the running Dataflow job, or null while dataflow.deploy_job is false."
  value       = one(google_dataflow_flex_template_job.analytics[*].job_id)
}

output "bigquery_table" {
  description = "BigQuery external table over the aggregates."
  value       = "${var.project_id}.${google_bigquery_dataset.analytics.dataset_id}.${google_bigquery_table.aggregates.table_id}"
}
