# Logs stay in the region: the Dataflow job's logs and the subnet's flow and firewall logs
# go to a log bucket in var.region instead of the project's _Default bucket (global unless
# the organisation's default storage location says otherwise), and _Default drops them.

locals {
  job_name = "${local.name}-analytics"
  regional_log_filter = join(" OR ", [
    "(resource.type=\"dataflow_step\" AND resource.labels.job_name=\"${local.job_name}\")",
    "(resource.type=\"gce_subnetwork\" AND resource.labels.subnetwork_name=\"${google_compute_subnetwork.dataflow.name}\")",
  ])
}

resource "google_logging_project_bucket_config" "regional" {
  project        = var.project_id
  location       = var.region
  bucket_id      = "${local.name}-logs"
  retention_days = 30
  description    = "Dataflow, flow and firewall logs of ${local.name}, kept in ${var.region}"

  depends_on = [terraform_data.sovereignty]
}

resource "google_logging_project_sink" "regional" {
  project                = var.project_id
  name                   = "${local.name}-regional-logs"
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.regional.id}"
  filter                 = local.regional_log_filter
  unique_writer_identity = true
}

# A project-level exclusion applies to the _Default sink: these entries are not also
# stored in the _Default bucket.
resource "google_logging_project_exclusion" "regional" {
  project     = var.project_id
  name        = "${local.name}-kept-in-region"
  description = "Stored in ${google_logging_project_bucket_config.regional.id} instead"
  filter      = local.regional_log_filter
}
