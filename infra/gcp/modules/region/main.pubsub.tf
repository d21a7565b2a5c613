# Messages are stored only in var.region (message_storage_policy) and encrypted with
# the region's key. Dataflow acknowledges messages itself once they are durably in the
# pipeline, so Pub/Sub's dead-letter and retry policies do not apply to its subscription:
# records the pipeline cannot decode go to its dead-letter sink (gs://.../dead-letters/),
# and the dead-letter topic below serves --pubsub_dead_letter_topic.

resource "google_pubsub_topic" "events" {
  project                    = var.project_id
  name                       = "${local.name}-events"
  kms_key_name               = google_kms_crypto_key.this.id
  message_retention_duration = "${var.pubsub.message_retention_seconds}s"
  labels                     = local.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
    enforce_in_transit          = true
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents]
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${local.name}-events-dead-letter"
  kms_key_name               = google_kms_crypto_key.this.id
  message_retention_duration = "${var.pubsub.message_retention_seconds}s"
  labels                     = local.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
    enforce_in_transit          = true
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents]
}

resource "google_pubsub_subscription" "pipeline" {
  project                    = var.project_id
  name                       = "${local.name}-pipeline"
  topic                      = google_pubsub_topic.events.id
  ack_deadline_seconds       = var.pubsub.ack_deadline_seconds
  message_retention_duration = "${var.pubsub.message_retention_seconds}s"
  retain_acked_messages      = false
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }

}

# Keeps dead-lettered messages readable until someone replays or inspects them.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${local.name}-events-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "${var.pubsub.message_retention_seconds}s"
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}
