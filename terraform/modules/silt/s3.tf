resource "aws_s3_bucket" "silt" {
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket owned by the account's logging setup; enable it there.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice with its own cost; not part of the base module.
  #checkov:skip=CKV2_AWS_62:Silt does not consume bucket event notifications.
  #checkov:skip=CKV_AWS_21:Silt writes every object once and deletes it on purpose (compaction, retention); versions would keep deleted data and its cost forever.
  bucket = local.bucket_name
  tags   = local.tags
}

resource "aws_s3_bucket_public_access_block" "silt" {
  bucket                  = aws_s3_bucket.silt.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "silt" {
  bucket = aws_s3_bucket.silt.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "silt" {
  bucket = aws_s3_bucket.silt.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.silt.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "silt" {
  bucket = aws_s3_bucket.silt.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_uploads_days
    }
  }

  dynamic "rule" {
    for_each = var.lake_expiration_days > 0 ? [var.lake_expiration_days] : []
    content {
      id     = "expire-lake-files"
      status = "Enabled"
      filter {
        prefix = "${var.bucket_prefix}/lake/"
      }
      expiration {
        days = rule.value
      }
    }
  }
}

# Refuse anything but TLS.
resource "aws_s3_bucket_policy" "silt" {
  bucket     = aws_s3_bucket.silt.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.silt]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.silt.arn, "${aws_s3_bucket.silt.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
