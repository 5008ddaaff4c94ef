output "bootstrap_servers" {
  description = "Kafka bootstrap address (the load balancer)."
  value       = "${aws_lb.silt.dns_name}:${var.kafka_port}"
}

output "http_url" {
  description = "Base URL of the HTTP API (through the load balancer)."
  value       = "http://${aws_lb.silt.dns_name}:${var.http_port}"
}

output "bucket" {
  description = "The S3 bucket holding segments and lake files."
  value       = aws_s3_bucket.silt.bucket
}

output "lake_uri" {
  description = "Where analytics tools read topics as Parquet tables."
  value       = "s3://${aws_s3_bucket.silt.bucket}/${var.bucket_prefix}/lake/"
}

output "metadata_urls" {
  description = "Metadata service URLs the nodes use (inside the VPC)."
  value       = local.metadata_urls
}

output "database_endpoint" {
  description = "Endpoint of the metadata database."
  value       = aws_db_instance.silt.endpoint
}

output "node_security_group_id" {
  description = "Security group of the Silt nodes (allow clients' security groups here)."
  value       = aws_security_group.nodes.id
}
