# State holds the HDInsight gateway password and the Event Hubs and storage keys, so it stays
# in the deployed jurisdiction: a blob container of a storage account in var.state_region
# (encrypted at rest, shared keys off, Entra ID auth). Settings come from backend.hcl (copy
# backend.hcl.example); one state, and one backend.hcl, per jurisdiction:
#   terraform init -backend-config=backend.hcl
terraform {
  backend "azurerm" {}
}
