"""infra/: what can be checked without a Docker engine. The compose file, Prometheus config
and Grafana dashboard parse; every setting compose passes to Silt is one Silt's own config
loader accepts; every metric the dashboard queries is one a running Silt exports; the
Dockerfile builds in stages and runs as a non-root user with a health check; the TLS
variant covers every listener and its certificate script makes certificates that work."""

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import ROOT, Silt, free_port

INFRA = ROOT / "infra"
SILT_SERVICES = ("metadata", "silt-1", "silt-2")


def compose():
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def env_example():
    values = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


def substitute(text, values):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} with the .env example."""
    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in values:
            return values[name]
        if op == ":-":
            return arg
        raise AssertionError(f"{name} has no value in infra/.env.example")
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, str(text))


def test_compose_has_the_whole_cluster():
    services = compose()["services"]
    for name in ("minio", "minio-init", "postgres", *SILT_SERVICES, "prometheus", "grafana"):
        assert name in services, f"service {name} missing"
    assert "mc mb" in " ".join(services["minio-init"]["command"]), "the bucket is created"
    assert services["silt-1"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for node in ("silt-1", "silt-2"):
        ports = " ".join(services[node]["ports"])
        assert "KAFKA_PORT" in ports and "HTTP_PORT" in ports, f"{node} publishes Kafka and HTTP"
        assert "healthcheck" not in services[node], "nodes use the image's /healthz check"
    assert "/health" in " ".join(services["metadata"]["healthcheck"]["test"])


def test_every_setting_compose_passes_is_accepted_by_silt():
    binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
    values = env_example()
    services = compose()["services"]
    for name in SILT_SERVICES:
        service = services[name]
        command = [substitute(c, values) for c in service["command"]]
        assert command[0] == "serve"
        env = {k: substitute(v, values) for k, v in service.get("environment", {}).items()}
        silt_env = {k: v for k, v in env.items() if k.startswith("SILT_")}
        assert silt_env, f"{name} passes settings"
        # The image sets these too (infra/Dockerfile).
        base = {"SILT_DATA_DIR": "/tmp/silt-config-check", "SILT_HTTP__ADDR": "0.0.0.0:8080"}
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SILT_")}
        done = subprocess.run([binary, "config", *command[1:]], env={**clean, **base, **silt_env},
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: silt refuses its settings:\n{done.stderr}"
        effective = done.stdout
        for key, value in silt_env.items():
            leaf = key.split("__")[-1].lower()
            assert leaf in effective, f"{name}: {key} did not reach the configuration"


def test_prometheus_scrapes_every_silt_process():
    config = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"silt-1:8080", "silt-2:8080", "metadata:9093"}


def dashboard():
    return json.loads((INFRA / "grafana/dashboards/silt.json").read_text())


def metric_names(expr):
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bsilt_[a-z0-9_]+", expr)}


def dashboard_metrics():
    names = set()
    for panel in dashboard()["panels"]:
        assert panel["targets"], f"panel {panel['title']} queries nothing"
        for target in panel["targets"]:
            names |= metric_names(target["expr"])
    return names


def alert_rules():
    rules = yaml.safe_load((INFRA / "prometheus-alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def what_it_measures(expr):
    """The unit class of a query: time, bytes, bytes per second, a rate, a ratio or a count."""
    if "histogram_quantile" in expr or re.search(r"silt_[a-z_]+_seconds\b", expr):
        return "time"
    if "/" in expr:
        return "ratio"
    rate = "rate(" in expr
    if re.search(r"silt_[a-z_]*bytes", expr):
        return "bytes per second" if rate else "bytes"
    return "per second" if rate else "count"


UNITS = {"time": {"s", "ms"}, "bytes": {"bytes", "decbytes"}, "bytes per second": {"Bps", "binBps"},
         "per second": {"ops", "rps", "reqps", "wps"}, "ratio": {"percentunit"}, "count": {"short", "none"}}


def test_each_dashboard_panel_has_one_unit_that_fits_its_queries():
    for panel in dashboard()["panels"]:
        kinds = {what_it_measures(t["expr"]) for t in panel["targets"]}
        assert len(kinds) == 1, f"{panel['title']} mixes {kinds} on one axis"
        unit = panel["fieldConfig"]["defaults"]["unit"]
        assert unit in UNITS[kinds.pop()], f"{panel['title']}: unit {unit} for {panel['targets']}"


def test_the_dashboard_selects_nodes_and_covers_what_operators_watch():
    d = dashboard()
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]
    titles = {p["title"] for p in d["panels"]}
    for wanted in ["Kafka request latency", "Ingest backpressure", "Memory",
                   "Metadata service: active process", "Consumer-group lag"]:
        assert wanted in titles, wanted
    per_node = [p for p in d["panels"] if any("silt_produce" in t["expr"] or "silt_kafka" in t["expr"]
                                               or "silt_memory" in t["expr"] for t in p["targets"])]
    for panel in per_node:
        assert all('$instance' in t["expr"] for t in panel["targets"]), panel["title"]


def test_alert_rules_are_complete_and_loaded_by_every_prometheus_config():
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"].startswith("Silt") and rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
    for name in ["prometheus.yml", "prometheus.tls.yml", "prometheus.secure.yml"]:
        config = yaml.safe_load((INFRA / name).read_text())
        assert config["rule_files"] == ["/etc/prometheus/silt-alerts.yml"], name
    for name in ["docker-compose.yml", "docker-compose.tls.yml", "docker-compose.secure.yml"]:
        services = yaml.safe_load((INFRA / name).read_text())["services"]
        assert "./prometheus-alerts.yml:/etc/prometheus/silt-alerts.yml:ro" in services["prometheus"]["volumes"], name


def scraped_metrics(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def test_every_dashboard_and_alert_metric_is_one_silt_exports(tmp_path):
    # A node with every role, the metadata service's included (it exports the
    # silt_metadata_* metrics and the group lag). Exercise every path the dashboard watches:
    # produce, consume with a group, compact.
    silt = Silt(str(tmp_path), env={"SILT_METADATA__ADDR": f"127.0.0.1:{free_port()}"},
                mode=("serve", "--roles", "metadata,ingest,reader,compactor"))
    try:
        exported = exercise_and_scrape(silt)
    finally:
        silt.stop()
    wanted = dashboard_metrics()
    for rule in alert_rules():
        wanted |= metric_names(rule["expr"])
    missing = sorted(wanted - exported)
    assert not missing, f"the dashboard or the alerts query metrics Silt does not export: {missing}"


def exercise_and_scrape(silt):
    producer = Producer({"bootstrap.servers": silt.bootstrap})
    for i in range(200):
        producer.produce("dash", value=f"v{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "dash-group",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("dash", 0, 0)])
    got = 0
    deadline = time.time() + 30
    while got < 100 and time.time() < deadline:
        got += len([m for m in consumer.consume(100, timeout=1) if m.error() is None])
    consumer.commit(offsets=[TopicPartition("dash", 0, 100)], asynchronous=False)
    consumer.close()
    with urllib.request.urlopen(f"{silt.http}/v1/topics/dash/partitions/0/records?offset=0", timeout=10):
        pass
    req = urllib.request.Request(f"{silt.http}/v1/admin/compact?min_age=0s", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        assert json.loads(r.read())["errors"] == []

    # The group lag is published every 10 s.
    deadline = time.time() + 25
    exported = scraped_metrics(f"{silt.http}/metrics")
    while "silt_consumer_group_lag" not in exported and time.time() < deadline:
        time.sleep(1)
        exported = scraped_metrics(f"{silt.http}/metrics")
    return exported


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    text = (INFRA / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(stages) >= 2, "a build stage and a runtime stage"
    assert "slim" in stages[-1], "a small runtime image"
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0:", "0")), "runs as a non-root user"
    assert re.search(r"^HEALTHCHECK .*healthz", text, re.MULTILINE | re.DOTALL)
    assert "--locked" in text, "builds the locked dependency versions"
    # The toolchain of the build stage is the one the workspace requires.
    rust_version = re.search(r'rust-version = "([0-9.]+)"', (ROOT / "Cargo.toml").read_text()).group(1)
    assert stages[0].startswith(f"rust:{rust_version}"), stages[0]


def test_the_tls_variant_covers_every_listener_and_its_certificates_work(tmp_path):
    """docker-compose.tls.yml turns TLS on for every Silt listener, health checks and
    scrapes; the settings it adds are accepted by silt; and the certificates
    make-certs.sh makes serve a node that kcat reaches over TLS by the names compose
    uses."""
    overlay = yaml.safe_load((INFRA / "docker-compose.tls.yml").read_text())["services"]
    base = compose()["services"]
    values = env_example()
    binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
    for name in SILT_SERVICES:
        env = {**base[name].get("environment", {}), **overlay[name]["environment"]}
        env = {k: substitute(v, values) for k, v in env.items()}
        assert "https" in " ".join(overlay[name]["healthcheck"]["test"]), name
        assert any("/etc/silt/tls" in v for v in overlay[name]["volumes"]), name
        listeners = ("SILT_METADATA__TLS",) if name == "metadata" else ("SILT_KAFKA__TLS", "SILT_HTTP__TLS")
        for key in listeners:
            assert env.get(key) == "true", f"{name}: {key}"
        assert json.loads(env["SILT_METADATA__URLS"])[0].startswith("https://")
        command = [substitute(c, values) for c in base[name]["command"]]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SILT_")}
        silt_env = {k: v for k, v in env.items() if k.startswith("SILT_")}
        done = subprocess.run([binary, "config", *command[1:]],
                              env={**clean, "SILT_DATA_DIR": str(tmp_path / "cfg"), **silt_env},
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"
    scrape = yaml.safe_load((INFRA / "prometheus.tls.yml").read_text())
    assert all(job["scheme"] == "https" for job in scrape["scrape_configs"])

    certs = tmp_path / "tls"
    subprocess.run([str(INFRA / "make-certs.sh"), str(certs)], check=True, capture_output=True)
    (tmp_path / "node").mkdir()
    node = Silt(str(tmp_path / "node"), ca_file=str(certs / "ca.pem"), env={
        "SILT_KAFKA__TLS": "true", "SILT_HTTP__TLS": "true",
        "SILT_TLS__CERT_FILE": str(certs / "node.pem"),
        "SILT_TLS__KEY_FILE": str(certs / "node.key"),
    })
    try:
        listing = subprocess.run(["kcat", "-b", node.bootstrap, "-X", "security.protocol=ssl",
                                  "-X", f"ssl.ca.location={certs / 'ca.pem'}", "-L"],
                                 capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
    finally:
        node.stop()


def test_the_secure_variant_is_accepted_and_its_users_init_works(tmp_path):
    """docker-compose.secure.yml (over the TLS variant) adds SASL, HTTP authentication and
    ACLs to the nodes and client certificates to the metadata service: silt accepts the
    merged settings of every process, and users-init's commands, run as the container
    would (its SILT_ settings, a shell), create the admin and prometheus users and the
    ACL against a real metadata service that requires client certificates."""
    tls = yaml.safe_load((INFRA / "docker-compose.tls.yml").read_text())["services"]
    secure = yaml.safe_load((INFRA / "docker-compose.secure.yml").read_text())["services"]
    base = compose()["services"]
    values = env_example()
    binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SILT_")}
    for name in SILT_SERVICES:
        env = {**base[name].get("environment", {}), **tls[name]["environment"],
               **secure[name]["environment"]}
        env = {k: substitute(v, values) for k, v in env.items()}
        if name == "metadata":
            assert env["SILT_TLS__CLIENT_AUTH"] == "required"
            assert "--cert" in secure[name]["healthcheck"]["test"]
        else:
            assert json.loads(env["SILT_KAFKA__SASL_MECHANISMS"])
            assert env["SILT_AUTH__ACLS"] == "true" and env["SILT_HTTP__REQUIRE_AUTH"] == "true"
            assert "users-init" in secure[name]["depends_on"]
        command = [substitute(c, values) for c in base[name]["command"]]
        silt_env = {k: v for k, v in env.items() if k.startswith("SILT_")}
        done = subprocess.run([binary, "config", *command[1:]],
                              env={**clean, "SILT_DATA_DIR": str(tmp_path / "cfg"), **silt_env},
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"
    scrape = yaml.safe_load((INFRA / "prometheus.secure.yml").read_text())
    nodes = next(j for j in scrape["scrape_configs"] if j["job_name"] == "silt-nodes")
    assert nodes["basic_auth"]["username"] == "prometheus"

    # users-init against a metadata service with client certificates required.
    certs = tmp_path / "tls"
    subprocess.run([str(INFRA / "make-certs.sh"), str(certs)], check=True, capture_output=True)
    assert len((certs / "prometheus.password").read_text().strip()) >= 32
    port = free_port()
    tls_env = {"SILT_TLS__CERT_FILE": str(certs / "node.pem"),
               "SILT_TLS__KEY_FILE": str(certs / "node.key"),
               "SILT_TLS__CA_FILE": str(certs / "ca.pem")}
    metadata = subprocess.Popen(
        [binary, "serve", "--roles", "metadata", "--metadata-addr", f"127.0.0.1:{port}",
         "--metadata-store", f"sqlite:{tmp_path / 'meta.db'}", "--data-dir", str(tmp_path / "m")],
        env={**clean, **tls_env, "SILT_METADATA__TLS": "true", "SILT_TLS__CLIENT_AUTH": "required",
             "SILT_TLS__CLIENT_CA_FILE": str(certs / "ca.pem")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        init = secure["users-init"]
        script = init["command"][0].replace("$$", "$").replace("/etc/silt/tls", str(certs))
        env = {k: substitute(v, values) for k, v in init["environment"].items()}
        env = {k: v.replace("/etc/silt/tls", str(certs)) for k, v in env.items()}
        env["SILT_METADATA__URLS"] = f'["https://localhost:{port}"]'
        env["SILT_DATA_DIR"] = str(tmp_path / "init")
        deadline = time.time() + 30
        while True:
            done = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                  env={**clean, **env, "PATH": f"{Path(binary).parent}:{os.environ['PATH']}"},
                                  timeout=60)
            if done.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert done.returncode == 0, done.stderr
        listed = subprocess.run([binary, "users", "list"], capture_output=True, text=True,
                                env={**clean, **env}, timeout=30)
        assert "admin" in listed.stdout and "prometheus" in listed.stdout, listed.stderr
        acls = subprocess.run([binary, "acls", "list"], capture_output=True, text=True,
                              env={**clean, **env}, timeout=30)
        assert "User:prometheus Allow Describe from * on Cluster kafka-cluster" in acls.stdout
        # Without a client certificate the metadata service turns `silt users` away.
        no_cert = {k: v for k, v in env.items()
                   if k not in ("SILT_TLS__CERT_FILE", "SILT_TLS__KEY_FILE")}
        refused = subprocess.run([binary, "users", "list"], capture_output=True, text=True,
                                 env={**clean, **no_cert}, timeout=60)
        assert refused.returncode != 0
    finally:
        metadata.terminate()
        metadata.wait(timeout=30)
