//! The transaction coordinator's APIs (decision 0008): InitProducerId with a
//! transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn.
//! Every node coordinates every transactional id: the state is in the metadata store.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    describe_transactions_response, list_transactions_response,
};
use kafka_protocol::protocol::StrBytes;
use silt_metadata::{
    AclOperation, GroupOffset, MetadataError, ProducerIdentity, ResourceType, TransactionEnd,
    TransactionState,
};
use std::time::Duration;
use tracing::info;

use crate::KafkaState;
use crate::apis::respond;
use crate::connection::RequestContext;
use crate::error::{KafkaError, ingest_code, metadata_code};

/// Kafka's `transaction.max.timeout.ms` default: longer transactions are refused.
pub(crate) const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;

/// The Kafka error code for a metadata error answering a transactional call.
pub(crate) fn txn_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::ProducerFenced { .. } => ResponseError::ProducerFenced.code(),
        MetadataError::InvalidTxnState { .. } => ResponseError::InvalidTxnState.code(),
        other => metadata_code(other),
    }
}

fn allowed(state: &KafkaState, ctx: &RequestContext, op: AclOperation, id: &str) -> bool {
    state.allowed(ctx, op, ResourceType::TransactionalId, id)
}

/// Aborts `open`'s transaction as `producer` (the id's current identity): its markers,
/// its aborted ranges, its pending offsets dropped.
async fn abort_open(
    state: &KafkaState,
    open: &TransactionState,
    producer: ProducerIdentity,
) -> Result<(), i16> {
    let end = TransactionEnd {
        transactional_id: open.transactional_id.clone(),
        producer,
        commit: false,
    };
    state
        .ingest
        .end_transaction(state.metadata.as_ref(), &end, &open.partitions)
        .await
        .map_err(|e| ingest_code(&e))?;
    info!(
        transactional_id = %open.transactional_id,
        partitions = open.partitions.len(),
        "open transaction aborted"
    );
    Ok(())
}

/// InitProducerId for a transactional producer: the id's producer at its next epoch
/// (fencing older ones), after its open transaction, if any, is aborted.
pub(crate) async fn init_producer(
    state: &KafkaState,
    ctx: &RequestContext,
    transactional_id: &str,
    timeout_ms: i32,
) -> Result<ProducerIdentity, i16> {
    if !allowed(state, ctx, AclOperation::Write, transactional_id) {
        return Err(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !(1..=MAX_TRANSACTION_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ResponseError::InvalidTransactionTimeout.code());
    }
    let timeout = Duration::from_millis(timeout_ms as u64);
    let producer = state
        .metadata
        .init_transactional_producer(transactional_id, timeout)
        .await
        .map_err(|e| txn_code(&e))?;
    let current = state
        .metadata
        .transaction(transactional_id)
        .await
        .map_err(|e| txn_code(&e))?;
    if let Some(open) = current.filter(|t| t.open) {
        // The new epoch ends what the previous one left open; until it has, the client
        // is told to retry.
        if abort_open(state, &open, producer).await.is_err() {
            return Err(ResponseError::ConcurrentTransactions.code());
        }
    }
    Ok(producer)
}

/// One transaction of an AddPartitionsToTxn request: id, producer id, epoch, and the
/// partitions by topic.
type AddedPartitions = (String, i64, i16, Vec<(String, Vec<i32>)>);

pub(crate) async fn add_partitions(
    state: &KafkaState,
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = AddPartitionsToTxnResponse::default();
    // v4+ is the brokers' form (Kafka's brokers ask their coordinator, authorized as the
    // cluster): batched transactions, each adding partitions or verifying them.
    if ctx.version >= 4 && !state.allowed_on_cluster(ctx, AclOperation::ClusterAction) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return respond(ctx, &response);
    }
    let verify_only: Vec<bool> = request.transactions.iter().map(|t| t.verify_only).collect();
    // v0-3 name one transaction at the top level; v4+ batch them (brokers' verification).
    let transactions: Vec<AddedPartitions> = if ctx.version <= 3 {
        vec![(
            request.v3_and_below_transactional_id.to_string(),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            request
                .v3_and_below_topics
                .iter()
                .map(|t| (t.name.to_string(), t.partitions.clone()))
                .collect(),
        )]
    } else {
        request
            .transactions
            .iter()
            .map(|t| {
                (
                    t.transactional_id.to_string(),
                    t.producer_id.0,
                    t.producer_epoch,
                    t.topics
                        .iter()
                        .map(|t| (t.name.to_string(), t.partitions.clone()))
                        .collect(),
                )
            })
            .collect()
    };
    for (i, (id, producer_id, epoch, topics)) in transactions.into_iter().enumerate() {
        let producer = ProducerIdentity { producer_id, epoch };
        let wanted: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        // Verification (KIP-890): whether each partition is in the producer's open
        // transaction, changing nothing.
        let verified = if ctx.version >= 4 && verify_only.get(i).copied().unwrap_or(false) {
            Some(verify(state, &id, producer, ctx.version).await)
        } else {
            None
        };
        let code = if let Some(verified) = &verified {
            verified.as_ref().err().copied().unwrap_or(0)
        } else if !allowed(state, ctx, AclOperation::Write, &id) {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        } else if wanted
            .iter()
            .any(|(t, _)| !state.allowed(ctx, AclOperation::Write, ResourceType::Topic, t))
        {
            ResponseError::TopicAuthorizationFailed.code()
        } else {
            match state
                .metadata
                .add_partitions_to_transaction(&id, producer, &wanted)
                .await
            {
                Ok(()) => 0,
                Err(e) => txn_code(&e),
            }
        };
        let topic_results: Vec<AddPartitionsToTxnTopicResult> = topics
            .iter()
            .map(|(name, partitions)| {
                let mut t = AddPartitionsToTxnTopicResult::default();
                t.name = kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_string(name.clone()),
                );
                t.results_by_partition = partitions
                    .iter()
                    .map(|p| {
                        let mut r = AddPartitionsToTxnPartitionResult::default();
                        r.partition_index = *p;
                        r.partition_error_code = match &verified {
                            Some(Ok((in_txn, missing))) => {
                                if in_txn.iter().any(|(t, q)| t == name && q == p) {
                                    0
                                } else {
                                    *missing
                                }
                            }
                            _ => code,
                        };
                        r
                    })
                    .collect();
                t
            })
            .collect();
        if ctx.version <= 3 {
            response.results_by_topic_v3_and_below = topic_results;
        } else {
            let mut r = AddPartitionsToTxnResult::default();
            r.transactional_id = kafka_protocol::messages::TransactionalId(
                kafka_protocol::protocol::StrBytes::from_string(id),
            );
            r.topic_results = topic_results;
            response.results_by_transaction.push(r);
        }
    }
    respond(ctx, &response)
}

/// For a verification: the partitions in `producer`'s open transaction and the code for
/// one that is not (INVALID_TXN_STATE; TRANSACTION_ABORTABLE from v5, which clients may
/// abort and go on from), or the code for the whole transaction.
async fn verify(
    state: &KafkaState,
    id: &str,
    producer: ProducerIdentity,
    version: i16,
) -> Result<(Vec<(String, i32)>, i16), i16> {
    let txn = state
        .metadata
        .transaction(id)
        .await
        .map_err(|e| txn_code(&e))?
        .ok_or(ResponseError::InvalidProducerIdMapping.code())?;
    if txn.producer_id != producer.producer_id {
        return Err(ResponseError::InvalidProducerIdMapping.code());
    }
    if txn.epoch != producer.epoch {
        return Err(ResponseError::ProducerFenced.code());
    }
    let missing = if version >= 5 {
        ResponseError::TransactionAbortable.code()
    } else {
        ResponseError::InvalidTxnState.code()
    };
    let partitions = if txn.open { txn.partitions } else { Vec::new() };
    Ok((partitions, missing))
}

pub(crate) async fn add_offsets(
    state: &KafkaState,
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = AddOffsetsToTxnResponse::default();
    let id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    response.error_code = if !allowed(state, ctx, AclOperation::Write, &id) {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else if !state.allowed(ctx, AclOperation::Read, ResourceType::Group, &group) {
        ResponseError::GroupAuthorizationFailed.code()
    } else {
        let producer = ProducerIdentity {
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
        };
        match state
            .metadata
            .add_offsets_to_transaction(&id, producer, &group)
            .await
        {
            Ok(()) => 0,
            Err(e) => txn_code(&e),
        }
    };
    respond(ctx, &response)
}

pub(crate) async fn txn_offset_commit(
    state: &KafkaState,
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> Result<Bytes, KafkaError> {
    let id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    let now = state.ingest.clock().now_ms();
    let offsets: Vec<GroupOffset> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| GroupOffset {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                commit_time_ms: now,
            })
        })
        .collect();
    let code = if !allowed(state, ctx, AclOperation::Write, &id) {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else if !state.allowed(ctx, AclOperation::Read, ResourceType::Group, &group) {
        ResponseError::GroupAuthorizationFailed.code()
    } else if offsets
        .iter()
        .any(|o| !state.allowed(ctx, AclOperation::Read, ResourceType::Topic, &o.topic))
    {
        ResponseError::TopicAuthorizationFailed.code()
    } else if let Err(e) = state
        .groups
        .check_txn_commit(
            &group,
            request.member_id.as_str(),
            request.group_instance_id.as_deref(),
            request.generation_id,
        )
        .await
    {
        crate::groups::group_code(&e)
    } else {
        let producer = ProducerIdentity {
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
        };
        match state
            .metadata
            .txn_offset_commit(&id, producer, &group, &offsets)
            .await
        {
            Ok(()) => 0,
            Err(e) => txn_code(&e),
        }
    };
    let mut response = TxnOffsetCommitResponse::default();
    for t in &request.topics {
        let mut topic = TxnOffsetCommitResponseTopic::default();
        topic.name = t.name.clone();
        for p in &t.partitions {
            let mut r = TxnOffsetCommitResponsePartition::default();
            r.partition_index = p.partition_index;
            r.error_code = code;
            topic.partitions.push(r);
        }
        response.topics.push(topic);
    }
    respond(ctx, &response)
}

pub(crate) async fn end(
    state: &KafkaState,
    ctx: &RequestContext,
    request: EndTxnRequest,
) -> Result<Bytes, KafkaError> {
    let id = request.transactional_id.to_string();
    let producer = ProducerIdentity {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
    let mut response = EndTxnResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    response.error_code = if !allowed(state, ctx, AclOperation::Write, &id) {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else {
        match state.metadata.transaction(&id).await {
            Err(e) => txn_code(&e),
            Ok(None) => ResponseError::InvalidProducerIdMapping.code(),
            Ok(Some(txn)) if txn.producer_id != producer.producer_id => {
                ResponseError::InvalidProducerIdMapping.code()
            }
            Ok(Some(txn)) if txn.epoch != producer.epoch => ResponseError::ProducerFenced.code(),
            // Nothing open: nothing was written or committed since the last end. Kafka
            // answers a retried end the same way.
            Ok(Some(txn)) if !txn.open => 0,
            Ok(Some(txn)) => {
                let end = TransactionEnd {
                    transactional_id: id.clone(),
                    producer,
                    commit: request.committed,
                };
                match state
                    .ingest
                    .end_transaction(state.metadata.as_ref(), &end, &txn.partitions)
                    .await
                {
                    Ok(_) => 0,
                    Err(silt_ingest::IngestError::Rejected { source }) => txn_code(&source),
                    Err(e) => ingest_code(&e),
                }
            }
        }
    };
    respond(ctx, &response)
}

/// Kafka's name for where a transactional id stands. Silt keeps no "complete" state
/// after an end (the end and its markers commit at once): an id without an open
/// transaction is Empty.
fn state_name(txn: &TransactionState) -> &'static str {
    if txn.open { "Ongoing" } else { "Empty" }
}

/// DescribeTransactions: each id's state, producer, timeout, start and partitions
/// (Describe on the transactional id).
pub(crate) async fn describe(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DescribeTransactionsResponse::default();
    for id in request.transactional_ids {
        let mut out = describe_transactions_response::TransactionState::default();
        out.transactional_id = id.clone();
        out.producer_id = ProducerId(-1);
        out.producer_epoch = -1;
        out.transaction_start_time_ms = -1;
        if !allowed(state, ctx, AclOperation::Describe, id.as_str()) {
            out.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        } else {
            match state.metadata.transaction(id.as_str()).await {
                Ok(Some(txn)) => {
                    out.transaction_state = StrBytes::from_static_str(state_name(&txn));
                    out.transaction_timeout_ms = i32::try_from(txn.timeout_ms).unwrap_or(i32::MAX);
                    out.transaction_start_time_ms = txn.started_at_ms.unwrap_or(-1);
                    out.producer_id = ProducerId(txn.producer_id);
                    out.producer_epoch = txn.epoch;
                    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> =
                        Default::default();
                    for (topic, partition) in &txn.partitions {
                        by_topic.entry(topic.clone()).or_default().push(*partition);
                    }
                    for (topic, partitions) in by_topic {
                        let mut t = describe_transactions_response::TopicData::default();
                        t.topic = TopicName(StrBytes::from_string(topic));
                        t.partitions = partitions;
                        out.topics.push(t);
                    }
                }
                Ok(None) => out.error_code = ResponseError::TransactionalIdNotFound.code(),
                Err(e) => out.error_code = txn_code(&e),
            }
        }
        response.transaction_states.push(out);
    }
    respond(ctx, &response)
}

/// ListTransactions: every transactional id the principal may describe, filtered by
/// state, producer id and (v1+) how long it has been open.
pub(crate) async fn list(
    state: &KafkaState,
    ctx: &RequestContext,
    request: ListTransactionsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = ListTransactionsResponse::default();
    let known = ["Empty", "Ongoing"];
    let wanted: Vec<&str> = request.state_filters.iter().map(|s| s.as_str()).collect();
    response.unknown_state_filters = request
        .state_filters
        .iter()
        .filter(|s| !known.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = state.ingest.clock().now_ms();
    match state.metadata.transactions().await {
        Err(e) => response.error_code = txn_code(&e),
        Ok(all) => {
            for txn in all {
                let name = state_name(&txn);
                if !wanted.is_empty() && !wanted.contains(&name) {
                    continue;
                }
                if !request.producer_id_filters.is_empty()
                    && !request
                        .producer_id_filters
                        .iter()
                        .any(|p| p.0 == txn.producer_id)
                {
                    continue;
                }
                // v1+: only transactions open longer than this (-1: any).
                if request.duration_filter >= 0
                    && txn
                        .started_at_ms
                        .is_none_or(|s| now.saturating_sub(s) < request.duration_filter)
                {
                    continue;
                }
                if !allowed(state, ctx, AclOperation::Describe, &txn.transactional_id) {
                    continue;
                }
                let mut out = list_transactions_response::TransactionState::default();
                out.transactional_id =
                    TransactionalId(StrBytes::from_string(txn.transactional_id.clone()));
                out.producer_id = ProducerId(txn.producer_id);
                out.transaction_state = StrBytes::from_static_str(name);
                response.transaction_states.push(out);
            }
        }
    }
    respond(ctx, &response)
}

/// How often a node looks for transactions that outlived their timeout.
pub const TIMEOUT_SCAN_INTERVAL: Duration = Duration::from_secs(5);

/// Aborts every open transaction older than its `transaction.timeout.ms`, as Kafka's
/// coordinator does: the transactional id's epoch is bumped (its producer is fenced and
/// must start again with InitProducerId), then the transaction ends with abort markers.
/// Answers how many it aborted. Safe on several nodes at once: a transaction another node
/// ended is no longer open.
pub async fn abort_expired_transactions(state: &KafkaState) -> Result<usize, MetadataError> {
    let now = state.ingest.clock().now_ms();
    let mut aborted = 0;
    for txn in state.metadata.transactions().await? {
        let Some(started) = txn.started_at_ms.filter(|_| txn.open) else {
            continue;
        };
        if now.saturating_sub(started) <= txn.timeout_ms {
            continue;
        }
        // Checked again and fenced in one metadata transaction: a producer that ended this
        // transaction meanwhile (and maybe opened another) is left alone.
        let Some(producer) = state
            .metadata
            .fence_expired_transaction(&txn.transactional_id, started)
            .await?
        else {
            continue;
        };
        let Some(current) = state
            .metadata
            .transaction(&txn.transactional_id)
            .await?
            .filter(|t| t.open)
        else {
            continue;
        };
        match abort_open(state, &current, producer).await {
            Ok(()) => {
                aborted += 1;
                info!(
                    transactional_id = %txn.transactional_id,
                    open_ms = now - started,
                    timeout_ms = txn.timeout_ms,
                    "transaction timed out and was aborted"
                );
            }
            Err(code) => {
                tracing::warn!(transactional_id = %txn.transactional_id, code, "aborting a timed-out transaction failed; retried at the next scan");
            }
        }
    }
    Ok(aborted)
}

/// Runs [`abort_expired_transactions`] every [`TIMEOUT_SCAN_INTERVAL`] until `stop`.
pub async fn run_transaction_timeouts(
    state: KafkaState,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(TIMEOUT_SCAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = abort_expired_transactions(&state).await {
            tracing::warn!(error = %e, "looking for timed-out transactions failed");
        }
    }
}
