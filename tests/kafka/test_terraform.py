"""terraform/: what can be checked without AWS or provider downloads. `terraform fmt`,
parsing with python-hcl2 and asserting the properties the module promises, and checkov
with no failed check (a skipped one must say why, in the code)."""

import json
import os
import re
import subprocess
from pathlib import Path

import hcl2

from conftest import ROOT

TERRAFORM = ROOT / "terraform"
MODULE = TERRAFORM / "modules" / "silt"
IAC_BIN = Path(os.environ.get("E2E_IAC_BIN", ROOT / ".venv-iac" / "bin"))

# Resource types that take no tags.
UNTAGGABLE = {
    "aws_kms_alias", "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_policy", "aws_iam_role_policy", "aws_iam_role_policy_attachment",
    "random_password", "aws_secretsmanager_secret_version", "aws_appautoscaling_policy",
}


def clean(value):
    """python-hcl2 keeps the quotes of names and strings and adds bookkeeping keys."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(folder):
    """Every block of every .tf file in `folder`, merged: {"resource": [...], ...}."""
    merged = {}
    for path in sorted(folder.glob("*.tf")):
        with open(path) as f:
            for kind, blocks in clean(hcl2.load(f)).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def resources(parsed):
    """{(type, name): body}"""
    out = {}
    for block in parsed.get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out[(rtype, name)] = body
    return out


def data_sources(parsed):
    out = {}
    for block in parsed.get("data", []):
        for dtype, named in block.items():
            for name, body in named.items():
                out[(dtype, name)] = body
    return out


def flat(value):
    return json.dumps(value)


def test_terraform_is_formatted():
    done = subprocess.run([str(IAC_BIN / "terraform"), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{done.stdout}{done.stderr}"


def test_every_variable_has_a_description_and_a_type():
    for folder in (MODULE, TERRAFORM / "examples" / "aws"):
        for block in load(folder).get("variable", []):
            for name, body in block.items():
                assert body.get("description"), f"{folder.name}: variable {name} has no description"
                assert body.get("type"), f"{folder.name}: variable {name} has no type"


def test_every_resource_is_tagged():
    for (rtype, name), body in resources(load(MODULE)).items():
        if rtype in UNTAGGABLE:
            continue
        assert "local.tags" in flat(body.get("tags")), f"{rtype}.{name} is not tagged with local.tags"


def test_the_bucket_is_private_encrypted_and_cleans_up_uploads():
    r = resources(load(MODULE))
    block = r[("aws_s3_bucket_public_access_block", "silt")]
    for key in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[key] is True, key
    sse = flat(r[("aws_s3_bucket_server_side_encryption_configuration", "silt")])
    assert "aws:kms" in sse and "aws_kms_key.silt.arn" in sse
    lifecycle = flat(r[("aws_s3_bucket_lifecycle_configuration", "silt")])
    assert "abort_incomplete_multipart_upload" in lifecycle
    assert "lake_expiration_days" in lifecycle and "/lake/" in lifecycle, "optional expiry of the lake prefix"
    policy = flat(data_sources(load(MODULE))[("aws_iam_policy_document", "bucket")])
    assert "aws:SecureTransport" in policy and '"Deny"' in policy


def test_the_task_role_reaches_only_its_bucket_prefix():
    docs = data_sources(load(MODULE))
    statements = docs[("aws_iam_policy_document", "node_objects")]["statement"]
    for statement in statements:
        resources_ = statement["resources"]
        assert "*" not in resources_, statement
        for arn in resources_:
            assert "aws_s3_bucket.silt.arn" in arn or "aws_kms_key.silt.arn" in arn, arn
        if any(a.startswith("s3:") and a != "s3:ListBucket" for a in statement["actions"]):
            assert all("var.bucket_prefix" in arn for arn in resources_), "object access limited to the prefix"
        if "s3:ListBucket" in statement["actions"]:
            assert "var.bucket_prefix" in flat(statement["condition"])
    execution = docs[("aws_iam_policy_document", "execution_secrets")]["statement"]
    assert all("*" not in s["resources"] for s in execution)


def test_the_database_is_encrypted_private_and_multi_az_by_switch():
    db = resources(load(MODULE))[("aws_db_instance", "silt")]
    assert db["storage_encrypted"] is True
    assert db["publicly_accessible"] is False
    assert "var.db_multi_az" in flat(db["multi_az"])
    assert "var.deletion_protection" in flat(db["deletion_protection"])


def test_nodes_spread_over_zones_know_their_zone_and_take_secrets_from_secrets_manager():
    r = resources(load(MODULE))
    node = r[("aws_ecs_service", "node")]
    assert "var.private_subnet_ids" in flat(node["network_configuration"])
    assert node["network_configuration"][0]["assign_public_ip"] is False
    module_text = "".join(p.read_text() for p in MODULE.glob("*.tf"))
    assert "SILT_NODE__RACK" in module_text and "AvailabilityZone" in module_text
    metadata_task = flat(r[("aws_ecs_task_definition", "metadata")])
    assert "aws_secretsmanager_secret.metadata_store.arn" in metadata_task
    assert ("aws_appautoscaling_policy", "node_cpu") in r
    listeners = {name for (rtype, name) in r if rtype == "aws_lb_listener"}
    assert listeners == {"kafka", "http"}
    assert r[("aws_lb", "silt")]["load_balancer_type"] == "network"


def test_outputs_give_the_bootstrap_servers_and_http_url():
    for folder in (MODULE, TERRAFORM / "examples" / "aws"):
        names = {name for block in load(folder).get("output", []) for name in block}
        assert {"bootstrap_servers", "http_url"} <= names, folder


def test_checkov_finds_nothing_and_every_skip_says_why():
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#checkov:skip=CKV2?_AWS_\d+:.{20,}", line), f"{path.name}: skip without a reason: {line}"
    done = subprocess.run([str(IAC_BIN / "checkov"), "-d", str(TERRAFORM), "--framework", "terraform",
                           "--skip-download", "--quiet", "--compact", "-o", "json"],
                          capture_output=True, text=True)
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed > 100, "checkov scanned the module"
    assert not failed, [f"{c['check_id']} {c['resource']}" for c in failed]
