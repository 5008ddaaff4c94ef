variable "name" {
  description = "Name of this Silt deployment; prefixes every resource name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC the nodes, metadata service, database and load balancer run in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets, in at least two availability zones, for tasks and the database."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Give at least two private subnets (two availability zones)."
  }
}

variable "load_balancer_subnet_ids" {
  description = "Subnets of the Network Load Balancer (public subnets when it is internet-facing)."
  type        = list(string)
  validation {
    condition     = length(var.load_balancer_subnet_ids) >= 2
    error_message = "Give at least two subnets for the load balancer."
  }
}

variable "load_balancer_internal" {
  description = "Whether the Network Load Balancer is internal (reachable from the VPC only)."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "Client networks allowed to reach the Kafka and HTTP ports."
  type        = list(string)
  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrhost(c, 0))]) && !contains(var.allowed_cidr_blocks, "0.0.0.0/0")
    error_message = "allowed_cidr_blocks must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "image" {
  description = "Container image of Silt (built from infra/Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/silt:1.0.0."
  type        = string
}

variable "bucket_name" {
  description = "Name of the S3 bucket for segments and lake files; default \"<name>-silt-<account id>\"."
  type        = string
  default     = null
}

variable "bucket_prefix" {
  description = "Key prefix of every Silt object in the bucket (no leading or trailing slash); the task role is limited to it."
  type        = string
  default     = "silt"
  validation {
    condition     = can(regex("^[a-zA-Z0-9!_.*'()-]+(/[a-zA-Z0-9!_.*'()-]+)*$", var.bucket_prefix))
    error_message = "bucket_prefix must be a relative key prefix without leading or trailing slash."
  }
}

variable "lake_expiration_days" {
  description = "Delete lake files older than this many days (0 keeps them); independent of topic retention."
  type        = number
  default     = 0
  validation {
    condition     = var.lake_expiration_days >= 0
    error_message = "lake_expiration_days must be 0 or more."
  }
}

variable "abort_incomplete_uploads_days" {
  description = "Abort multipart uploads left incomplete for this many days."
  type        = number
  default     = 2
  validation {
    condition     = var.abort_incomplete_uploads_days >= 1
    error_message = "abort_incomplete_uploads_days must be at least 1."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL metadata database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "Storage of the metadata database, in GiB (it autoscales up to four times this)."
  type        = number
  default     = 50
  validation {
    condition     = var.db_allocated_storage_gb >= 20
    error_message = "db_allocated_storage_gb must be at least 20."
  }
}

variable "db_multi_az" {
  description = "Run the metadata database Multi-AZ (a standby in another zone, automatic failover)."
  type        = bool
  default     = true
}

variable "db_engine_version" {
  description = "PostgreSQL major version of the metadata database."
  type        = string
  default     = "15"
}

variable "db_backup_retention_days" {
  description = "Days of automated database backups."
  type        = number
  default     = 7
  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "deletion_protection" {
  description = "Protect the database and load balancer from deletion (turn off before destroying)."
  type        = bool
  default     = true
}

variable "node_cpu" {
  description = "CPU units of each Silt node task (1024 = 1 vCPU)."
  type        = number
  default     = 2048
}

variable "node_memory" {
  description = "Memory of each Silt node task, in MiB."
  type        = number
  default     = 4096
}

variable "min_nodes" {
  description = "Fewest Silt nodes (ingest + reader); the autoscaler stays at or above it."
  type        = number
  default     = 2
  validation {
    condition     = var.min_nodes >= 1
    error_message = "min_nodes must be at least 1."
  }
}

variable "max_nodes" {
  description = "Most Silt nodes the autoscaler may run."
  type        = number
  default     = 12
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the autoscaler keeps the nodes at."
  type        = number
  default     = 60
  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "metadata_cpu" {
  description = "CPU units of each metadata service task."
  type        = number
  default     = 1024
}

variable "metadata_memory" {
  description = "Memory of each metadata service task, in MiB."
  type        = number
  default     = 2048
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the Silt logs."
  type        = number
  default     = 365
}

variable "kafka_port" {
  description = "Kafka listener port of the nodes and the load balancer."
  type        = number
  default     = 9092
}

variable "http_port" {
  description = "HTTP API port of the nodes and the load balancer."
  type        = number
  default     = 8080
}
