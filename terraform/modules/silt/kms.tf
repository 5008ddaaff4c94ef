# One customer-managed key encrypts the bucket, the database, its secrets and the logs.
resource "aws_kms_key" "silt" {
  description             = "Silt ${var.name}: objects, metadata database, secrets and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "silt" {
  name          = "alias/${var.name}-silt"
  target_key_id = aws_kms_key.silt.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's resource is always the key itself ("*" means this key).
  #checkov:skip=CKV_AWS_111:A key policy's resource is always the key itself ("*" means this key).
  #checkov:skip=CKV_AWS_356:A key policy's resource is always the key itself ("*" means this key).
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/silt/${var.name}/*"]
    }
  }
}
