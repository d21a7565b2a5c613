# State holds this deployment's outputs and the identifiers of every resource, so it stays in
# the deployed jurisdiction: an S3 bucket (SSE-KMS, versioned, public access blocked) and a
# DynamoDB lock table in var.state_region. Settings come from backend.hcl (copy
# backend.hcl.example); one state, and one backend.hcl, per jurisdiction:
#   terraform init -backend-config=backend.hcl
terraform {
  backend "s3" {}
}
