# Messages are stored only in var.region (message_storage_policy) and encrypted with
# the region's key. Undeliverable messages go to a dead-letter topic in the same region.

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

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pubsub.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
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

# The Pub/Sub service agent moves messages to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.kms_users.pubsub
}

resource "google_pubsub_subscription_iam_member" "dead_letter_forwarder" {
  project      = var.project_id
  subscription = google_pubsub_subscription.pipeline.name
  role         = "roles/pubsub.subscriber"
  member       = local.kms_users.pubsub
}
