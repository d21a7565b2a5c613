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
  default     = "bra"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,19}$", var.name_prefix))
    error_message = "name_prefix must match ^[a-z][a-z0-9-]{2,19}$."
  }
}

variable "jurisdictions" {
  type        = set(string)
  description = "Jurisdictions of ../regions.json to deploy (in practice one: state_region must lie inside each); every GCP region they list gets a topic, a bucket and a Dataflow job."

  validation {
    condition     = length(var.jurisdictions) > 0 && alltrue([for j in var.jurisdictions : contains(["us", "eu", "uk", "sg", "jp", "au"], j)])
    error_message = "jurisdictions must be a non-empty subset of us, eu, uk, sg, jp, au (the keys of regions.json)."
  }
}

variable "state_region" {
  type        = string
  description = "Location of the GCS bucket that holds this root's state (backend.hcl): a region, or a multi-/dual-region of regions.json gcs_multi_regions; it must lie inside the deployed jurisdiction, which the plan checks."

  validation {
    condition     = can(regex("^([a-z]+-[a-z]+[0-9]+|[A-Z]+[0-9]*)$", var.state_region))
    error_message = "state_region must be a GCP region such as europe-west1 or a GCS multi-/dual-region such as EU."
  }
}

variable "capacity" {
  type = object({
    peak_events_per_second = optional(number, 100000)
    event_bytes            = optional(number, 1024)
    headroom               = optional(number, 1.2)
    events_per_worker      = optional(number, 10000)
  })
  description = "Declared peak: events per second over all deployed GCP regions (spread evenly), bytes per event, headroom factor, and what one Dataflow worker processes per second; the Dataflow autoscaling cap is derived from it (never below dataflow.max_workers)."
  default     = {}

  validation {
    condition     = var.capacity.peak_events_per_second >= 1 && var.capacity.peak_events_per_second <= 10000000 && var.capacity.event_bytes >= 1 && var.capacity.event_bytes <= 10485760
    error_message = "capacity.peak_events_per_second must be 1-10000000 and capacity.event_bytes 1-10485760 (Pub/Sub's message limit)."
  }

  validation {
    condition     = var.capacity.headroom >= 1 && var.capacity.headroom <= 4 && var.capacity.events_per_worker >= 100
    error_message = "capacity.headroom must be between 1 and 4 and capacity.events_per_worker at least 100."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "E-mail addresses notified by every region's alert policies (source lag, Dataflow system lag, dead letters)."
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "alert_thresholds" {
  type = object({
    oldest_unacked_seconds = optional(number, 300)
    system_lag_seconds     = optional(number, 300)
  })
  description = "Alert when a region's oldest unacknowledged Pub/Sub message or its Dataflow system lag exceeds these many seconds for 5 minutes."
  default     = {}

  validation {
    condition     = var.alert_thresholds.oldest_unacked_seconds >= 30 && var.alert_thresholds.system_lag_seconds >= 30
    error_message = "alert_thresholds must be at least 30 seconds."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels on every resource. Must contain cost-center and data-classification (public, internal, confidential or restricted); jurisdiction and region are added per region and must not be set here."

  validation {
    condition     = alltrue([for k in ["cost-center", "data-classification"] : contains(keys(var.labels), k)])
    error_message = "labels must contain cost-center and data-classification."
  }

  validation {
    condition     = contains(["public", "internal", "confidential", "restricted"], lookup(var.labels, "data-classification", ""))
    error_message = "labels[\"data-classification\"] must be public, internal, confidential or restricted."
  }

  validation {
    condition     = !contains(keys(var.labels), "jurisdiction") && !contains(keys(var.labels), "region")
    error_message = "labels must not set jurisdiction or region: they are derived from regions.json per region."
  }

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "GCP label keys must match ^[a-z][a-z0-9_-]{0,62}$ and values ^[a-z0-9_-]{0,63}$."
  }
}

variable "subnet_cidrs" {
  type        = map(string)
  description = "IPv4 range of the Dataflow subnet, keyed by GCP region; one entry for every deployed region."
  default = {
    "us-central1"     = "10.10.0.0/20"
    "europe-west1"    = "10.20.0.0/20"
    "asia-southeast1" = "10.30.0.0/20"
  }

  validation {
    condition     = alltrue([for r, c in var.subnet_cidrs : can(regex("^[a-z]+-[a-z]+[0-9]$", r)) && can(cidrhost(c, 0))])
    error_message = "subnet_cidrs must map GCP region names to IPv4 CIDR ranges."
  }
}

variable "pubsub" {
  type = object({
    message_retention_seconds = optional(number, 604800)
    ack_deadline_seconds      = optional(number, 60)
  })
  description = "Pub/Sub per region: retention (600-604800 s, default 7 days) and ack deadline (10-600 s)."
  default     = {}

  validation {
    condition     = var.pubsub.message_retention_seconds >= 600 && var.pubsub.message_retention_seconds <= 604800
    error_message = "pubsub.message_retention_seconds must be between 600 and 604800."
  }

}

variable "bucket" {
  type = object({
    delete_after_days          = optional(number, 400)
    noncurrent_delete_days     = optional(number, 30)
    soft_delete_retention_days = optional(number, 7)
  })
  description = "Bucket lifecycle: Nearline after 30 days and Coldline after 90 are fixed; deletion age (> 90 days), old-version deletion and soft-delete retention are set here."
  default     = {}

  validation {
    condition     = var.bucket.delete_after_days > 90 && var.bucket.delete_after_days <= 3650
    error_message = "bucket.delete_after_days must be between 91 and 3650."
  }
}

variable "dataflow" {
  type = object({
    deploy_job     = optional(bool, false)
    image_tag      = optional(string, "2.77.0-0.1.0")
    max_workers    = optional(number, 10)
    machine_type   = optional(string, "n2-standard-2")
    launcher_type  = optional(string, "n2-standard-2")
    template_image = optional(string, "analytics")
  })
  description = "Dataflow per region: deploy_job starts the streaming job (leave false until `make flex-template` pushed the image), image tag, autoscaling cap, worker and launcher machine types, image name."
  default     = {}

  validation {
    condition     = var.dataflow.max_workers >= 1 && var.dataflow.max_workers <= 1000
    error_message = "dataflow.max_workers must be between 1 and 1000."
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
    output_format    = optional(string, "parquet")
    max_records      = optional(number)
    max_read_time    = optional(number)
  })
  description = "Pipeline CLI options passed one to one as flex template parameters (names as in `python -m pipelines.run --help`); null keeps the pipeline's default. output_format (parquet, the default, jsonl or avro) is also the format the BigQuery external table reads."
  default     = {}

  validation {
    condition     = var.pipeline_options.input_format == null || contains(["json", "avro"], coalesce(var.pipeline_options.input_format, "json"))
    error_message = "pipeline_options.input_format must be json or avro."
  }

  validation {
    condition     = contains(["ms", "s", "us", "ns"], coalesce(var.pipeline_options.event_time_unit, "ms"))
    error_message = "pipeline_options.event_time_unit must be ms, s, us or ns."
  }

  validation {
    condition     = contains(["parquet", "jsonl", "avro"], coalesce(var.pipeline_options.output_format, "parquet"))
    error_message = "pipeline_options.output_format must be parquet, jsonl or avro (the BigQuery external table reads the same format)."
  }

  validation {
    condition     = contains(["region,key"], coalesce(var.pipeline_options.dimensions, "region,key"))
    error_message = "pipeline_options.dimensions must be region,key (the default): the BigQuery table's schema is generated from transforms/schemas/aggregate.avsc, which has those dimensions."
  }

  validation {
    condition     = var.pipeline_options.window == null || can(regex("^(fixed:[0-9]+|sliding:[0-9]+,[0-9]+|session:[0-9]+)$", coalesce(var.pipeline_options.window, "fixed:60")))
    error_message = "pipeline_options.window must be fixed:SIZE, sliding:SIZE,PERIOD or session:GAP (seconds)."
  }

  validation {
    condition     = var.pipeline_options.max_records == null
    error_message = "pipeline_options.max_records bounds a read; the Dataflow job streams, so leave it unset."
  }
}
