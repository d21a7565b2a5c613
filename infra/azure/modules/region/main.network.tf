# HDInsight runs in its own VNet/subnet behind an NSG that admits only the HDInsight
# management service and traffic from inside the VNet.

resource "azurerm_virtual_network" "this" {
  name                = "${local.name}-vnet"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = [var.network.vnet_cidr]
  tags                = local.tags
}

resource "azurerm_subnet" "hdinsight" {
  name                 = "hdinsight"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [var.network.subnet_cidr]
  service_endpoints    = ["Microsoft.EventHub", "Microsoft.Storage"]
}

resource "azurerm_network_security_group" "hdinsight" {
  name                = "${local.name}-hdinsight-nsg"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  security_rule {
    name                       = "allow-hdinsight-management"
    priority                   = 300
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "443"
    source_address_prefix      = "HDInsight.${title(var.region)}"
    destination_address_prefix = "VirtualNetwork"
  }

  security_rule {
    name                       = "allow-azure-dns-health"
    priority                   = 310
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "443"
    source_address_prefix      = "168.63.129.16"
    destination_address_prefix = "VirtualNetwork"
  }

  security_rule {
    name                       = "allow-vnet-inbound"
    priority                   = 400
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "VirtualNetwork"
    destination_address_prefix = "VirtualNetwork"
  }

  security_rule {
    name                       = "deny-all-inbound"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "hdinsight" {
  subnet_id                 = azurerm_subnet.hdinsight.id
  network_security_group_id = azurerm_network_security_group.hdinsight.id
}
