# BigQuery dataset in the region with an external table over the Hive-style layout:
#   gs://BUCKET/aggregates/dt=YYYY-MM-DD/hour=HH/region=R/part-*.parquet

resource "google_bigquery_dataset" "analytics" {
  project                    = var.project_id
  dataset_id                 = replace("${local.name}_analytics", "-", "_")
  location                   = var.region
  description                = "Aggregates of ${local.name}"
  delete_contents_on_destroy = false
  labels                     = local.labels

  default_encryption_configuration {
    kms_key_name = google_kms_crypto_key.this.id
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents, terraform_data.sovereignty]
}

resource "google_bigquery_table" "aggregates" {
  #checkov:skip=CKV_GCP_80:External table: the data stays in the CMEK-encrypted bucket; BigQuery stores only the definition, in the CMEK dataset.
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.analytics.dataset_id
  table_id            = "aggregates"
  deletion_protection = true
  labels              = local.labels

  external_data_configuration {
    source_format = "PARQUET"
    autodetect    = true
    source_uris   = ["gs://${google_storage_bucket.data.name}/${local.aggregates_prefix}/*"]

    hive_partitioning_options {
      mode                     = "CUSTOM"
      source_uri_prefix        = "gs://${google_storage_bucket.data.name}/${local.aggregates_prefix}/{dt:DATE}/{hour:INTEGER}/{region:STRING}"
      require_partition_filter = true
    }
  }
}
