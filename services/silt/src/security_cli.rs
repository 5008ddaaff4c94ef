//! `silt users …` and `silt acls …`: credentials and ACLs, written straight to the
//! metadata store the configuration names (the embedded SQLite file, PostgreSQL, or the
//! metadata service). That is also how the first administrator is made, before any
//! client can authenticate. Running nodes see new credentials at once and new ACLs
//! within `auth.acl_refresh`.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use silt_auth::scram;
use silt_metadata::{
    ANY_HOST, AclBinding, AclFilter, AclOperation, AclPermission, CLUSTER_RESOURCE, MetadataStore,
    PatternType, PostgresStore, ResourceType, ScramMechanism, SqliteStore,
};
use silt_metadata_service::MetadataClient;

use crate::StoreArgs;
use crate::config::MetadataStoreKind;

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a user or change its password (salted SCRAM credentials are stored, never
    /// the password).
    Add {
        /// The user name (its principal is User:<name>).
        user: String,
        /// The password (visible to other local users in the process list: prefer
        /// --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Mechanisms to store a credential for (default: both).
        #[arg(long, value_delimiter = ',')]
        mechanism: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = scram::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Delete a user's credentials (all mechanisms unless --mechanism).
    Remove {
        /// The user name.
        user: String,
        /// Mechanisms to remove (default: all of the user's).
        #[arg(long, value_delimiter = ',')]
        mechanism: Vec<String>,
    },
    /// Users and their mechanisms.
    List,
    /// Make a bearer token for the HTTP API: prints the token (give it to the client) and
    /// the `[[http.tokens]]` entry for the node configuration (only its hash).
    Token {
        /// The principal the token stands for, e.g. User:ci.
        principal: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AclsCommand {
    /// Allow (or with --deny, deny) an operation.
    Add(AclArgs),
    /// Remove exactly this ACL.
    Remove(AclArgs),
    /// Every ACL, or those of a principal.
    List {
        /// Only the ACLs of this principal, e.g. User:alice.
        #[arg(long)]
        principal: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AclArgs {
    /// User:alice, or User:* for everyone.
    #[arg(long)]
    principal: String,
    /// Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs,
    /// IdempotentWrite, ClusterAction or All; repeat or separate with commas.
    #[arg(long, value_delimiter = ',', required = true)]
    operation: Vec<String>,
    /// A topic name (or prefix with --prefixed; * for all topics).
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A consumer group id (or prefix with --prefixed; * for all groups).
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// The cluster.
    #[arg(long, group = "resource")]
    cluster: bool,
    /// A transactional id.
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// Match the resource name as a prefix.
    #[arg(long)]
    prefixed: bool,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
    /// Client address the ACL applies to.
    #[arg(long, default_value = ANY_HOST)]
    host: String,
}

impl AclArgs {
    fn bindings(&self) -> anyhow::Result<Vec<AclBinding>> {
        let (resource_type, name) = match (
            &self.topic,
            &self.group,
            self.cluster,
            &self.transactional_id,
        ) {
            (Some(t), None, false, None) => (ResourceType::Topic, t.clone()),
            (None, Some(g), false, None) => (ResourceType::Group, g.clone()),
            (None, None, true, None) => (ResourceType::Cluster, CLUSTER_RESOURCE.to_string()),
            (None, None, false, Some(t)) => (ResourceType::TransactionalId, t.clone()),
            _ => bail!("name one resource: --topic, --group, --cluster or --transactional-id"),
        };
        let mut out = Vec::new();
        for op in &self.operation {
            let operation = AclOperation::from_name(op)
                .filter(|o| *o != AclOperation::Any)
                .with_context(|| format!("unknown operation '{op}'"))?;
            let binding = AclBinding {
                principal: self.principal.clone(),
                host: self.host.clone(),
                resource_type,
                resource_name: name.clone(),
                pattern_type: if self.prefixed {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                operation,
                permission: if self.deny {
                    AclPermission::Deny
                } else {
                    AclPermission::Allow
                },
            };
            binding.validate()?;
            out.push(binding);
        }
        Ok(out)
    }
}

/// What a command may do to a store that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Adding users or ACLs before the first start creates the store.
    MayCreate,
    /// Listing or removing needs a store that is there.
    Existing,
}

/// The metadata store the configuration names, as a node would reach it.
async fn open(args: &StoreArgs, access: Access) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let config = args.config()?;
    if !config.metadata.urls.is_empty() {
        let client = MetadataClient::connect(crate::node::metadata_client_config(
            &config,
            config.metadata.urls.clone(),
        )?)
        .context("connecting to the metadata service")?;
        return Ok(Arc::new(client));
    }
    Ok(match config.metadata_store()? {
        MetadataStoreKind::Sqlite(path) => {
            if !path.exists() {
                if access == Access::Existing {
                    bail!(
                        "no metadata at {}: nothing to read there. Pass the node's --data-dir \
                         (or --config, or --metadata-url for a cluster)",
                        path.display()
                    );
                }
                // Users and ACLs may be set up before the first start.
                eprintln!("note: creating new metadata at {}", path.display());
            }
            Arc::new(
                SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("opening metadata at {}", path.display()))?,
            )
        }
        MetadataStoreKind::Postgres(url) => Arc::new(
            PostgresStore::connect(&url)
                .await
                .context("connecting to the PostgreSQL metadata store")?,
        ),
    })
}

fn mechanisms(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n).with_context(|| {
                format!("unknown mechanism '{n}' (SCRAM-SHA-256 or SCRAM-SHA-512)")
            })
        })
        .collect()
}

pub(crate) async fn users(args: &StoreArgs, command: UsersCommand) -> anyhow::Result<()> {
    if let UsersCommand::Token { principal } = &command {
        if !principal.contains(':') {
            bail!("'{principal}' is not a principal like User:ci");
        }
        let token = silt_auth::new_token();
        println!("token: {token}");
        println!();
        println!("[[http.tokens]]");
        println!("principal = \"{principal}\"");
        println!("sha256 = \"{}\"", silt_auth::token_sha256_hex(&token));
        return Ok(());
    }
    let access = match command {
        UsersCommand::Add { .. } => Access::MayCreate,
        _ => Access::Existing,
    };
    let store = open(args, access).await?;
    match command {
        UsersCommand::Add {
            user,
            password,
            password_stdin,
            mechanism,
            iterations,
        } => {
            let password = match (password, password_stdin) {
                (Some(p), false) => p,
                (None, true) => {
                    let mut input = String::new();
                    std::io::stdin()
                        .read_to_string(&mut input)
                        .context("reading the password from standard input")?;
                    input.lines().next().unwrap_or_default().to_string()
                }
                _ => bail!("give the password with --password or --password-stdin"),
            };
            if password.is_empty() {
                bail!("the password is empty");
            }
            if !(scram::MIN_ITERATIONS..=scram::MAX_ITERATIONS).contains(&iterations) {
                bail!(
                    "--iterations must be between {} and {}",
                    scram::MIN_ITERATIONS,
                    scram::MAX_ITERATIONS
                );
            }
            for m in mechanisms(&mechanism)? {
                let credential = scram::new_credential(&user, &password, m, iterations);
                store.set_scram_credential(&credential).await?;
                println!("{user}: {} credential stored", m.name());
            }
        }
        UsersCommand::Remove { user, mechanism } => {
            let mut removed = 0;
            for m in mechanisms(&mechanism)? {
                if store.delete_scram_credential(&user, m).await? {
                    removed += 1;
                    println!("{user}: {} credential removed", m.name());
                }
            }
            if removed == 0 {
                bail!("{user} has no such credentials");
            }
        }
        UsersCommand::List => {
            println!("{:<32} {:<16} ITERATIONS", "USER", "MECHANISM");
            for c in store.scram_credentials().await? {
                println!("{:<32} {:<16} {}", c.user, c.mechanism.name(), c.iterations);
            }
        }
        UsersCommand::Token { .. } => unreachable!("handled above"),
    }
    Ok(())
}

pub(crate) async fn acls(args: &StoreArgs, command: AclsCommand) -> anyhow::Result<()> {
    let access = match command {
        AclsCommand::Add(_) => Access::MayCreate,
        _ => Access::Existing,
    };
    let store = open(args, access).await?;
    match command {
        AclsCommand::Add(acl) => {
            let bindings = acl.bindings()?;
            store.create_acls(&bindings).await?;
            for b in bindings {
                println!("added: {}", describe(&b));
            }
        }
        AclsCommand::Remove(acl) => {
            let bindings = acl.bindings()?;
            let removed = store.delete_acls(&bindings).await?;
            if removed == 0 {
                bail!("no such ACL");
            }
            println!("removed {removed}");
        }
        AclsCommand::List { principal } => {
            let filter = AclFilter {
                principal,
                ..AclFilter::any()
            };
            for b in store.acls().await?.iter().filter(|b| filter.matches(b)) {
                println!("{}", describe(b));
            }
        }
    }
    Ok(())
}

fn describe(b: &AclBinding) -> String {
    format!(
        "{} {} {} from {} on {} {} ({})",
        b.principal,
        b.permission,
        b.operation,
        b.host,
        b.resource_type,
        b.resource_name,
        b.pattern_type
    )
}
