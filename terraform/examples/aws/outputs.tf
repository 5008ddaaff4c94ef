output "bootstrap_servers" {
  description = "Kafka bootstrap address."
  value       = module.silt.bootstrap_servers
}

output "http_url" {
  description = "HTTP API base URL."
  value       = module.silt.http_url
}

output "lake_uri" {
  description = "The lake, for pyarrow, polars, DuckDB, Spark or Athena."
  value       = module.silt.lake_uri
}
