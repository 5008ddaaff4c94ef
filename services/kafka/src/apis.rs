//! Which APIs and versions Silt speaks, and the dispatch of a request to its handler.

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::connection::{RequestContext, encode_response};
use crate::error::KafkaError;
use crate::{
    KafkaState, configs, describe, fetch, groups, metadata, produce, security, topics, transactions,
};

/// One API and the versions of it Silt answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> SupportedApi {
    SupportedApi { key, min, max }
}

/// Every API Silt answers, with its version range. ApiVersions responses are built from
/// this table and requests outside it are refused, so it is the single source of truth
/// (and what docs/kafka.md lists).
const SUPPORTED: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 8),
    api(ApiKey::Metadata, 1, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 4),
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
];

pub fn supported_apis() -> &'static [SupportedApi] {
    SUPPORTED
}

/// The supported APIs as a Markdown table (docs/kafka.md embeds it; a test keeps the two
/// equal).
pub fn api_table() -> String {
    let mut out = String::from("| API | key | versions |\n|---|---|---|\n");
    for a in SUPPORTED {
        out.push_str(&format!(
            "| {:?} | {} | {}–{} |\n",
            a.key, a.key as i16, a.min, a.max
        ));
    }
    out
}

fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED.iter().copied().find(|a| a.key == key)
}

/// What a handler gives back: an answer now, or one that is still being worked on.
/// `None` means no answer at all (Produce with acks=0).
pub(crate) enum Reply {
    Now(Option<Bytes>),
    Later(BoxFuture<'static, Option<Bytes>>),
}

/// Decodes a request body of type `T` at the request's version.
pub(crate) fn decode<T: Decodable>(
    ctx: &RequestContext,
    body: &mut Bytes,
) -> Result<T, KafkaError> {
    T::decode(body, ctx.version)
        .map_err(|e| KafkaError::Malformed(format!("{:?} v{}: {e}", ctx.api_key, ctx.version)))
}

/// Encodes a response body of type `T` (header version from `T`).
pub(crate) fn respond<T: Encodable + HeaderVersion>(
    ctx: &RequestContext,
    body: &T,
) -> Result<Bytes, KafkaError> {
    encode_response(ctx, T::header_version(ctx.version), body)
}

/// Refuses an API or version outside [`SUPPORTED`].
pub(crate) fn check_version(ctx: &RequestContext) -> Result<(), KafkaError> {
    match supported(ctx.api_key) {
        Some(range) if (range.min..=range.max).contains(&ctx.version) => Ok(()),
        _ => Err(KafkaError::UnsupportedVersion {
            api: format!("{:?}", ctx.api_key),
            version: ctx.version,
        }),
    }
}

pub(crate) async fn handle(
    state: &KafkaState,
    ctx: &RequestContext,
    mut body: Bytes,
) -> Result<Reply, KafkaError> {
    let Some(range) = supported(ctx.api_key) else {
        return Err(KafkaError::UnsupportedVersion {
            api: format!("{:?}", ctx.api_key),
            version: ctx.version,
        });
    };
    if ctx.version < range.min || ctx.version > range.max {
        if ctx.api_key == ApiKey::ApiVersions {
            return api_versions_unsupported(ctx).map(|b| Reply::Now(Some(b)));
        }
        return Err(KafkaError::UnsupportedVersion {
            api: format!("{:?}", ctx.api_key),
            version: ctx.version,
        });
    }
    match ctx.api_key {
        ApiKey::ApiVersions => api_versions(ctx).map(|b| Reply::Now(Some(b))),
        ApiKey::Metadata => Ok(Reply::Now(Some(
            metadata::handle(state, ctx, decode(ctx, &mut body)?).await?,
        ))),
        ApiKey::Produce => produce::handle(state, ctx, decode(ctx, &mut body)?).await,
        ApiKey::Fetch => Ok(fetch::handle(state, ctx, decode(ctx, &mut body)?)),
        ApiKey::ListOffsets => Ok(fetch::list_offsets(state, ctx, decode(ctx, &mut body)?)),
        ApiKey::CreateTopics => Ok(Reply::Now(Some(
            topics::create(state, ctx, decode(ctx, &mut body)?).await?,
        ))),
        ApiKey::DeleteTopics => Ok(Reply::Now(Some(
            topics::delete(state, ctx, decode(ctx, &mut body)?).await?,
        ))),
        ApiKey::DeleteRecords => {
            now(topics::delete_records(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::InitProducerId => Ok(Reply::Now(Some(
            topics::init_producer_id(state, ctx, decode(ctx, &mut body)?).await?,
        ))),
        ApiKey::DescribeConfigs => {
            now(configs::describe(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::AlterConfigs => now(configs::alter(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::IncrementalAlterConfigs => {
            now(configs::incremental_alter(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::CreatePartitions => {
            now(topics::create_partitions(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::DescribeCluster => {
            now(metadata::describe_cluster(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::DescribeLogDirs => {
            now(describe::describe(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::DescribeProducers => {
            now(describe::describe_producers(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::AddPartitionsToTxn => {
            now(transactions::add_partitions(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::AddOffsetsToTxn => {
            now(transactions::add_offsets(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::TxnOffsetCommit => {
            now(transactions::txn_offset_commit(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::EndTxn => now(transactions::end(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::DescribeTransactions => {
            now(transactions::describe(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::ListTransactions => {
            now(transactions::list(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::FindCoordinator => now(groups::find_coordinator(
            state,
            ctx,
            decode(ctx, &mut body)?,
        )),
        ApiKey::JoinGroup => Ok(groups::join(state, ctx, decode(ctx, &mut body)?)),
        ApiKey::SyncGroup => Ok(groups::sync(state, ctx, decode(ctx, &mut body)?)),
        ApiKey::Heartbeat => now(groups::heartbeat(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::LeaveGroup => now(groups::leave(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::OffsetCommit => Ok(groups::commit(state, ctx, decode(ctx, &mut body)?)),
        ApiKey::OffsetFetch => Ok(groups::fetch_offsets(state, ctx, decode(ctx, &mut body)?)),
        ApiKey::ListGroups => now(groups::list(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::DescribeGroups => now(groups::describe(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::DeleteGroups => now(groups::delete(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::OffsetDelete => {
            now(groups::delete_offsets(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            now(groups::consumer_heartbeat(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::ConsumerGroupDescribe => {
            now(groups::consumer_describe(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::DescribeUserScramCredentials => {
            now(
                security::describe_user_scram_credentials(state, ctx, decode(ctx, &mut body)?)
                    .await,
            )
        }
        ApiKey::AlterUserScramCredentials => {
            now(security::alter_user_scram_credentials(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::CreateAcls => now(security::create_acls(state, ctx, decode(ctx, &mut body)?).await),
        ApiKey::DescribeAcls => {
            now(security::describe_acls(state, ctx, decode(ctx, &mut body)?).await)
        }
        ApiKey::DeleteAcls => now(security::delete_acls(state, ctx, decode(ctx, &mut body)?).await),
        // SASL belongs to a connection (see connection.rs); without one there is no
        // session to authenticate.
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Err(KafkaError::Malformed(
            "SASL request outside a connection".into(),
        )),
        other => Err(KafkaError::UnsupportedVersion {
            api: format!("{other:?}"),
            version: ctx.version,
        }),
    }
}

fn now(answer: Result<Bytes, KafkaError>) -> Result<Reply, KafkaError> {
    answer.map(|b| Reply::Now(Some(b)))
}

fn version_list() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|a| {
            let mut v = ApiVersion::default();
            v.api_key = a.key as i16;
            v.min_version = a.min;
            v.max_version = a.max;
            v
        })
        .collect()
}

fn api_versions(ctx: &RequestContext) -> Result<Bytes, KafkaError> {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = version_list();
    respond(ctx, &response)
}

/// A client asked with a newer ApiVersions than we know: answer in the v0 layout with
/// UNSUPPORTED_VERSION and our ranges; the client retries with a version we support.
fn api_versions_unsupported(ctx: &RequestContext) -> Result<Bytes, KafkaError> {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = version_list();
    let v0 = RequestContext {
        version: 0,
        ..ctx.clone()
    };
    encode_response(&v0, 0, &response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_list_exactly_the_supported_apis() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/kafka.md");
        let doc = std::fs::read_to_string(&path).expect("docs/kafka.md exists");
        let start =
            doc.find("<!-- apis:start -->").expect("start marker") + "<!-- apis:start -->".len();
        let end = doc.find("<!-- apis:end -->").expect("end marker");
        assert_eq!(
            doc[start..end].trim(),
            api_table().trim(),
            "docs/kafka.md is stale: replace its table with the output of `silt kafka-apis`"
        );
    }

    #[test]
    fn every_supported_range_is_one_the_codec_knows() {
        for a in SUPPORTED {
            let codec = a.key.valid_versions();
            assert!(a.min <= a.max, "{:?}", a.key);
            assert!(
                codec.min <= a.min && a.max <= codec.max,
                "{:?} {}..{} outside {codec:?}",
                a.key,
                a.min,
                a.max
            );
        }
    }
}
