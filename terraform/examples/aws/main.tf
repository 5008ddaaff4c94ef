# An example deployment of Silt in an existing VPC.
#
#   terraform init
#   terraform apply -var vpc_id=vpc-... -var 'private_subnet_ids=["subnet-a","subnet-b","subnet-c"]' \
#     -var 'load_balancer_subnet_ids=["subnet-a","subnet-b","subnet-c"]' \
#     -var 'allowed_cidr_blocks=["10.0.0.0/8"]' -var image=<account>.dkr.ecr.<region>.amazonaws.com/silt:<version>

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

module "silt" {
  source = "../../modules/silt"

  name                     = var.name
  vpc_id                   = var.vpc_id
  private_subnet_ids       = var.private_subnet_ids
  load_balancer_subnet_ids = var.load_balancer_subnet_ids
  allowed_cidr_blocks      = var.allowed_cidr_blocks
  image                    = var.image
  db_multi_az              = true
  min_nodes                = 3
  max_nodes                = 12
  tags = {
    "owner"       = var.owner
    "environment" = "example"
  }
}
