# One region of the GCP deployment: Pub/Sub -> Dataflow (flex template) -> GCS, all in
# var.region. Topic files: main.pubsub.tf, main.storage.tf, main.dataflow.tf,
# main.bigquery.tf.

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

data "google_bigquery_default_service_account" "bq" {
  project = var.project_id
}

locals {
  name           = "${var.name_prefix}-${var.region}"
  project_number = data.google_project.this.number

  labels = merge(var.labels, {
    jurisdiction = var.jurisdiction
    region       = var.region
  })

  aggregates_prefix  = "aggregates"
  dead_letter_prefix = "dead-letters"

  # Google-managed service agents that encrypt with the region's key.
  kms_users = {
    pubsub   = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    gcs      = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
    bigquery = "serviceAccount:${data.google_bigquery_default_service_account.bq.email}"
    registry = "serviceAccount:service-${local.project_number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
    dataflow = "serviceAccount:service-${local.project_number}@dataflow-service-producer-prod.iam.gserviceaccount.com"
    compute  = "serviceAccount:service-${local.project_number}@compute-system.iam.gserviceaccount.com"
  }
}

# Refuses to plan a region outside its jurisdiction (regions.json allowed_regions).
resource "terraform_data" "sovereignty" {
  input = {
    region       = var.region
    jurisdiction = var.jurisdiction
  }

  lifecycle {
    precondition {
      condition     = contains(var.allowed_regions, var.region)
      error_message = "Region ${var.region} is not inside jurisdiction ${var.jurisdiction} (regions.json allowed_regions)."
    }
  }
}

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = "${local.name}-ring"
  location = var.region

  depends_on = [terraform_data.sovereignty]
}

resource "google_kms_crypto_key" "this" {
  name            = "${local.name}-data"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = "7776000s"
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "service_agents" {
  for_each      = local.kms_users
  crypto_key_id = google_kms_crypto_key.this.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}

resource "google_compute_subnetwork" "dataflow" {
  project                  = var.project_id
  name                     = "${local.name}-dataflow"
  region                   = var.region
  network                  = var.network_id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }

  depends_on = [terraform_data.sovereignty]
}
