# Every GCP region deployed by a selected jurisdiction of ../regions.json gets one
# instance of ./modules/region (Pub/Sub, bucket, Artifact Registry, Dataflow job,
# BigQuery). The google provider is not bound to a region, so one module call with
# for_each over regions.json covers them all.

locals {
  regions_doc = jsondecode(file("${path.module}/../regions.json"))

  # region => jurisdiction, for the jurisdictions selected in var.jurisdictions.
  deployed = merge([
    for j, spec in local.regions_doc.jurisdictions : { for r in spec.gcp : r => j }
    if contains(var.jurisdictions, j)
  ]...)

  labels = merge(var.labels, { "managed-by" = "terraform" })

  # Capacity from the declared peak, spread evenly over every GCP region regions.json deploys
  # (tests/infra/test_capacity.py evaluates these: 100k events/s of 1 KB over three regions).
  # Pub/Sub needs no provisioning; the Dataflow autoscaling cap must carry the peak.
  all_regions                = flatten([for j, spec in local.regions_doc.jurisdictions : spec.gcp])
  regional_events_per_second = ceil(var.capacity.peak_events_per_second / max(length(local.all_regions), 1))
  derived_workers            = ceil(local.regional_events_per_second * var.capacity.headroom / var.capacity.events_per_worker)
  max_workers                = max(var.dataflow.max_workers, local.derived_workers)

  # A state bucket may sit in a region or in a multi-/dual-region of the jurisdiction.
  state_inside = alltrue([
    for j in var.jurisdictions :
    contains(local.regions_doc.allowed_regions[j].gcp, lower(var.state_region)) || contains(lookup(local.regions_doc.gcs_multi_regions, j, []), upper(var.state_region))
  ])
}

resource "terraform_data" "region_inputs" {
  input = keys(local.deployed)

  lifecycle {
    precondition {
      condition     = local.state_inside
      error_message = "The state bucket's location ${var.state_region} must lie inside every deployed jurisdiction (regions.json allowed_regions or gcs_multi_regions): keep one state per jurisdiction, in it."
    }

    precondition {
      condition     = length(setsubtract(keys(local.deployed), keys(var.subnet_cidrs))) == 0
      error_message = "subnet_cidrs has no range for: ${join(", ", setsubtract(keys(local.deployed), keys(var.subnet_cidrs)))}."
    }
  }
}

resource "google_compute_network" "pipeline" {
  project                 = var.project_id
  name                    = "${var.name_prefix}-pipeline"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

module "region" {
  source   = "./modules/region"
  for_each = local.deployed

  providers = {
    google      = google
    google-beta = google-beta
  }

  project_id      = var.project_id
  name_prefix     = var.name_prefix
  region          = each.key
  jurisdiction    = each.value
  allowed_regions = local.regions_doc.allowed_regions[each.value].gcp
  labels          = local.labels
  network_id      = google_compute_network.pipeline.id
  subnet_cidr     = lookup(var.subnet_cidrs, each.key, "10.255.0.0/24")
  pubsub          = var.pubsub
  bucket          = var.bucket
  dataflow = {
    deploy_job     = var.dataflow.deploy_job
    image_tag      = var.dataflow.image_tag
    max_workers    = local.max_workers
    machine_type   = var.dataflow.machine_type
    launcher_type  = var.dataflow.launcher_type
    template_image = var.dataflow.template_image
    metadata_path  = "${path.module}/../../runners/dataflow/metadata.json"
  }
  pipeline_options = var.pipeline_options
  alert_emails     = var.alert_emails
  alert_thresholds = var.alert_thresholds

}
