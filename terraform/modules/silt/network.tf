# Who may talk to whom: clients → nodes (Kafka, HTTP); nodes → metadata service;
# metadata service → database. Nothing else comes in.

resource "aws_security_group" "nodes" {
  name        = "${var.name}-silt-nodes"
  description = "Silt nodes: Kafka and HTTP from clients and the load balancer"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "nodes_kafka" {
  for_each          = toset(concat(var.allowed_cidr_blocks, [data.aws_vpc.this.cidr_block]))
  security_group_id = aws_security_group.nodes.id
  description       = "Kafka protocol from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.kafka_port
  to_port           = var.kafka_port
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "nodes_http" {
  for_each          = toset(concat(var.allowed_cidr_blocks, [data.aws_vpc.this.cidr_block]))
  security_group_id = aws_security_group.nodes.id
  description       = "HTTP API from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "nodes_https" {
  security_group_id = aws_security_group.nodes.id
  description       = "HTTPS to S3, ECR, CloudWatch and Secrets Manager"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "nodes_metadata" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "Metadata service"
  referenced_security_group_id = aws_security_group.metadata.id
  ip_protocol                  = "tcp"
  from_port                    = local.metadata_port
  to_port                      = local.metadata_port
  tags                         = local.tags
}

resource "aws_security_group" "metadata" {
  name        = "${var.name}-silt-metadata"
  description = "Silt metadata service: requests from nodes only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "metadata_from_nodes" {
  security_group_id            = aws_security_group.metadata.id
  description                  = "Metadata requests from Silt nodes"
  referenced_security_group_id = aws_security_group.nodes.id
  ip_protocol                  = "tcp"
  from_port                    = local.metadata_port
  to_port                      = local.metadata_port
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "metadata_https" {
  security_group_id = aws_security_group.metadata.id
  description       = "HTTPS to ECR, CloudWatch and Secrets Manager"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "metadata_database" {
  security_group_id            = aws_security_group.metadata.id
  description                  = "PostgreSQL"
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = local.tags
}

resource "aws_security_group" "database" {
  name        = "${var.name}-silt-database"
  description = "Silt metadata database: PostgreSQL from the metadata service only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_metadata" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the metadata service"
  referenced_security_group_id = aws_security_group.metadata.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = local.tags
}

resource "aws_service_discovery_private_dns_namespace" "silt" {
  name        = local.namespace
  description = "Silt ${var.name}: metadata service names"
  vpc         = var.vpc_id
  tags        = local.tags
}

resource "aws_service_discovery_service" "metadata" {
  for_each = toset(local.metadata_instances)
  name     = "metadata-${each.key}"
  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.silt.id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 5
      type = "A"
    }
  }
  health_check_custom_config {
    failure_threshold = 1
  }
  tags = local.tags
}
