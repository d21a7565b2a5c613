# Terraform cannot for_each over providers, so each region deployed by any jurisdiction
# in ../regions.json has exactly one aliased provider here and one module block in
# main.tf. A region listed in regions.json without both fails `terraform plan` (see the
# check in main.tf) and the infra tests.

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = local.base_tags
  }
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"

  default_tags {
    tags = local.base_tags
  }
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"

  default_tags {
    tags = local.base_tags
  }
}
