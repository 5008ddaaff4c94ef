variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name of the deployment."
  type        = string
  default     = "events"
}

variable "owner" {
  description = "Team owning the deployment (a tag)."
  type        = string
  default     = "platform"
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in two or more availability zones."
  type        = list(string)
}

variable "load_balancer_subnet_ids" {
  description = "Subnets for the (internal) Network Load Balancer."
  type        = list(string)
}

variable "allowed_cidr_blocks" {
  description = "Networks of the Kafka and HTTP clients."
  type        = list(string)
}

variable "image" {
  description = "Silt image in a registry the account can pull from."
  type        = string
}
