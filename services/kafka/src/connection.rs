//! One client connection: size-prefixed frames in, responses out in request order.
//!
//! The read loop decodes each request and runs its *ordered prelude* (for Produce:
//! decoding batches and handing them to ingest) before reading the next one, so appends
//! keep the connection's order. The rest of the work (waiting for durability, long polls)
//! runs concurrently; a writer task sends the answers back in request order. At most
//! `max_inflight_per_connection` requests are outstanding; past that the read loop waits.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use silt_auth::Principal;

use crate::KafkaState;
use crate::apis::{self, Reply};
use crate::error::KafkaError;
use crate::security::Session;

/// A decoded request header with what the handlers need to answer.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub(crate) api_key: ApiKey,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    pub(crate) client_id: Option<String>,
    /// Who sent it (the connection's authenticated principal).
    pub(crate) principal: Arc<Principal>,
    pub(crate) peer: Option<SocketAddr>,
}

/// Largest frame a client may send before it has authenticated (Kafka's default
/// `sasl.server.max.receive.size`).
const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

/// A deadline that never comes.
const FOREVER: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Encodes a response frame: size, header (in the version the API implies), body.
pub(crate) fn encode_response<R: Encodable>(
    ctx: &RequestContext,
    header_version: i16,
    body: &R,
) -> Result<Bytes, KafkaError> {
    let mut header = ResponseHeader::default();
    header.correlation_id = ctx.correlation_id;
    let mut buf = BytesMut::new();
    buf.put_i32(0); // size, filled in below
    header
        .encode(&mut buf, header_version)
        .map_err(|e| KafkaError::Encode(e.to_string()))?;
    body.encode(&mut buf, ctx.version)
        .map_err(|e| KafkaError::Encode(e.to_string()))?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| KafkaError::Encode("response too large".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one size-prefixed frame. Its bytes are taken from the shared request pool before
/// the body is read (a frame larger than the pool takes all of it), so a node under more
/// load than it can absorb stops reading sockets instead of growing without bound.
/// `pool_bytes` 0 takes nothing from the pool (the small frames of a client that has not
/// authenticated: it must not be able to hold the pool others need).
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    max: usize,
    pool: &Arc<Semaphore>,
    pool_bytes: usize,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, KafkaError> {
    let size = match stream.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(KafkaError::Io(e)),
    };
    if size < 0 || size as usize > max {
        return Err(KafkaError::FrameSize { size, max });
    }
    let permits = if pool_bytes == 0 {
        0
    } else {
        u32::try_from((size as usize).clamp(1, pool_bytes)).unwrap_or(u32::MAX)
    };
    let permit = match pool.clone().try_acquire_many_owned(permits) {
        Ok(permit) => permit,
        Err(_) => {
            metrics::counter!("silt_kafka_request_pool_waits_total").increment(1);
            pool.clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|_| KafkaError::Malformed("request pool closed".into()))?
        }
    };
    let mut frame = vec![0u8; size as usize];
    stream
        .read_exact(&mut frame)
        .await
        .map_err(KafkaError::Io)?;
    Ok(Some((Bytes::from(frame), permit)))
}

/// Decodes the request header. ApiVersions requests of versions we do not know are still
/// answered (with UNSUPPORTED_VERSION), as clients probe with their newest version.
pub(crate) fn decode_header(frame: &mut Bytes) -> Result<RequestContext, KafkaError> {
    if frame.remaining() < 8 {
        return Err(KafkaError::Malformed(
            "frame shorter than a request header".into(),
        ));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| KafkaError::UnknownApi { key, version })?;
    // A header in a version we cannot parse: fall back to the newest header the API knows.
    let header_version = api_key.request_header_version(
        version.clamp(api_key.valid_versions().min, api_key.valid_versions().max),
    );
    let original = frame.clone();
    let header = match RequestHeader::decode(frame, header_version) {
        Ok(header) => header,
        // A client probing with an ApiVersions version newer than ours may use either
        // header layout; accept the older one too, so it always gets its answer.
        Err(_) if api_key == ApiKey::ApiVersions && header_version > 1 => {
            *frame = original;
            RequestHeader::decode(frame, 1)
                .map_err(|e| KafkaError::Malformed(format!("request header: {e}")))?
        }
        Err(e) => return Err(KafkaError::Malformed(format!("request header: {e}"))),
    };
    Ok(RequestContext {
        api_key,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        principal: Arc::new(Principal::anonymous()),
        peer: None,
    })
}

fn record_latency(api: String, received: std::time::Instant) {
    metrics::histogram!("silt_kafka_request_seconds", "api" => api)
        .record(received.elapsed().as_secs_f64());
}

/// Serves one connection, plaintext or TLS (the handshake is done).
pub(crate) async fn run<S>(
    stream: S,
    peer: SocketAddr,
    principal: Principal,
    state: KafkaState,
    pool: Arc<Semaphore>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    metrics::gauge!("silt_kafka_connections").increment(1.0);
    let (mut read, write) = tokio::io::split(stream);
    let (queue_tx, mut queue_rx) = mpsc::channel::<oneshot::Receiver<Option<Bytes>>>(
        state.config.max_inflight_per_connection.max(1),
    );
    let writer = tokio::spawn(async move {
        let mut write = BufWriter::new(write);
        while let Some(mut reply) = queue_rx.recv().await {
            let answer = match reply.try_recv() {
                Ok(answer) => answer,
                Err(oneshot::error::TryRecvError::Empty) => {
                    // The next answer is still being worked on (a long poll, say): send
                    // what is written so far instead of holding it back.
                    if write.flush().await.is_err() {
                        break;
                    }
                    let Ok(answer) = reply.await else { break };
                    answer
                }
                Err(oneshot::error::TryRecvError::Closed) => break,
            };
            if let Some(bytes) = answer
                && write.write_all(&bytes).await.is_err()
            {
                break;
            }
            // Flush when nothing else is ready, so pipelined answers share a write.
            if queue_rx.is_empty() && write.flush().await.is_err() {
                break;
            }
        }
        let _ = write.flush().await;
    });

    let mut session = Session::new(peer, principal, !state.security.sasl_mechanisms.is_empty());
    // Whether the connection is closed over authentication (already logged, rate-limited).
    let mut auth_close = false;
    // The previous offset commit of this connection, still being applied: a commit waits
    // for it, so commits land in request order (Kafka applies a connection's requests in
    // order; an asynchronous committer must not see an older offset win).
    let mut last_commit: Option<oneshot::Receiver<()>> = None;
    let max = state.config.settings.max_frame_bytes;
    let pool_bytes = state.config.settings.max_queued_request_bytes;
    let reason = loop {
        // Until SASL succeeds a client may send only small frames (Kafka's
        // sasl.server.max.receive.size) and must finish within AUTHENTICATION_TIMEOUT: an
        // unauthenticated client cannot hold the request pool or a connection for long.
        let (limit, charged, deadline) = match session.authentication_deadline() {
            Some(deadline) => (max.min(MAX_UNAUTHENTICATED_FRAME), 0, deadline),
            None => (
                max,
                pool_bytes.max(1),
                tokio::time::Instant::now() + FOREVER,
            ),
        };
        let frame = tokio::select! {
            frame = read_frame(&mut read, limit, &pool, charged) => frame,
            () = shutdown.cancelled() => break "node shutting down".to_string(),
            () = tokio::time::sleep_until(deadline) => {
                state.security.authenticator.failed(
                    "kafka",
                    "",
                    Some(peer),
                    "no SASL authentication within the time allowed",
                );
                auth_close = true;
                break "SASL authentication not completed in time".to_string();
            }
        };
        let (mut frame, pooled) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break "closed by client".to_string(),
            Err(e) => break e.to_string(),
        };
        let received = std::time::Instant::now();
        if session.in_raw_exchange() {
            // After a v0 SaslHandshake the client sends bare SASL tokens.
            let step = session.raw_token(&state, &frame).await;
            auth_close |= step.close.is_some();
            drop(pooled);
            let (tx, rx) = oneshot::channel();
            if queue_tx.send(rx).await.is_err() {
                break "writer stopped".to_string();
            }
            let _ = tx.send(Some(step.answer));
            match step.close {
                Some(reason) => break reason,
                None => continue,
            }
        }
        let mut ctx = match decode_header(&mut frame) {
            Ok(ctx) => ctx,
            Err(e) => break e.to_string(),
        };
        ctx.principal = session.principal.clone();
        ctx.peer = Some(peer);
        metrics::counter!("silt_kafka_requests_total", "api" => format!("{:?}", ctx.api_key))
            .increment(1);
        debug!(
            api = ?ctx.api_key,
            version = ctx.version,
            correlation = ctx.correlation_id,
            client = ctx.client_id.as_deref().unwrap_or(""),
            %peer,
            "request"
        );
        let mut close_after = None;
        let reply = match ctx.api_key {
            // Authentication moves this connection's state: answered here, in order.
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
                if let Err(e) = apis::check_version(&ctx) {
                    break format!("{:?} v{}: {e}", ctx.api_key, ctx.version);
                }
                match session.sasl(&state, &ctx, frame).await {
                    Ok(step) => {
                        auth_close |= step.close.is_some();
                        close_after = step.close;
                        Reply::Now(Some(step.answer))
                    }
                    Err(e) => break format!("{:?} v{}: {e}", ctx.api_key, ctx.version),
                }
            }
            other => {
                if other != ApiKey::ApiVersions
                    && let Some(reason) = session.refusal()
                {
                    // Logged, rate-limited, as an authentication failure; the close
                    // itself is not (a client retrying would flood the log).
                    state.security.authenticator.failed(
                        "kafka",
                        session.principal.name(),
                        Some(peer),
                        &reason,
                    );
                    auth_close = true;
                    break format!("{other:?} refused: {reason}");
                }
                match apis::handle(&state, &ctx, frame).await {
                    Ok(reply) => reply,
                    Err(e @ KafkaError::Unauthorized(_)) => {
                        // Counted as a denial already; the close is not worth a warning
                        // per retry of a misconfigured producer.
                        auth_close = true;
                        break format!("{:?} v{}: {e}", ctx.api_key, ctx.version);
                    }
                    Err(e) => break format!("{:?} v{}: {e}", ctx.api_key, ctx.version),
                }
            }
        };
        // The ordered prelude is done: a produce's records are now held by ingest, within
        // its own budget, so the frame's share of the request pool goes back.
        drop(pooled);
        let (tx, rx) = oneshot::channel();
        if queue_tx.send(rx).await.is_err() {
            break "writer stopped".to_string();
        }
        // Time from the frame's arrival to its answer being ready (a fetch's long poll
        // included); the wait for earlier answers to be written is not counted.
        let api = format!("{:?}", ctx.api_key);
        match reply {
            Reply::Now(bytes) => {
                record_latency(api, received);
                let _ = tx.send(bytes);
            }
            Reply::Later(future) if ctx.api_key == ApiKey::OffsetCommit => {
                let previous = last_commit.take();
                let (applied_tx, applied_rx) = oneshot::channel();
                last_commit = Some(applied_rx);
                tokio::spawn(async move {
                    if let Some(previous) = previous {
                        let _ = previous.await;
                    }
                    let answer = future.await;
                    let _ = applied_tx.send(());
                    record_latency(api, received);
                    let _ = tx.send(answer);
                });
            }
            Reply::Later(future) => {
                tokio::spawn(async move {
                    let answer = future.await;
                    record_latency(api, received);
                    let _ = tx.send(answer);
                });
            }
        }
        if let Some(reason) = close_after {
            break reason;
        }
    };
    // Let the answers already promised go out, then close.
    drop(queue_tx);
    let _ = writer.await;
    metrics::gauge!("silt_kafka_connections").decrement(1.0);
    if reason == "closed by client" {
        debug!(%peer, "Kafka connection closed");
    } else if auth_close {
        debug!(%peer, "Kafka connection closed: {reason}");
    } else if reason == "node shutting down" {
        info!(%peer, "Kafka connection closed: {reason}");
    } else {
        warn!(%peer, "Kafka connection closed: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        let mut out = (len as i32).to_be_bytes().to_vec();
        out.extend(std::iter::repeat_n(7u8, len));
        out
    }

    #[tokio::test]
    async fn frames_wait_for_the_request_pool() {
        let pool = Arc::new(Semaphore::new(1000));
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client.write_all(&frame(600)).await.expect("write");
        client.write_all(&frame(600)).await.expect("write");
        client.write_all(&frame(5000)).await.expect("write");

        let (first, permit) = read_frame(&mut server, 1 << 20, &pool, 1000)
            .await
            .expect("read")
            .expect("frame");
        assert_eq!(first.len(), 600);
        assert_eq!(pool.available_permits(), 400);
        // The second frame does not fit beside the first: its body waits.
        let (second, permit) = {
            let next = read_frame(&mut server, 1 << 20, &pool, 1000);
            tokio::pin!(next);
            let waiting = tokio::time::timeout(Duration::from_millis(100), &mut next).await;
            assert!(waiting.is_err(), "read a frame the pool had no room for");
            drop(permit);
            next.await.expect("read").expect("frame")
        };
        assert_eq!(second.len(), 600);
        drop(permit);
        // A frame larger than the whole pool takes all of it rather than never fitting.
        let (big, permit) = read_frame(&mut server, 1 << 20, &pool, 1000)
            .await
            .expect("read")
            .expect("frame");
        assert_eq!(big.len(), 5000);
        assert_eq!(pool.available_permits(), 0);
        drop(permit);
        assert_eq!(pool.available_permits(), 1000);
    }
}
