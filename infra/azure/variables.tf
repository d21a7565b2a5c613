variable "subscription_id" {
  type        = string
  description = "Azure subscription that holds every resource."

  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id must be a GUID."
  }
}

variable "name_prefix" {
  type        = string
  description = "Short lowercase prefix for every resource name (3-10 letters or digits; starts with a letter)."
  default     = "bra"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,9}$", var.name_prefix))
    error_message = "name_prefix must match ^[a-z][a-z0-9]{2,9}$."
  }
}

variable "jurisdictions" {
  type        = set(string)
  description = "Jurisdictions of ../regions.json to deploy (in practice one: state_region must lie inside each); every Azure region they list gets a namespace (with geo-DR where the jurisdiction has a second region), a storage account and an HDInsight cluster."

  validation {
    condition     = length(var.jurisdictions) > 0 && alltrue([for j in var.jurisdictions : contains(["us", "eu", "uk", "sg", "jp", "au"], j)])
    error_message = "jurisdictions must be a non-empty subset of us, eu, uk, sg, jp, au (the keys of regions.json)."
  }
}

variable "state_region" {
  type        = string
  description = "Azure region of the storage account that holds this root's state (backend.hcl); it must lie inside the deployed jurisdiction, which the plan checks."

  validation {
    condition     = can(regex("^[a-z]+[0-9]?$", var.state_region))
    error_message = "state_region must be an Azure location name such as westeurope."
  }
}

variable "capacity" {
  type = object({
    peak_events_per_second = optional(number, 100000)
    event_bytes            = optional(number, 1024)
    headroom               = optional(number, 1.2)
    mb_per_processing_unit = optional(number, 5)
  })
  description = "Declared peak: events per second over all deployed Azure regions (spread evenly), bytes per event, headroom factor, and the ingress one Event Hubs Premium processing unit is planned for (Microsoft quotes 5-10 MB/s). The namespace tier, throughput or processing units and partitions are derived from it."
  default     = {}

  validation {
    condition     = var.capacity.peak_events_per_second >= 1 && var.capacity.peak_events_per_second <= 10000000 && var.capacity.event_bytes >= 1 && var.capacity.event_bytes <= 1048576
    error_message = "capacity.peak_events_per_second must be 1-10000000 and capacity.event_bytes 1-1048576."
  }

  validation {
    condition     = var.capacity.headroom >= 1 && var.capacity.headroom <= 4 && var.capacity.mb_per_processing_unit >= 1 && var.capacity.mb_per_processing_unit <= 10
    error_message = "capacity.headroom must be between 1 and 4 and capacity.mb_per_processing_unit between 1 and 10."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "E-mail addresses of each region's action group: source lag, throttling and dead-letter alerts."
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "source_lag_alert_minutes" {
  type        = number
  description = "Source lag alarm of every region: alert when events arrive in the event hub and the pipeline's consumer group reads none of them for this many minutes (5, 15, 30 or 60)."
  default     = 15

  validation {
    condition     = contains([5, 15, 30, 60], var.source_lag_alert_minutes)
    error_message = "source_lag_alert_minutes must be 5, 15, 30 or 60 (the windows Azure Monitor metric alerts evaluate)."
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
    condition     = alltrue([for k, v in var.tags : can(regex("^[^<>%&\\\\?/]{1,512}$", k)) && length(v) <= 256])
    error_message = "Azure tag names (1-512) cannot contain < > % & \\ ? / and values are at most 256 characters."
  }
}

variable "eventhubs" {
  type = object({
    sku                      = optional(string, "Standard")
    capacity                 = optional(number, 1)
    maximum_throughput_units = optional(number, 10)
    partition_count          = optional(number, 8)
    retention_days           = optional(number, 7)
    consumer_group           = optional(string, "beam-analytics")
  })
  description = "Event Hubs per region: sku Standard (auto-inflate to maximum_throughput_units) or Premium, capacity, partitions, retention days, the pipeline's consumer group."
  default     = {}

  validation {
    condition     = contains(["Standard", "Premium"], var.eventhubs.sku)
    error_message = "eventhubs.sku must be Standard or Premium (the Kafka endpoint needs Standard or higher)."
  }

  validation {
    condition     = var.eventhubs.partition_count >= 1 && var.eventhubs.partition_count <= 32
    error_message = "eventhubs.partition_count must be between 1 and 32."
  }
}

variable "storage" {
  type = object({
    delete_after_days         = optional(number, 400)
    soft_delete_days          = optional(number, 14)
    allowed_ip_ranges         = optional(list(string), [])
    deployer_ip_ranges        = list(string)
    infrastructure_encryption = optional(bool, true)
    query_horizon_days        = optional(number, 400)
  })
  description = "ADLS Gen2 per region: blobs go Cool after 30 days and stay queryable until query_horizon_days (Archive only after it, if it is before deletion); deletion age (> 90), soft-delete days, public IP ranges allowed through the storage and Event Hubs firewalls (where the pipeline runs from), and deployer_ip_ranges: where Terraform runs (it writes blobs and file systems through the data plane, which the firewall otherwise refuses). Replication is GRS where Azure's paired region is inside the jurisdiction, else ZRS."

  validation {
    condition     = var.storage.delete_after_days > 90 && var.storage.delete_after_days <= 3650
    error_message = "storage.delete_after_days must be between 91 and 3650."
  }

  validation {
    condition     = length(var.storage.deployer_ip_ranges) > 0 && alltrue([for r in var.storage.deployer_ip_ranges : can(cidrhost(r, 0)) || can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}$", r))])
    error_message = "storage.deployer_ip_ranges must list the public IPv4 address or range Terraform runs from."
  }

  validation {
    condition     = var.storage.query_horizon_days >= 30 && var.storage.query_horizon_days <= 3650
    error_message = "storage.query_horizon_days must be between 30 and 3650."
  }

}

variable "networks" {
  type = map(object({
    vnet_cidr   = string
    subnet_cidr = string
  }))
  description = "VNet and HDInsight subnet address spaces, keyed by Azure region; one entry for every deployed region."
  default = {
    eastus        = { vnet_cidr = "10.110.0.0/16", subnet_cidr = "10.110.0.0/22" }
    westeurope    = { vnet_cidr = "10.120.0.0/16", subnet_cidr = "10.120.0.0/22" }
    southeastasia = { vnet_cidr = "10.130.0.0/16", subnet_cidr = "10.130.0.0/22" }
  }

  validation {
    condition     = alltrue([for r, n in var.networks : can(cidrhost(n.vnet_cidr, 0)) && can(cidrhost(n.subnet_cidr, 0))])
    error_message = "networks values must hold IPv4 CIDR ranges."
  }
}

variable "hdinsight" {
  type = object({
    head_vm_size      = optional(string, "Standard_E4_V3")
    worker_vm_size    = optional(string, "Standard_E8_V3")
    worker_count      = optional(number, 2)
    worker_max_count  = optional(number, 8)
    zookeeper_vm_size = optional(string, "Standard_A2_V2")
    ssh_public_key    = string
    flink_version     = optional(string, "1.19.1")
    task_slots        = optional(number, 4)
    checkpoint_ms     = optional(number, 60000)
  })
  description = "HDInsight 5.1 per region: VM sizes, workers and autoscale cap, sshuser's public key (required), Flink release for the script action (1.19.x), task slots, checkpoint interval in ms."

  validation {
    condition     = can(regex("^1\\.19\\.[0-9]+$", var.hdinsight.flink_version))
    error_message = "hdinsight.flink_version must be a Flink 1.19.x release."
  }

  validation {
    condition     = var.hdinsight.worker_count >= 1 && var.hdinsight.worker_max_count >= var.hdinsight.worker_count
    error_message = "hdinsight.worker_count must be >= 1 and worker_max_count >= worker_count."
  }
}

variable "pipeline_wheel_path" {
  type        = string
  description = "Local path of the pipeline wheel built with `pip wheel --no-deps . -w dist`."
  default     = "../../dist/beam_regional_analytics-0.1.0-py3-none-any.whl"

  validation {
    condition     = can(regex("\\.whl$", var.pipeline_wheel_path))
    error_message = "pipeline_wheel_path must point to a .whl file."
  }
}

variable "beam_version" {
  type        = string
  description = "apache-beam version installed on the cluster nodes; must equal BEAM_VERSION in setup.py."
  default     = "2.77.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.beam_version))
    error_message = "beam_version must be a release number such as 2.77.0."
  }
}

variable "worker_pool_port" {
  type        = number
  description = "Port of the Beam Python worker pool on every node."
  default     = 50000

  validation {
    condition     = var.worker_pool_port >= 1024 && var.worker_pool_port <= 65535
    error_message = "worker_pool_port must be between 1024 and 65535."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of each region's Log Analytics workspace in days (30-730)."
  default     = 90

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "synapse" {
  type = object({
    entra_admin_login     = string
    entra_admin_object_id = string
    allowed_ip_ranges     = optional(list(string), [])
  })
  description = "Synapse serverless SQL per region: the Entra ID admin (login name and object id of a user or group; Entra-only authentication, so no SQL password exists) and client CIDR ranges the workspace firewall admits (default none: no public access)."

  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.synapse.entra_admin_object_id))
    error_message = "synapse.entra_admin_object_id must be the object id (a GUID) of an Entra ID user or group."
  }

  validation {
    condition     = alltrue([for r in var.synapse.allowed_ip_ranges : can(cidrhost(r, 0))])
    error_message = "synapse.allowed_ip_ranges must be IPv4 CIDR ranges (a single address as a.b.c.d/32)."
  }
}
