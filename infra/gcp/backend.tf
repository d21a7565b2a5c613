# State holds this deployment's outputs and the identifiers of every resource, so it stays in
# the deployed jurisdiction: a GCS bucket in var.state_region (versioned, uniform access,
# encrypted with a Cloud KMS key of that location). Settings come from backend.hcl (copy
# backend.hcl.example); one state, and one backend.hcl, per jurisdiction:
#   terraform init -backend-config=backend.hcl
terraform {
  backend "gcs" {}
}
