//! `silt groups list|describe`: consumer groups of a running node, read from its HTTP API.

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{ApiArgs, GroupsCommand};

async fn get(api: &ApiArgs, url: &str) -> anyhow::Result<Value> {
    call(api, reqwest::Method::GET, url, None).await
}

/// One request to the node's HTTP API: the JSON answer, or its error message.
pub(crate) async fn call(
    api: &ApiArgs,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut request = api.request(method.clone(), url)?;
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("is silt running? {method} {url}"))?;
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    let body: Value = response.json().await.context("the answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "{}: {}",
            status,
            body["message"].as_str().unwrap_or("request failed")
        );
    }
    Ok(body)
}

/// A name as one URL path segment (group ids may hold spaces, slashes, anything).
pub(crate) fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(crate) async fn run(base: &str, api: &ApiArgs, command: GroupsCommand) -> anyhow::Result<()> {
    let base = base.trim_end_matches('/');
    match command {
        GroupsCommand::List => {
            let body = get(api, &format!("{base}/v1/groups")).await?;
            println!("{:<40} {:<22} PROTOCOL TYPE", "GROUP", "STATE");
            for g in body["groups"].as_array().into_iter().flatten() {
                println!(
                    "{:<40} {:<22} {}",
                    text(&g["group"]),
                    text(&g["state"]),
                    text(&g["protocol_type"])
                );
            }
        }
        GroupsCommand::Describe { group } => {
            let g = get(api, &format!("{base}/v1/groups/{}", encode(&group))).await?;
            println!(
                "group {}  state {}  protocol {}  generation {}  total lag {}",
                text(&g["group"]),
                text(&g["state"]),
                text(&g["protocol"]),
                text(&g["generation"]),
                text(&g["total_lag"])
            );
            println!("\n{:<60} {:<20} PARTITIONS", "MEMBER", "CLIENT");
            for m in g["members"].as_array().into_iter().flatten() {
                let parts: Vec<String> = m["assignment"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| format!("{}{}", text(&a["topic"]), a["partitions"]))
                    .collect();
                println!(
                    "{:<60} {:<20} {}",
                    text(&m["member_id"]),
                    text(&m["client_id"]),
                    parts.join(" ")
                );
            }
            println!(
                "\n{:<30} {:>9} {:>14} {:>14} {:>10}",
                "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
            );
            for o in g["offsets"].as_array().into_iter().flatten() {
                println!(
                    "{:<30} {:>9} {:>14} {:>14} {:>10}",
                    text(&o["topic"]),
                    text(&o["partition"]),
                    text(&o["offset"]),
                    text(&o["high_watermark"]),
                    text(&o["lag"])
                );
            }
        }
    }
    Ok(())
}
