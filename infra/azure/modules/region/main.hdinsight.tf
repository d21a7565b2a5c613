# HDInsight 5.1 (Spark 3.3 on YARN). The script action in ../../scripts installs Flink
# 1.19 on the head nodes and starts a Flink session on YARN for streaming; Spark serves
# batch backfills. Every node runs a Beam Python worker pool on localhost:PORT.

resource "azurerm_user_assigned_identity" "hdinsight" {
  name                = "${local.name}-hdinsight"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_role_assignment" "hdinsight_storage" {
  scope                = azurerm_storage_account.this.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.hdinsight.principal_id
}

resource "random_password" "gateway" {
  length           = 24
  special          = true
  override_special = "!#%*-_"
  min_upper        = 2
  min_lower        = 2
  min_numeric      = 2
  min_special      = 2
}

locals {
  script_action = {
    name = "flink-on-yarn"
    uri  = "${azurerm_storage_blob.flink_script.url}${data.azurerm_storage_account_blob_container_sas.scripts.sas}"
    parameters = join(" ", [
      var.hdinsight.flink_version,
      var.beam_version,
      "'${azurerm_storage_blob.wheel.url}${data.azurerm_storage_account_blob_container_sas.scripts.sas}'",
      tostring(var.worker_pool_port),
      tostring(var.hdinsight.task_slots),
    ])
  }
}

resource "azurerm_hdinsight_spark_cluster" "this" {
  name                          = "${local.short}-hdi"
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  cluster_version               = "5.1"
  tier                          = "Standard"
  tls_min_version               = "1.2"
  encryption_in_transit_enabled = true
  tags                          = local.tags

  component_version {
    spark = "3.3"
  }

  gateway {
    username = "admin"
    password = random_password.gateway.result
  }

  storage_account_gen2 {
    is_default                   = true
    storage_resource_id          = azurerm_storage_account.this.id
    filesystem_id                = azurerm_storage_data_lake_gen2_filesystem.hdinsight.id
    managed_identity_resource_id = azurerm_user_assigned_identity.hdinsight.id
  }

  network {
    connection_direction = "Outbound"
    private_link_enabled = false
  }

  disk_encryption {
    encryption_at_host_enabled = true
  }

  roles {
    head_node {
      vm_size            = var.hdinsight.head_vm_size
      username           = "sshuser"
      ssh_keys           = [var.hdinsight.ssh_public_key]
      subnet_id          = azurerm_subnet.hdinsight.id
      virtual_network_id = azurerm_virtual_network.this.id

      script_actions {
        name       = local.script_action.name
        uri        = local.script_action.uri
        parameters = local.script_action.parameters
      }
    }

    worker_node {
      vm_size               = var.hdinsight.worker_vm_size
      username              = "sshuser"
      ssh_keys              = [var.hdinsight.ssh_public_key]
      subnet_id             = azurerm_subnet.hdinsight.id
      virtual_network_id    = azurerm_virtual_network.this.id
      target_instance_count = var.hdinsight.worker_count

      autoscale {
        capacity {
          min_instance_count = var.hdinsight.worker_count
          max_instance_count = var.hdinsight.worker_max_count
        }
      }

      script_actions {
        name       = local.script_action.name
        uri        = local.script_action.uri
        parameters = local.script_action.parameters
      }
    }

    zookeeper_node {
      vm_size            = var.hdinsight.zookeeper_vm_size
      username           = "sshuser"
      ssh_keys           = [var.hdinsight.ssh_public_key]
      subnet_id          = azurerm_subnet.hdinsight.id
      virtual_network_id = azurerm_virtual_network.this.id
    }
  }

  # Azure Monitor integration (the Azure Monitor Agent); `monitor` is the classic integration.
  extension {
    log_analytics_workspace_id = azurerm_log_analytics_workspace.this.workspace_id
    primary_key                = azurerm_log_analytics_workspace.this.primary_shared_key
  }

  lifecycle {
    # The SAS in the script action URIs rotates; the scripts already ran.
    ignore_changes = [
      roles[0].head_node[0].script_actions,
      roles[0].worker_node[0].script_actions,
    ]
  }

  depends_on = [
    azurerm_role_assignment.hdinsight_storage,
    azurerm_subnet_network_security_group_association.hdinsight,
  ]
}
