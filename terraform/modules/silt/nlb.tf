resource "aws_lb" "silt" {
  #checkov:skip=CKV_AWS_91:Access logs need a log bucket owned by the account's logging setup; set access_logs there.
  name                             = "${var.name}-silt"
  load_balancer_type               = "network"
  internal                         = var.load_balancer_internal
  subnets                          = var.load_balancer_subnet_ids
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
  tags                             = local.tags
}

# Kafka clients bootstrap through the load balancer, then connect to each node's
# advertised private address (as with any Kafka cluster): they need network reach to the
# nodes (same VPC, peering or VPN).
resource "aws_lb_target_group" "kafka" {
  name                 = "${var.name}-silt-kafka"
  port                 = var.kafka_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    protocol = "TCP"
    port     = tostring(var.kafka_port)
  }
  tags = local.tags
}

resource "aws_lb_target_group" "http" {
  name                 = "${var.name}-silt-http"
  port                 = var.http_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    protocol = "HTTP"
    port     = tostring(var.http_port)
    path     = "/healthz"
  }
  tags = local.tags
}

resource "aws_lb_listener" "kafka" {
  load_balancer_arn = aws_lb.silt.arn
  port              = var.kafka_port
  protocol          = "TCP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.kafka.arn
  }
  tags = local.tags
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.silt.arn
  port              = var.http_port
  protocol          = "TCP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }
  tags = local.tags
}
