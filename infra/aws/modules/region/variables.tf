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
  description = "AWS region this module deploys into; must equal the region of the provider passed in."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "jurisdiction" {
  type        = string
  description = "Jurisdiction (key of ../../../regions.json) that owns this region; written to every tag set."

  validation {
    condition     = contains(["us", "eu", "uk", "sg", "jp", "au"], var.jurisdiction)
    error_message = "jurisdiction must be one of us, eu, uk, sg, jp, au (the keys of regions.json)."
  }
}

variable "allowed_regions" {
  type        = list(string)
  description = "Every AWS region inside the jurisdiction (regions.json allowed_regions.<jurisdiction>.aws); the module refuses to deploy outside it."

  validation {
    condition     = length(var.allowed_regions) > 0
    error_message = "allowed_regions must list at least one region."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags from the root (cost-center, data-classification, ...); the module adds jurisdiction and region."

  validation {
    condition     = alltrue([for k in ["cost-center", "data-classification"] : contains(keys(var.tags), k)])
    error_message = "tags must contain cost-center and data-classification."
  }
}

variable "kinesis" {
  type = object({
    mode            = string
    shard_count     = number
    retention_hours = number
  })
  description = "Kinesis stream settings: mode ON_DEMAND or PROVISIONED, shard_count (PROVISIONED only), retention_hours (24-8760)."

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.kinesis.mode)
    error_message = "kinesis.mode must be ON_DEMAND or PROVISIONED."
  }

  validation {
    condition     = var.kinesis.retention_hours >= 24 && var.kinesis.retention_hours <= 8760 && floor(var.kinesis.retention_hours) == var.kinesis.retention_hours
    error_message = "kinesis.retention_hours must be a whole number between 24 and 8760."
  }

  validation {
    condition     = var.kinesis.shard_count >= 1 && var.kinesis.shard_count <= 500 && floor(var.kinesis.shard_count) == var.kinesis.shard_count
    error_message = "kinesis.shard_count must be a whole number between 1 and 500."
  }
}

variable "bucket" {
  type = object({
    expiration_days            = number
    noncurrent_expiration_days = number
    abort_incomplete_days      = number
  })
  description = "Lifecycle of the aggregates bucket: objects expire after expiration_days (> 90, after Standard-IA at 30 and Glacier IR at 90), old versions after noncurrent_expiration_days, incomplete uploads are aborted after abort_incomplete_days."

  validation {
    condition     = var.bucket.expiration_days > 90 && var.bucket.expiration_days <= 3650
    error_message = "bucket.expiration_days must be between 91 and 3650 (objects move to Glacier IR at 90 days)."
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
    release_label         = string
    subnet_id             = string
    master_instance_type  = string
    core_instance_type    = string
    core_units            = number
    task_instance_types   = list(string)
    task_spot_units       = number
    max_units             = number
    max_on_demand_units   = number
    task_slots            = number
    checkpoint_interval_s = number
  })
  description = "EMR cluster that runs Flink for Beam's FlinkRunner: release (must ship a Flink version Beam supports), subnet, instance types, fleet units and managed-scaling limits, Flink task slots and checkpoint interval."

  validation {
    condition     = contains(["emr-7.4.0", "emr-7.5.0"], var.emr.release_label)
    error_message = "emr.release_label must be emr-7.4.0 or emr-7.5.0 (Flink 1.19/1.20, both supported by the Beam FlinkRunner)."
  }

  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8,17}$", var.emr.subnet_id))
    error_message = "emr.subnet_id must be a subnet id such as subnet-0123456789abcdef0."
  }

  validation {
    condition     = alltrue([for t in concat([var.emr.master_instance_type, var.emr.core_instance_type], var.emr.task_instance_types) : can(regex("^[a-z][a-z0-9-]*\\.[0-9a-z]+$", t))])
    error_message = "EMR instance types must look like m7g.xlarge."
  }

  validation {
    condition     = var.emr.core_units >= 1 && var.emr.task_spot_units >= 0 && var.emr.max_units >= var.emr.core_units + var.emr.task_spot_units && var.emr.max_on_demand_units >= var.emr.core_units
    error_message = "EMR units need core_units >= 1, task_spot_units >= 0, max_units >= core_units + task_spot_units and max_on_demand_units >= core_units."
  }

  validation {
    condition     = var.emr.task_slots >= 1 && var.emr.task_slots <= 64 && var.emr.checkpoint_interval_s >= 10 && var.emr.checkpoint_interval_s <= 3600
    error_message = "emr.task_slots must be 1-64 and emr.checkpoint_interval_s 10-3600."
  }
}

variable "pipeline_wheel_path" {
  type        = string
  description = "Local path of the pipeline package wheel (pip wheel --no-deps . -w dist); uploaded to the bucket and installed on every EMR node by the bootstrap action."

  validation {
    condition     = can(regex("\\.whl$", var.pipeline_wheel_path))
    error_message = "pipeline_wheel_path must point to a .whl file."
  }
}

variable "beam_version" {
  type        = string
  description = "apache-beam version installed on the EMR nodes; must equal BEAM_VERSION in setup.py."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.beam_version))
    error_message = "beam_version must be a release number such as 2.77.0."
  }
}

variable "worker_pool_port" {
  type        = number
  description = "Port of the Beam Python worker pool each EMR node runs (environment_type EXTERNAL, localhost:PORT)."

  validation {
    condition     = var.worker_pool_port >= 1024 && var.worker_pool_port <= 65535
    error_message = "worker_pool_port must be between 1024 and 65535."
  }
}

variable "iterator_age_alarm_ms" {
  type        = number
  description = "Alarm when the stream's GetRecords.IteratorAgeMilliseconds maximum stays above this many milliseconds for 5 minutes."

  validation {
    condition     = var.iterator_age_alarm_ms >= 1000 && var.iterator_age_alarm_ms <= 86400000
    error_message = "iterator_age_alarm_ms must be between 1000 and 86400000."
  }
}

variable "alarm_emails" {
  type        = list(string)
  description = "E-mail addresses subscribed to the region's alarm topic (may be empty)."

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", e))])
    error_message = "alarm_emails must be e-mail addresses."
  }
}
