data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

# ECS itself: pull the image, write logs, read the metadata store secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-silt-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secrets" {
  name   = "metadata-store-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.metadata_store.arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.silt.arn]
  }
}

# Silt nodes: read, write and delete their objects — only under the prefix of this
# deployment's bucket — and use the bucket's key.
resource "aws_iam_role" "node" {
  name               = "${var.name}-silt-node"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "node_objects" {
  name   = "silt-objects"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node_objects.json
}

data "aws_iam_policy_document" "node_objects" {
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.silt.arn}/${var.bucket_prefix}/*"]
  }
  statement {
    sid       = "ListPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.silt.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.bucket_prefix}/*"]
    }
  }
  statement {
    sid       = "BucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.silt.arn]
  }
}

# The metadata service needs no AWS permission: its state is in PostgreSQL.
resource "aws_iam_role" "metadata" {
  name               = "${var.name}-silt-metadata"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}
