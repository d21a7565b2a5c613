variable "name_prefix" {
  type        = string
  description = "Short lowercase prefix for every resource name (3-10 letters or digits; starts with a letter; storage account names are at most 24 characters)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,9}$", var.name_prefix))
    error_message = "name_prefix must match ^[a-z][a-z0-9]{2,9}$."
  }
}

variable "region" {
  type        = string
  description = "Azure region (location name, e.g. westeurope) this module deploys into."

  validation {
    condition     = can(regex("^[a-z]+[0-9]?$", var.region))
    error_message = "region must be an Azure location name such as westeurope."
  }
}

variable "pair_region" {
  type        = string
  description = "Azure region of the Event Hubs geo-DR secondary namespace (regions.json azure_geo_dr_pair); must be inside the same jurisdiction. Empty: the jurisdiction has no second Azure region, so no geo-DR."

  validation {
    condition     = can(regex("^([a-z]+[0-9]?)?$", var.pair_region))
    error_message = "pair_region must be an Azure location name such as northeurope, or empty."
  }
}

variable "grs_secondary" {
  type        = string
  description = "Azure's fixed paired region of var.region (regions.json azure_paired_regions), where GRS would copy the storage account; GRS is used only when it lies inside the jurisdiction, else ZRS. Empty: no pair."

  validation {
    condition     = can(regex("^([a-z]+[0-9]?)?$", var.grs_secondary))
    error_message = "grs_secondary must be an Azure location name such as northeurope, or empty."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "E-mail addresses of the region's action group (may be empty)."

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "source_lag_alert_minutes" {
  type        = number
  description = "Source lag alarm: alert when events arrive in the event hub and the pipeline's consumer group reads none of them for this many minutes (5, 15, 30 or 60)."

  validation {
    condition     = contains([5, 15, 30, 60], var.source_lag_alert_minutes)
    error_message = "source_lag_alert_minutes must be 5, 15, 30 or 60 (the windows Azure Monitor metric alerts evaluate)."
  }
}

variable "jurisdiction" {
  type        = string
  description = "Jurisdiction (key of regions.json) that owns this region; added to every tag set."

  validation {
    condition     = contains(["us", "eu", "uk", "sg", "jp", "au"], var.jurisdiction)
    error_message = "jurisdiction must be one of us, eu, uk, sg, jp, au (the keys of regions.json)."
  }
}

variable "allowed_regions" {
  type        = list(string)
  description = "Every Azure region inside the jurisdiction (regions.json allowed_regions.<jurisdiction>.azure); region and pair_region must be in it."

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

variable "eventhubs" {
  type = object({
    sku                      = string
    capacity                 = number
    maximum_throughput_units = number
    partition_count          = number
    retention_days           = number
    consumer_group           = string
  })
  description = "Event Hubs: sku Standard (auto-inflate up to maximum_throughput_units) or Premium (capacity = processing units), partitions, retention in days, consumer group of the pipeline."

  validation {
    condition     = contains(["Standard", "Premium"], var.eventhubs.sku)
    error_message = "eventhubs.sku must be Standard or Premium (the Kafka endpoint needs Standard or higher)."
  }

  validation {
    condition     = var.eventhubs.sku == "Premium" ? contains([1, 2, 4, 8, 16], var.eventhubs.capacity) : (var.eventhubs.capacity >= 1 && var.eventhubs.capacity <= 40 && var.eventhubs.maximum_throughput_units >= var.eventhubs.capacity && var.eventhubs.maximum_throughput_units <= 40)
    error_message = "eventhubs.capacity must be 1-40 with maximum_throughput_units between capacity and 40 (Standard), or 1, 2, 4, 8 or 16 processing units (Premium)."
  }

  validation {
    condition     = var.eventhubs.partition_count >= 1 && var.eventhubs.partition_count <= (var.eventhubs.sku == "Premium" ? 100 : 32)
    error_message = "eventhubs.partition_count must be between 1 and 32 (Standard) or 100 (Premium)."
  }

  validation {
    condition     = var.eventhubs.retention_days >= 1 && var.eventhubs.retention_days <= 7
    error_message = "eventhubs.retention_days must be between 1 and 7."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$", var.eventhubs.consumer_group))
    error_message = "eventhubs.consumer_group must be 1-50 characters: letters, digits, . _ -."
  }
}

variable "storage" {
  type = object({
    delete_after_days         = number
    soft_delete_days          = number
    allowed_ip_ranges         = list(string)
    deployer_ip_ranges        = list(string)
    infrastructure_encryption = bool
    query_horizon_days        = number
  })
  description = "ADLS Gen2 account: blobs go Cool after 30 days and stay queryable until query_horizon_days (Archive only after it, when that is before deletion), deleted after delete_after_days; soft delete days; public IP ranges allowed through the firewall (pipeline hosts and, in deployer_ip_ranges, where Terraform runs). Replication is GRS when grs_secondary lies inside the jurisdiction (checked at plan), else ZRS."

  validation {
    condition     = var.storage.delete_after_days > 90 && var.storage.delete_after_days <= 3650
    error_message = "storage.delete_after_days must be between 91 and 3650."
  }

  validation {
    condition     = var.storage.query_horizon_days >= 30 && var.storage.query_horizon_days <= 3650 && length(var.storage.deployer_ip_ranges) > 0
    error_message = "storage.query_horizon_days must be between 30 and 3650 and storage.deployer_ip_ranges must not be empty."
  }

  validation {
    condition     = var.storage.soft_delete_days >= 1 && var.storage.soft_delete_days <= 365
    error_message = "storage.soft_delete_days must be between 1 and 365."
  }

  validation {
    condition     = alltrue([for r in var.storage.allowed_ip_ranges : can(cidrhost(r, 0)) || can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}$", r))])
    error_message = "storage.allowed_ip_ranges must be IPv4 addresses or CIDR ranges."
  }

}

variable "network" {
  type = object({
    vnet_cidr   = string
    subnet_cidr = string
  })
  description = "Address space of the region's VNet and of the HDInsight subnet inside it."

  validation {
    condition     = can(cidrhost(var.network.vnet_cidr, 0)) && can(cidrhost(var.network.subnet_cidr, 0))
    error_message = "network.vnet_cidr and network.subnet_cidr must be IPv4 CIDR ranges."
  }
}

variable "hdinsight" {
  type = object({
    head_vm_size      = string
    worker_vm_size    = string
    worker_count      = number
    worker_max_count  = number
    zookeeper_vm_size = string
    ssh_public_key    = string
    flink_version     = string
    task_slots        = number
    checkpoint_ms     = number
  })
  description = "HDInsight 5.1 Spark 3.3 cluster: VM sizes, worker count and autoscale cap, SSH key of sshuser, Flink release installed by the script action (1.19.x), Flink task slots, checkpoint interval in ms."

  validation {
    condition     = var.hdinsight.worker_count >= 1 && var.hdinsight.worker_max_count >= var.hdinsight.worker_count && var.hdinsight.worker_max_count <= 100
    error_message = "hdinsight.worker_count must be >= 1 and worker_max_count between worker_count and 100."
  }

  validation {
    condition     = can(regex("^1\\.19\\.[0-9]+$", var.hdinsight.flink_version))
    error_message = "hdinsight.flink_version must be a Flink 1.19.x release, the version the runner profile submits for."
  }

  validation {
    condition     = can(regex("^ssh-(rsa|ed25519) [A-Za-z0-9+/=]+( .*)?$", var.hdinsight.ssh_public_key))
    error_message = "hdinsight.ssh_public_key must be an OpenSSH public key (ssh-rsa or ssh-ed25519)."
  }

  validation {
    condition     = alltrue([for s in [var.hdinsight.head_vm_size, var.hdinsight.worker_vm_size, var.hdinsight.zookeeper_vm_size] : can(regex("^[A-Z][A-Za-z0-9_]+$", s))])
    error_message = "HDInsight VM sizes must look like Standard_E8_V3."
  }

  validation {
    condition     = var.hdinsight.task_slots >= 1 && var.hdinsight.task_slots <= 64 && var.hdinsight.checkpoint_ms >= 1000 && var.hdinsight.checkpoint_ms <= 3600000
    error_message = "hdinsight.task_slots must be 1-64 and hdinsight.checkpoint_ms 1000-3600000."
  }
}

variable "pipeline_wheel_path" {
  type        = string
  description = "Local path of the pipeline wheel; uploaded to the scripts container and installed on every node by the script action."

  validation {
    condition     = can(regex("\\.whl$", var.pipeline_wheel_path))
    error_message = "pipeline_wheel_path must point to a .whl file."
  }
}

variable "beam_version" {
  type        = string
  description = "apache-beam version installed on the cluster nodes; must equal BEAM_VERSION in setup.py."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.beam_version))
    error_message = "beam_version must be a release number such as 2.77.0."
  }
}

variable "worker_pool_port" {
  type        = number
  description = "Port of the Beam Python worker pool on every node."

  validation {
    condition     = var.worker_pool_port >= 1024 && var.worker_pool_port <= 65535
    error_message = "worker_pool_port must be between 1024 and 65535."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the region's Log Analytics workspace (30-730 days)."

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "synapse" {
  type = object({
    entra_admin_login     = string
    entra_admin_object_id = string
    allowed_ip_ranges     = list(string)
  })
  description = "Synapse serverless SQL: the Entra ID admin (login name and object id; Entra-only authentication, no SQL password) and the client CIDR ranges the workspace firewall admits (empty: no public access)."

  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.synapse.entra_admin_object_id))
    error_message = "synapse.entra_admin_object_id must be the object id (a GUID) of an Entra ID user or group."
  }

  validation {
    condition     = alltrue([for r in var.synapse.allowed_ip_ranges : can(cidrhost(r, 0))])
    error_message = "synapse.allowed_ip_ranges must be IPv4 CIDR ranges (a single address as a.b.c.d/32)."
  }
}
