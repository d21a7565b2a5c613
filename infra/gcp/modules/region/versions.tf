terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.18"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.18"
    }
  }
}
