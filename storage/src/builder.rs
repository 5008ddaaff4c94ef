//! Building the object store from settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::{Method, Signer};
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::info;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("cannot use folder {path} as object store: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error("invalid S3 settings: {source}")]
    S3Config {
        #[source]
        source: object_store::Error,
    },
    #[error("S3 settings: {field} is required")]
    Missing { field: &'static str },
    #[error("creating bucket {bucket} failed: {reason}")]
    CreateBucket { bucket: String, reason: String },
    /// The store was built but does not work: a probe object could not be written, read
    /// back or deleted. `hint` says what to change.
    #[error("the object store at {place} does not work: {reason}. {hint}")]
    Probe {
        place: String,
        reason: String,
        hint: String,
    },
}

/// An S3-compatible endpoint (AWS S3, MinIO, ...). Credentials come from the standard AWS
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web
/// identity and instance metadata), never from this file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL; unset means AWS S3 for `region`.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Key prefix under which Silt keeps all of its objects.
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`), as MinIO and most S3-compatible servers want.
    pub path_style: bool,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Create the bucket at start-up if it does not exist.
    pub create_bucket: bool,
    /// Per-request timeout; requests are retried with backoff by the client.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_retries: usize,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            path_style: false,
            allow_http: false,
            create_bucket: false,
            request_timeout: Duration::from_secs(30),
            max_retries: 10,
        }
    }
}

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// A local folder (development, single node).
    Local {
        root: PathBuf,
    },
    S3(S3Settings),
}

/// Builds the store for `settings`. Immutable objects are written with `PutMode::Create`,
/// which S3 implements with `If-None-Match: *`.
pub async fn build_store(settings: &StoreSettings) -> Result<Arc<dyn ObjectStore>, StorageError> {
    match settings {
        StoreSettings::Local { root } => {
            std::fs::create_dir_all(root).map_err(|e| StorageError::Folder {
                path: root.clone(),
                reason: e.to_string(),
            })?;
            let store =
                LocalFileSystem::new_with_prefix(root).map_err(|e| StorageError::Folder {
                    path: root.clone(),
                    reason: e.to_string(),
                })?;
            Ok(Arc::new(store))
        }
        StoreSettings::S3(s3) => {
            if s3.bucket.is_empty() {
                return Err(StorageError::Missing { field: "bucket" });
            }
            let endpoint = s3.endpoint.as_deref();
            // An http:// endpoint says plain HTTP itself; an endpoint whose host is an IP
            // address or localhost cannot take the bucket as a subdomain: path style, as
            // the AWS SDKs choose.
            let allow_http = s3.allow_http || endpoint.is_some_and(|e| e.starts_with("http://"));
            let path_style = s3.path_style || endpoint.is_some_and(host_needs_path_style);
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&s3.bucket)
                .with_region(&s3.region)
                .with_virtual_hosted_style_request(!path_style)
                // Client options carry allow_http too: set both in one place.
                .with_client_options(
                    ClientOptions::new()
                        .with_timeout(s3.request_timeout)
                        .with_allow_http(allow_http),
                )
                .with_retry(RetryConfig {
                    max_retries: s3.max_retries,
                    ..RetryConfig::default()
                });
            if let Some(endpoint) = &s3.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            let store = builder
                .build()
                .map_err(|source| StorageError::S3Config { source })?;
            if s3.create_bucket {
                create_bucket(&store, &s3.bucket).await?;
            }
            info!(bucket = %s3.bucket, endpoint = ?s3.endpoint, prefix = %s3.prefix, "using S3 object store");
            if s3.prefix.is_empty() {
                Ok(Arc::new(store))
            } else {
                Ok(Arc::new(PrefixStore::new(store, s3.prefix.as_str())))
            }
        }
    }
}

/// Whether an endpoint's host is an IP address or `localhost` (no bucket subdomains).
fn host_needs_path_style(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        // [IPv6]:port
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
}

/// Proves the store works before the node says it is ready: writes a small object, reads
/// it back and deletes it, within `patience`. The error says what to change.
pub async fn probe_store(
    store: &dyn ObjectStore,
    settings: &StoreSettings,
    patience: Duration,
) -> Result<(), StorageError> {
    let place = match settings {
        StoreSettings::Local { root } => root.display().to_string(),
        StoreSettings::S3(s3) => match &s3.endpoint {
            Some(e) => format!("bucket '{}' at {e}", s3.bucket),
            None => format!("bucket '{}' in {}", s3.bucket, s3.region),
        },
    };
    let key = Path::from(format!(
        "_silt/probe/{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let body = bytes::Bytes::from_static(b"silt store probe");
    let attempt = async {
        store
            .put(&key, body.clone().into())
            .await
            .map_err(|e| ("writing a probe object", e))?;
        let read = store
            .get(&key)
            .await
            .map_err(|e| ("reading the probe object back", e))?
            .bytes()
            .await
            .map_err(|e| ("reading the probe object back", e))?;
        store
            .delete(&key)
            .await
            .map_err(|e| ("deleting the probe object", e))?;
        Ok::<_, (&str, object_store::Error)>(read)
    };
    let hint = |s3_hint: &str| match settings {
        StoreSettings::Local { .. } => {
            "Check that the folder is writable, or set storage.local_dir.".to_string()
        }
        StoreSettings::S3(_) => s3_hint.to_string(),
    };
    match tokio::time::timeout(patience, attempt).await {
        Err(_) => Err(StorageError::Probe {
            place,
            reason: format!("no answer within {patience:?}"),
            hint: hint("Check storage.s3.endpoint (--s3-endpoint) and that the server is running."),
        }),
        Ok(Err((what, e))) => {
            let s3_hint = match &e {
                object_store::Error::NotFound { .. } => {
                    "Does the bucket exist? Create it, or pass --create-bucket (storage.s3.create_bucket)."
                }
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => {
                    "Check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and that they may write to the bucket."
                }
                _ => {
                    "Check storage.s3.endpoint, the bucket name, the region, --s3-path-style, and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."
                }
            };
            Err(StorageError::Probe {
                place,
                reason: format!("{what} failed: {e}"),
                hint: hint(s3_hint),
            })
        }
        Ok(Ok(read)) if read != body => Err(StorageError::Probe {
            place,
            reason: "the probe object read back differs from what was written".into(),
            hint: hint("Check that the endpoint is an S3-compatible server."),
        }),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Creates the bucket if it is missing. object_store has no bucket API, so this sends a
/// CreateBucket request (`PUT /<bucket>/`) presigned with the store's own credentials.
async fn create_bucket(store: &AmazonS3, bucket: &str) -> Result<(), StorageError> {
    let fail = |reason: String| StorageError::CreateBucket {
        bucket: bucket.to_string(),
        reason,
    };
    let url = store
        .signed_url(Method::PUT, &Path::from(""), Duration::from_secs(60))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let response = reqwest::Client::new()
        .put(url.as_str())
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .body(Vec::new())
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    // 409 BucketAlreadyOwnedByYou / BucketAlreadyExists: fine for us.
    if status.is_success() || status.as_u16() == 409 {
        info!(bucket, "bucket ready");
        Ok(())
    } else {
        Err(fail(format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        )))
    }
}
