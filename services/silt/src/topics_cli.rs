//! `silt topics list|describe|create|delete|alter`: topics of a running node, through its
//! HTTP API.

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::ApiArgs;
use crate::groups_cli::{call, encode, text};

#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// Every topic with its partition count.
    List,
    /// A topic's partitions (log start, end), and the configs set on it.
    Describe {
        /// The topic's name.
        topic: String,
    },
    /// Create a topic.
    Create {
        /// The topic's name: 1 to 249 characters from [a-zA-Z0-9._-].
        topic: String,
        /// Number of partitions.
        #[arg(long, short, default_value_t = 1)]
        partitions: i32,
        /// A topic config, KEY=VALUE (Kafka's names, e.g. retention.ms=3600000); repeat
        /// for more.
        #[arg(long = "add-config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Delete a topic and its records.
    Delete {
        /// The topic's name.
        topic: String,
    },
    /// Grow a topic or change its configs.
    Alter {
        /// The topic's name.
        topic: String,
        /// Grow the topic to this many partitions.
        #[arg(long, short)]
        partitions: Option<i32>,
        /// Set a config, KEY=VALUE; repeat for more.
        #[arg(long = "add-config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Remove a config set on the topic (back to its default); repeat for more.
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
}

fn pairs(configs: &[String]) -> anyhow::Result<Map<String, Value>> {
    configs
        .iter()
        .map(|c| {
            let (k, v) = c
                .split_once('=')
                .with_context(|| format!("'{c}' is not KEY=VALUE (e.g. retention.ms=3600000)"))?;
            Ok((k.trim().to_string(), Value::String(v.trim().to_string())))
        })
        .collect()
}

fn print_topic(t: &Value) {
    println!(
        "topic {}  id {}  partitions {}",
        text(&t["name"]),
        text(&t["id"]),
        text(&t["partition_count"])
    );
    let configs = t["config"].as_object().cloned().unwrap_or_default();
    if configs.is_empty() {
        println!("configs: none set (defaults apply)");
    } else {
        println!("configs:");
        for (k, v) in configs {
            println!("  {k}={}", text(&v));
        }
    }
}

pub(crate) async fn run(base: &str, api: &ApiArgs, command: TopicsCommand) -> anyhow::Result<()> {
    let base = base.trim_end_matches('/');
    match command {
        TopicsCommand::List => {
            let body = call(api, Method::GET, &format!("{base}/v1/topics"), None).await?;
            println!("{:<50} {:>10}", "TOPIC", "PARTITIONS");
            for t in body["topics"].as_array().into_iter().flatten() {
                println!(
                    "{:<50} {:>10}",
                    text(&t["name"]),
                    text(&t["partition_count"])
                );
            }
        }
        TopicsCommand::Describe { topic } => {
            let url = format!("{base}/v1/topics/{}", encode(&topic));
            let t = call(api, Method::GET, &url, None).await?;
            print_topic(&t);
            println!("\n{:>9} {:>14} {:>14}", "PARTITION", "LOG START", "END");
            for p in t["partitions"].as_array().into_iter().flatten() {
                println!(
                    "{:>9} {:>14} {:>14}",
                    text(&p["partition"]),
                    text(&p["earliest_offset"]),
                    text(&p["latest_offset"])
                );
            }
        }
        TopicsCommand::Create {
            topic,
            partitions,
            configs,
        } => {
            let body = json!({"name": topic, "partitions": partitions, "config": pairs(&configs)?});
            let t = call(api, Method::POST, &format!("{base}/v1/topics"), Some(&body)).await?;
            println!("created:");
            print_topic(&t);
        }
        TopicsCommand::Delete { topic } => {
            let url = format!("{base}/v1/topics/{}", encode(&topic));
            call(api, Method::DELETE, &url, None).await?;
            println!("deleted topic {topic}");
        }
        TopicsCommand::Alter {
            topic,
            partitions,
            configs,
            delete_configs,
        } => {
            let mut config = pairs(&configs)?;
            for key in delete_configs {
                config.insert(key, Value::Null);
            }
            if partitions.is_none() && config.is_empty() {
                bail!("nothing to alter: give --partitions, --add-config or --delete-config");
            }
            let mut body = json!({"config": config});
            if let Some(p) = partitions {
                body["partitions"] = json!(p);
            }
            let url = format!("{base}/v1/topics/{}", encode(&topic));
            let t = call(api, Method::PATCH, &url, Some(&body)).await?;
            println!("altered:");
            print_topic(&t);
        }
    }
    Ok(())
}
