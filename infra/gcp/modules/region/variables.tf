variable "project_id" {
  type        = string
  description = "GCP project that holds every resource."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id (6-30 characters: lowercase letters, digits, hyphens)."
  }
}

variable "name_prefix" {
  type        = string
  description = "Short lowercase prefix for every resource name (3-20 characters: letters, digits, hyphens; starts with a letter)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,19}$", var.name_prefix))
    error_message = "name_prefix must match ^[a-z][a-z0-9-]{2,19}$."
  }
}

variable "region" {
  type        = string
  description = "GCP region this module deploys into (for example europe-west1)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a GCP region name such as europe-west1."
  }
}

variable "jurisdiction" {
  type        = string
  description = "Jurisdiction (key of regions.json) that owns this region; added to every label set."

  validation {
    condition     = contains(["us", "eu", "uk", "sg", "jp", "au"], var.jurisdiction)
    error_message = "jurisdiction must be one of us, eu, uk, sg, jp, au (the keys of regions.json)."
  }
}

variable "allowed_regions" {
  type        = list(string)
  description = "Every GCP region inside the jurisdiction (regions.json allowed_regions.<jurisdiction>.gcp); the module refuses to deploy outside it."

  validation {
    condition     = length(var.allowed_regions) > 0
    error_message = "allowed_regions must list at least one region."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels from the root (cost-center, data-classification, ...); the module adds jurisdiction and region."

  validation {
    condition     = alltrue([for k in ["cost-center", "data-classification"] : contains(keys(var.labels), k)])
    error_message = "labels must contain cost-center and data-classification."
  }
}

variable "network_id" {
  type        = string
  description = "Id of the VPC network (projects/P/global/networks/N) in which the module creates the region's Dataflow subnet."

  validation {
    condition     = can(regex("^projects/[a-z][a-z0-9-]+/global/networks/[a-z][a-z0-9-]*$", var.network_id))
    error_message = "network_id must look like projects/PROJECT/global/networks/NAME."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "IPv4 range of the region's Dataflow subnet."

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) && tonumber(split("/", var.subnet_cidr)[1]) <= 24
    error_message = "subnet_cidr must be an IPv4 CIDR of /24 or larger."
  }
}

variable "pubsub" {
  type = object({
    message_retention_seconds = number
    ack_deadline_seconds      = number
  })
  description = "Pub/Sub: retention of the topics and subscriptions (600-604800 s) and the ack deadline (10-600 s)."

  validation {
    condition     = var.pubsub.message_retention_seconds >= 600 && var.pubsub.message_retention_seconds <= 604800
    error_message = "pubsub.message_retention_seconds must be between 600 and 604800."
  }

  validation {
    condition     = var.pubsub.ack_deadline_seconds >= 10 && var.pubsub.ack_deadline_seconds <= 600
    error_message = "pubsub.ack_deadline_seconds must be between 10 and 600."
  }

}

variable "bucket" {
  type = object({
    delete_after_days          = number
    noncurrent_delete_days     = number
    soft_delete_retention_days = number
  })
  description = "Bucket lifecycle: Nearline after 30 days and Coldline after 90 are fixed; objects are deleted after delete_after_days (> 90), old versions after noncurrent_delete_days; soft delete keeps removed objects soft_delete_retention_days (0 or 7-90)."

  validation {
    condition     = var.bucket.delete_after_days > 90 && var.bucket.delete_after_days <= 3650
    error_message = "bucket.delete_after_days must be between 91 and 3650."
  }

  validation {
    condition     = var.bucket.noncurrent_delete_days >= 1 && var.bucket.noncurrent_delete_days <= 365
    error_message = "bucket.noncurrent_delete_days must be between 1 and 365."
  }

  validation {
    condition     = var.bucket.soft_delete_retention_days == 0 || (var.bucket.soft_delete_retention_days >= 7 && var.bucket.soft_delete_retention_days <= 90)
    error_message = "bucket.soft_delete_retention_days must be 0 or between 7 and 90."
  }
}

variable "dataflow" {
  type = object({
    deploy_job     = bool
    image_tag      = string
    max_workers    = number
    machine_type   = string
    launcher_type  = string
    metadata_path  = string
    template_image = string
  })
  description = "Dataflow flex template job: deploy_job (false until the image is pushed), image tag, autoscaling cap, worker and launcher machine types, path of runners/dataflow/metadata.json, image name inside the Artifact Registry repository."

  validation {
    condition     = var.dataflow.max_workers >= 1 && var.dataflow.max_workers <= 1000
    error_message = "dataflow.max_workers must be between 1 and 1000."
  }

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9]+(-[0-9]+)?$", var.dataflow.machine_type)) && can(regex("^[a-z][a-z0-9]*-[a-z0-9]+(-[0-9]+)?$", var.dataflow.launcher_type))
    error_message = "dataflow machine types must look like n2-standard-2."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.dataflow.image_tag))
    error_message = "dataflow.image_tag must be a valid container image tag."
  }

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/-]*$", var.dataflow.template_image))
    error_message = "dataflow.template_image must be a lowercase image name."
  }
}

variable "pipeline_options" {
  type = object({
    input_format     = optional(string)
    avro_schema      = optional(string)
    event_time_field = optional(string)
    event_time_unit  = optional(string)
    id_field         = optional(string)
    value_field      = optional(string)
    dimensions       = optional(string)
    window           = optional(string)
    allowed_lateness = optional(number)
    early_firing     = optional(number)
    window_shards    = optional(number)
    file_roll        = optional(number)
    dedupe_by        = optional(string)
    dedupe_max_ids   = optional(number)
    output_format    = optional(string)
    max_records      = optional(number)
    max_read_time    = optional(number)
  })
  description = "Pipeline CLI options (pipelines/options.py) passed one to one as flex template parameters; null leaves the pipeline's default. source, output, dead_letter, jurisdiction and sink_region are set per region by the module."
}

variable "alert_emails" {
  type        = list(string)
  description = "E-mail addresses notified by the region's alert policies (may be empty)."

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "alert_thresholds" {
  type = object({
    oldest_unacked_seconds = number
    system_lag_seconds     = number
  })
  description = "Alert when the subscription's oldest unacknowledged message or the Dataflow job's system lag exceeds these many seconds for 5 minutes."

  validation {
    condition     = var.alert_thresholds.oldest_unacked_seconds >= 30 && var.alert_thresholds.system_lag_seconds >= 30
    error_message = "alert_thresholds must be at least 30 seconds."
  }
}
