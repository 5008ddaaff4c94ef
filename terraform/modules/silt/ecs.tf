resource "aws_ecs_cluster" "silt" {
  name = "${var.name}-silt"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = local.tags
}

resource "aws_cloudwatch_log_group" "silt" {
  name              = "/silt/${var.name}/ecs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.silt.arn
  tags              = local.tags
}

locals {
  log_configuration = {
    logDriver = "awslogs"
    options = {
      "awslogs-group"         = aws_cloudwatch_log_group.silt.name
      "awslogs-region"        = local.region
      "awslogs-stream-prefix" = "silt"
    }
  }
  # A node learns its private address (advertised to Kafka clients) and availability
  # zone (its rack, for zone-aware routing) from the ECS task metadata endpoint.
  node_start = join(" ", [
    "task=$(curl -fsS \"$ECS_CONTAINER_METADATA_URI_V4/task\");",
    "ip=$(curl -fsS \"$ECS_CONTAINER_METADATA_URI_V4\" | sed -n 's/.*\"IPv4Addresses\":\\[\"\\([^\"]*\\)\".*/\\1/p');",
    "export SILT_NODE__RACK=$(echo \"$task\" | sed -n 's/.*\"AvailabilityZone\":\"\\([^\"]*\\)\".*/\\1/p');",
    "exec silt serve --roles ingest,reader",
    "--kafka-addr 0.0.0.0:${var.kafka_port} --kafka-advertised-addr \"$ip:${var.kafka_port}\"",
    "--http-addr 0.0.0.0:${var.http_port}",
  ])
}

resource "aws_ecs_task_definition" "metadata" {
  family                   = "${var.name}-silt-metadata"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.metadata_cpu
  memory                   = var.metadata_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.metadata.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  volume {
    name = "data"
  }
  container_definitions = jsonencode([{
    name                   = "metadata"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    command                = ["serve", "--roles", "metadata", "--metadata-addr", "0.0.0.0:${local.metadata_port}"]
    portMappings           = [{ containerPort = local.metadata_port, protocol = "tcp" }]
    mountPoints            = [{ sourceVolume = "data", containerPath = "/var/lib/silt" }]
    secrets = [{
      name      = "SILT_METADATA__STORE"
      valueFrom = aws_secretsmanager_secret.metadata_store.arn
    }]
    healthCheck = {
      command     = ["CMD", "curl", "-fsS", "http://127.0.0.1:${local.metadata_port}/metrics"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 20
    }
    logConfiguration = local.log_configuration
  }])
  tags = local.tags
}

# One service per metadata process (each with its own DNS name).
resource "aws_ecs_service" "metadata" {
  for_each               = toset(local.metadata_instances)
  name                   = "${var.name}-silt-metadata-${each.key}"
  cluster                = aws_ecs_cluster.silt.id
  task_definition        = aws_ecs_task_definition.metadata.arn
  desired_count          = 1
  launch_type            = "FARGATE"
  propagate_tags         = "SERVICE"
  enable_execute_command = false
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.metadata.id]
    assign_public_ip = false
  }
  service_registries {
    registry_arn = aws_service_discovery_service.metadata[each.key].arn
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  # Replace one metadata process at a time: the other keeps or takes the lease.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  tags                               = local.tags
}

resource "aws_ecs_task_definition" "node" {
  family                   = "${var.name}-silt-node"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.node_cpu
  memory                   = var.node_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.node.arn
  ephemeral_storage {
    size_in_gib = 50 # the node's disk cache
  }
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  volume {
    name = "data"
  }
  container_definitions = jsonencode([{
    name                   = "silt"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    entryPoint             = ["/bin/sh", "-c"]
    command                = [local.node_start]
    portMappings = [
      { containerPort = var.kafka_port, protocol = "tcp" },
      { containerPort = var.http_port, protocol = "tcp" },
    ]
    mountPoints = [{ sourceVolume = "data", containerPath = "/var/lib/silt" }]
    environment = [
      { name = "SILT_STORAGE__S3__BUCKET", value = aws_s3_bucket.silt.bucket },
      { name = "SILT_STORAGE__S3__REGION", value = local.region },
      { name = "SILT_STORAGE__S3__PREFIX", value = var.bucket_prefix },
      { name = "SILT_METADATA__URLS", value = "[${join(",", [for u in split(",", local.metadata_urls) : "\"${u}\""])}]" },
      { name = "SILT_HTTP__ADDR", value = "0.0.0.0:${var.http_port}" },
    ]
    healthCheck = {
      command     = ["CMD", "curl", "-fsS", "http://127.0.0.1:${var.http_port}/healthz"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 30
    }
    stopTimeout      = 60 # SIGTERM flushes buffered records before exit
    logConfiguration = local.log_configuration
  }])
  tags = local.tags
}

resource "aws_ecs_service" "node" {
  name                              = "${var.name}-silt-node"
  cluster                           = aws_ecs_cluster.silt.id
  task_definition                   = aws_ecs_task_definition.node.arn
  desired_count                     = var.min_nodes
  launch_type                       = "FARGATE"
  propagate_tags                    = "SERVICE"
  enable_execute_command            = false
  health_check_grace_period_seconds = 60
  network_configuration {
    subnets          = var.private_subnet_ids # tasks spread over their availability zones
    security_groups  = [aws_security_group.nodes.id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.kafka.arn
    container_name   = "silt"
    container_port   = var.kafka_port
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.http.arn
    container_name   = "silt"
    container_port   = var.http_port
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  lifecycle {
    ignore_changes = [desired_count] # the autoscaler owns it
  }
  depends_on = [aws_lb_listener.kafka, aws_lb_listener.http]
  tags       = local.tags
}

resource "aws_appautoscaling_target" "node" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.silt.name}/${aws_ecs_service.node.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_nodes
  max_capacity       = var.max_nodes
  tags               = local.tags
}

resource "aws_appautoscaling_policy" "node_cpu" {
  name               = "${var.name}-silt-node-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.node.service_namespace
  resource_id        = aws_appautoscaling_target.node.resource_id
  scalable_dimension = aws_appautoscaling_target.node.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
