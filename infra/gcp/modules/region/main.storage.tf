# Aggregates (aggregates/), dead letters (dead-letters/), Dataflow temp/staging and the
# flex template spec live in one bucket in var.region; access logs go to a second one.

locals {
  # Only the pipeline's output ages and expires; the template spec, Dataflow staging and
  # anything else in the bucket are never tiered or deleted by age.
  expiring_prefixes = ["${local.aggregates_prefix}/", "${local.dead_letter_prefix}/"]
}

resource "google_storage_bucket" "data" {
  project                     = var.project_id
  name                        = "${local.name}-data-${local.project_number}"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.this.id
  }

  logging {
    log_bucket        = google_storage_bucket.logs.name
    log_object_prefix = "gcs-access/"
  }

  soft_delete_policy {
    retention_duration_seconds = var.bucket.soft_delete_retention_days * 86400
  }

  lifecycle_rule {
    condition {
      age                   = 30
      matches_storage_class = ["STANDARD"]
      matches_prefix        = local.expiring_prefixes
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = 90
      matches_storage_class = ["NEARLINE"]
      matches_prefix        = local.expiring_prefixes
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.bucket.delete_after_days
      matches_prefix = local.expiring_prefixes
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.bucket.noncurrent_delete_days
      with_state                 = "ARCHIVED"
      matches_prefix             = local.expiring_prefixes
    }
    action {
      type = "Delete"
    }
  }

  # Dataflow's temp files go after a week; staging keeps what running jobs still load.
  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["dataflow/temp/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents, terraform_data.sovereignty]
}

resource "google_storage_bucket" "logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log bucket; logging it to itself would loop.
  project                     = var.project_id
  name                        = "${local.name}-logs-${local.project_number}"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.this.id
  }

  lifecycle_rule {
    condition {
      age                   = 30
      matches_storage_class = ["STANDARD"]
      matches_prefix        = ["gcs-access/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age            = 90
      matches_prefix = ["gcs-access/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents, terraform_data.sovereignty]
}

# Cloud Storage writes usage and storage logs as this group; without the grant no access log
# is ever delivered.
resource "google_storage_bucket_iam_member" "access_log_writer" {
  bucket = google_storage_bucket.logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

# The flex template spec points at the image and carries runners/dataflow/metadata.json,
# so the template's parameters are exactly the pipeline's CLI options.
resource "google_storage_bucket_object" "template_spec" {
  bucket       = google_storage_bucket.data.name
  name         = "templates/analytics-${var.dataflow.image_tag}.json"
  content_type = "application/json"
  kms_key_name = google_kms_crypto_key.this.id
  content = jsonencode({
    image    = local.image
    sdkInfo  = { language = "PYTHON" }
    metadata = jsondecode(file(var.dataflow.metadata_path))
    defaultEnvironment = {
      sdkContainerImage = local.image
    }
  })
}
