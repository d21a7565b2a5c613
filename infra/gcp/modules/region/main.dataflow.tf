# Artifact Registry repository for the flex template image (launcher and SDK container
# in one), the workers' service account, and the streaming job itself.

locals {
  image = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/${var.dataflow.template_image}:${var.dataflow.image_tag}"

  derived_parameters = {
    source       = "pubsub://projects/${var.project_id}/subscriptions/${google_pubsub_subscription.pipeline.name}"
    output       = "gs://${google_storage_bucket.data.name}/${local.aggregates_prefix}"
    dead_letter  = "gs://${google_storage_bucket.data.name}/${local.dead_letter_prefix}"
    jurisdiction = var.jurisdiction
    sink_region  = var.region
  }

  # One parameter per pipeline CLI option; unset options keep the pipeline's default.
  job_parameters = merge(
    { for k, v in var.pipeline_options : k => tostring(v) if v != null },
    local.derived_parameters,
  )
}

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = "${local.name}-images"
  description   = "Flex template image (launcher and SDK container) for ${local.name}"
  format        = "DOCKER"
  kms_key_name  = google_kms_crypto_key.this.id
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents, terraform_data.sovereignty]
}

resource "google_service_account" "dataflow" {
  project      = var.project_id
  account_id   = substr(replace("${var.name_prefix}-df-${var.region}", "_", "-"), 0, 30)
  display_name = "Dataflow workers of ${local.name}"
}

locals {
  worker = "serviceAccount:${google_service_account.dataflow.email}"
}

# roles/dataflow.worker is the only project-level grant; everything else is scoped to
# this region's subscription, bucket and repository.
resource "google_project_iam_member" "dataflow_worker" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = local.worker
}

resource "google_pubsub_subscription_iam_member" "worker_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.pipeline.name
  role         = "roles/pubsub.subscriber"
  member       = local.worker
}

resource "google_pubsub_subscription_iam_member" "worker_viewer" {
  project      = var.project_id
  subscription = google_pubsub_subscription.pipeline.name
  role         = "roles/pubsub.viewer"
  member       = local.worker
}

resource "google_storage_bucket_iam_member" "worker_objects" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = local.worker
}

resource "google_storage_bucket_iam_member" "worker_bucket_reader" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.legacyBucketReader"
  member = local.worker
}

resource "google_artifact_registry_repository_iam_member" "worker_pull" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = local.worker
}

resource "google_compute_firewall" "dataflow_shuffle" {
  project     = var.project_id
  name        = "${local.name}-dataflow-workers"
  network     = var.network_id
  description = "Dataflow worker to worker traffic inside ${local.name}"
  direction   = "INGRESS"
  priority    = 1000

  source_tags = ["dataflow-${local.name}"]
  target_tags = ["dataflow-${local.name}"]

  allow {
    protocol = "tcp"
    ports    = ["12345-12346"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# autoscaling_algorithm takes the Dataflow API's enum (AUTOSCALING_ALGORITHM_NONE or _BASIC),
# not Beam's --autoscaling_algorithm value THROUGHPUT_BASED; BASIC is throughput-based scaling.
resource "google_dataflow_flex_template_job" "analytics" {
  provider = google-beta
  count    = var.dataflow.deploy_job ? 1 : 0

  project                      = var.project_id
  region                       = var.region
  name                         = local.job_name
  container_spec_gcs_path      = "gs://${google_storage_bucket.data.name}/${google_storage_bucket_object.template_spec.name}"
  parameters                   = local.job_parameters
  on_delete                    = "drain"
  enable_streaming_engine      = true
  autoscaling_algorithm        = "AUTOSCALING_ALGORITHM_BASIC"
  max_workers                  = var.dataflow.max_workers
  machine_type                 = var.dataflow.machine_type
  launcher_machine_type        = var.dataflow.launcher_type
  service_account_email        = google_service_account.dataflow.email
  temp_location                = "gs://${google_storage_bucket.data.name}/dataflow/temp"
  staging_location             = "gs://${google_storage_bucket.data.name}/dataflow/staging"
  sdk_container_image          = local.image
  subnetwork                   = google_compute_subnetwork.dataflow.self_link
  ip_configuration             = "WORKER_IP_PRIVATE"
  kms_key_name                 = google_kms_crypto_key.this.id
  additional_experiments       = ["use_network_tags=dataflow-${local.name}", "use_network_tags_for_flex_templates=dataflow-${local.name}"]
  skip_wait_on_job_termination = false
  labels                       = local.labels

  depends_on = [
    google_project_iam_member.dataflow_worker,
    google_pubsub_subscription_iam_member.worker_subscriber,
    google_storage_bucket_iam_member.worker_objects,
    google_artifact_registry_repository_iam_member.worker_pull,
  ]
}
