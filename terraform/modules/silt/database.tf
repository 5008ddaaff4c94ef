resource "random_password" "db" {
  length  = 40
  special = false # goes into a postgres:// URL
}

resource "aws_db_subnet_group" "silt" {
  name       = "${var.name}-silt"
  subnet_ids = var.private_subnet_ids
  tags       = local.tags
}

resource "aws_db_parameter_group" "silt" {
  name   = "${var.name}-silt-pg${var.db_engine_version}"
  family = "postgres${var.db_engine_version}"
  tags   = local.tags

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-silt-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "silt" {
  identifier                          = "${var.name}-silt"
  engine                              = "postgres"
  engine_version                      = var.db_engine_version
  instance_class                      = var.db_instance_class
  allocated_storage                   = var.db_allocated_storage_gb
  max_allocated_storage               = var.db_allocated_storage_gb * 4
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.silt.arn
  db_name                             = "silt"
  username                            = "silt"
  password                            = random_password.db.result
  multi_az                            = var.db_multi_az
  publicly_accessible                 = false
  db_subnet_group_name                = aws_db_subnet_group.silt.name
  vpc_security_group_ids              = [aws_security_group.database.id]
  parameter_group_name                = aws_db_parameter_group.silt.name
  backup_retention_period             = var.db_backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-silt-final"
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = aws_kms_key.silt.arn
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  apply_immediately                   = false
  tags                                = local.tags
}

# The metadata service's store URL, handed to its tasks by ECS from Secrets Manager.
resource "aws_secretsmanager_secret" "metadata_store" {
  #checkov:skip=CKV2_AWS_57:Rotating the password needs a rotation function and a restart of the metadata tasks; rotate by re-applying with a new random_password instead.
  name                    = "${var.name}/silt/metadata-store-url"
  description             = "postgres:// URL of the Silt metadata database"
  kms_key_id              = aws_kms_key.silt.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "metadata_store" {
  secret_id     = aws_secretsmanager_secret.metadata_store.id
  secret_string = "postgres://silt:${random_password.db.result}@${aws_db_instance.silt.address}:${aws_db_instance.silt.port}/silt?sslmode=require"
}
