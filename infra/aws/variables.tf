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
  description = "Jurisdictions of ../regions.json to deploy (in practice one: state_region must lie inside each); every AWS region they list gets a stream, a bucket and an EMR cluster."

  validation {
    condition     = length(var.jurisdictions) > 0 && alltrue([for j in var.jurisdictions : contains(["us", "eu", "uk", "sg", "jp", "au"], j)])
    error_message = "jurisdictions must be a non-empty subset of us, eu, uk, sg, jp, au (the keys of regions.json)."
  }
}

variable "state_region" {
  type        = string
  description = "Region of the S3 bucket and DynamoDB table that hold this root's state (the region in backend.hcl); it must lie inside the deployed jurisdiction, which the plan checks."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.state_region))
    error_message = "state_region must be an AWS region name such as eu-west-1."
  }
}

variable "capacity" {
  type = object({
    peak_events_per_second = optional(number, 100000)
    event_bytes            = optional(number, 1024)
    headroom               = optional(number, 1.2)
    events_per_unit        = optional(number, 10000)
  })
  description = "Declared peak: events per second over all deployed AWS regions (spread evenly), bytes per event, headroom factor; events_per_unit is what one EMR fleet unit (m7g.xlarge) processes per second. Kinesis shards and the EMR scaling cap are derived from it."
  default     = {}

  validation {
    condition     = var.capacity.peak_events_per_second >= 1 && var.capacity.peak_events_per_second <= 10000000 && var.capacity.event_bytes >= 1 && var.capacity.event_bytes <= 1048576
    error_message = "capacity.peak_events_per_second must be 1-10000000 and capacity.event_bytes 1-1048576 (Kinesis' record limit)."
  }

  validation {
    condition     = var.capacity.headroom >= 1 && var.capacity.headroom <= 4 && var.capacity.events_per_unit >= 100
    error_message = "capacity.headroom must be between 1 and 4 and capacity.events_per_unit at least 100."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource. Must contain cost-center and data-classification (public, internal, confidential or restricted); jurisdiction and region are added per region and must not be set here."

  validation {
    condition     = alltrue([for k in ["cost-center", "data-classification"] : contains(keys(var.tags), k)])
    error_message = "tags must contain cost-center and data-classification."
  }

  validation {
    condition     = contains(["public", "internal", "confidential", "restricted"], lookup(var.tags, "data-classification", ""))
    error_message = "tags[\"data-classification\"] must be public, internal, confidential or restricted."
  }

  validation {
    condition     = !contains(keys(var.tags), "jurisdiction") && !contains(keys(var.tags), "region")
    error_message = "tags must not set jurisdiction or region: they are derived from regions.json per region."
  }

  validation {
    condition     = alltrue([for k, v in var.tags : can(regex("^[A-Za-z0-9 _.:/=+@-]{1,128}$", k)) && can(regex("^[A-Za-z0-9 _.:/=+@-]{0,256}$", v))])
    error_message = "tag keys (1-128) and values (0-256) may only use letters, digits, spaces and _.:/=+@-."
  }
}

variable "kinesis" {
  type = object({
    mode            = optional(string, "PROVISIONED")
    shard_count     = optional(number)
    retention_hours = optional(number, 24)
  })
  description = "Kinesis stream per region: mode PROVISIONED (default; shard_count derived from capacity unless set) or ON_DEMAND (a new on-demand stream starts at 4 MiB/s of writes and only doubles its 30-day peak), retention_hours 24-8760."
  default     = {}

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.kinesis.mode)
    error_message = "kinesis.mode must be ON_DEMAND or PROVISIONED."
  }

  validation {
    condition     = var.kinesis.retention_hours >= 24 && var.kinesis.retention_hours <= 8760
    error_message = "kinesis.retention_hours must be between 24 and 8760."
  }

  validation {
    condition     = var.kinesis.shard_count == null || (coalesce(var.kinesis.shard_count, 1) >= 1 && coalesce(var.kinesis.shard_count, 1) <= 500)
    error_message = "kinesis.shard_count must be between 1 and 500."
  }
}

variable "bucket" {
  type = object({
    expiration_days            = optional(number, 400)
    noncurrent_expiration_days = optional(number, 30)
    abort_incomplete_days      = optional(number, 7)
  })
  description = "Aggregates bucket lifecycle: Standard-IA after 30 days and Glacier Instant Retrieval after 90 are fixed; expiry (> 90 days), old-version expiry and abort of incomplete uploads are set here."
  default     = {}

  validation {
    condition     = var.bucket.expiration_days > 90 && var.bucket.expiration_days <= 3650
    error_message = "bucket.expiration_days must be between 91 and 3650."
  }

  validation {
    condition     = var.bucket.noncurrent_expiration_days >= 1 && var.bucket.noncurrent_expiration_days <= 365
    error_message = "bucket.noncurrent_expiration_days must be between 1 and 365."
  }

  validation {
    condition     = var.bucket.abort_incomplete_days >= 1 && var.bucket.abort_incomplete_days <= 30
    error_message = "bucket.abort_incomplete_days must be between 1 and 30."
  }
}

variable "emr" {
  type = object({
    release_label         = optional(string, "emr-7.4.0")
    master_instance_type  = optional(string, "m7g.xlarge")
    core_instance_type    = optional(string, "m7g.xlarge")
    core_units            = optional(number, 2)
    task_instance_types   = optional(list(string), ["m7g.xlarge", "m6g.xlarge", "r7g.xlarge"])
    task_spot_units       = optional(number, 0)
    max_units             = optional(number, 10)
    max_on_demand_units   = optional(number, 3)
    task_slots            = optional(number, 4)
    checkpoint_interval_s = optional(number, 60)
  })
  description = "EMR Flink cluster per region: release (emr-7.4.0 ships Flink 1.19), instance types, on-demand core units, spot task units, managed-scaling caps, task slots per TaskManager and checkpoint interval in seconds."
  default     = {}

  validation {
    condition     = contains(["emr-7.4.0", "emr-7.5.0"], var.emr.release_label)
    error_message = "emr.release_label must be emr-7.4.0 (Flink 1.19) or emr-7.5.0 (Flink 1.20): releases whose Flink the Beam FlinkRunner supports."
  }

  validation {
    condition     = var.emr.core_units >= 1 && var.emr.max_units >= var.emr.core_units + var.emr.task_spot_units
    error_message = "emr.core_units must be >= 1 and emr.max_units >= core_units + task_spot_units."
  }
}

variable "emr_subnet_ids" {
  type        = map(string)
  description = "Private subnet for the EMR cluster, keyed by AWS region; one entry for every deployed region. Subnets need an S3 gateway endpoint and egress to PyPI for the bootstrap action, and the tag for-use-with-amazon-emr-managed-policies=true."

  validation {
    condition     = alltrue([for r, s in var.emr_subnet_ids : can(regex("^[a-z]{2}-[a-z]+-[0-9]$", r)) && can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "emr_subnet_ids must map region names (eu-west-1) to subnet ids (subnet-0123456789abcdef0)."
  }
}

variable "pipeline_wheel_path" {
  type        = string
  description = "Local path of the pipeline wheel built with `pip wheel --no-deps . -w dist`; uploaded per region and installed on every EMR node."
  default     = "../../dist/beam_regional_analytics-0.1.0-py3-none-any.whl"

  validation {
    condition     = can(regex("\\.whl$", var.pipeline_wheel_path))
    error_message = "pipeline_wheel_path must point to a .whl file."
  }
}

variable "beam_version" {
  type        = string
  description = "apache-beam version installed on the EMR nodes; must equal BEAM_VERSION in setup.py."
  default     = "2.77.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.beam_version))
    error_message = "beam_version must be a release number such as 2.77.0."
  }
}

variable "worker_pool_port" {
  type        = number
  description = "Port of the Beam Python worker pool on each EMR node."
  default     = 50000

  validation {
    condition     = var.worker_pool_port >= 1024 && var.worker_pool_port <= 65535
    error_message = "worker_pool_port must be between 1024 and 65535."
  }
}

variable "iterator_age_alarm_ms" {
  type        = number
  description = "Alarm threshold for the stream's maximum GetRecords.IteratorAgeMilliseconds (milliseconds, 5 minutes in a row)."
  default     = 120000

  validation {
    condition     = var.iterator_age_alarm_ms >= 1000 && var.iterator_age_alarm_ms <= 86400000
    error_message = "iterator_age_alarm_ms must be between 1000 and 86400000."
  }
}

variable "alarm_emails" {
  type        = list(string)
  description = "E-mail addresses subscribed to every region's alarm topic."
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", e))])
    error_message = "alarm_emails must be e-mail addresses."
  }
}
