# Silt on AWS: an S3 bucket (the only durable store of events), an RDS PostgreSQL database
# (the metadata service's state), two metadata-service tasks (one active, one standby),
# autoscaled Silt nodes on ECS Fargate spread over the given availability zones, and a
# Network Load Balancer for the Kafka port and the HTTP API.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  account_id  = data.aws_caller_identity.current.account_id
  region      = data.aws_region.current.name
  partition   = data.aws_partition.current.partition
  bucket_name = coalesce(var.bucket_name, "${var.name}-silt-${local.account_id}")
  tags = merge(var.tags, {
    "app"        = "silt"
    "deployment" = var.name
  })
  # Two metadata processes on one database: one active (it holds a PostgreSQL advisory
  # lock), one standing by. Each is its own service with its own DNS name, so every node
  # knows both addresses and fails over between them.
  metadata_instances = ["a", "b"]
  metadata_port      = 9093
  namespace          = "${var.name}.silt.internal"
  metadata_urls      = join(",", [for i in local.metadata_instances : "http://metadata-${i}.${local.namespace}:${local.metadata_port}"])
}
