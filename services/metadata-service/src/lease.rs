//! Exactly one active metadata process per PostgreSQL database: the holder of a session
//! advisory lock. The others wait and try again; a holder that loses its lease connection
//! stops serving at once, and the new holder's epoch fences any write still in flight
//! from the old one (see `PostgresStore::try_lease`).

use std::sync::Arc;
use std::time::Duration;

use silt_metadata::PostgresStore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::server::MetadataService;

/// Timing of the lease loop.
#[derive(Debug, Clone)]
pub struct LeaseTiming {
    /// How often a standby tries to take the lease.
    pub retry: Duration,
    /// How often the holder checks its lease connection.
    pub check: Duration,
    /// How long a check may take before the holder gives up the lease.
    pub check_timeout: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            retry: Duration::from_millis(500),
            check: Duration::from_millis(500),
            check_timeout: Duration::from_secs(2),
        }
    }
}

/// Runs until `stop`: takes the lease when it is free, serves while holding it, stands by
/// otherwise.
pub async fn run(
    service: Arc<MetadataService>,
    store: Arc<PostgresStore>,
    url: String,
    holder: String,
    timing: LeaseTiming,
    stop: CancellationToken,
) {
    let mut announced_standby = false;
    while !stop.is_cancelled() {
        let lease = match store.try_lease(&url, &holder).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                if !announced_standby {
                    info!("another metadata process is active; standing by");
                    announced_standby = true;
                }
                pause(&stop, timing.retry).await;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot reach PostgreSQL for the lease; retrying");
                pause(&stop, timing.retry).await;
                continue;
            }
        };
        announced_standby = false;
        let mut lease = lease;
        service.activate(lease.epoch());
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    service.deactivate();
                    release(lease).await;
                    return;
                }
                () = tokio::time::sleep(timing.check) => {}
            }
            match tokio::time::timeout(timing.check_timeout, lease.check()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "lease connection failed; giving up the lease");
                    break;
                }
                Err(_) => {
                    warn!("lease check timed out; giving up the lease");
                    break;
                }
            }
            if service.active_epoch() != Some(lease.epoch()) {
                // Fenced by a newer holder (noticed by a write).
                break;
            }
        }
        service.deactivate();
        release(lease).await;
    }
}

/// Closes the lease connection, without waiting on a server that does not answer (the
/// lock then goes when PostgreSQL notices the dead session).
async fn release(lease: silt_metadata::PgLease) {
    let _ = tokio::time::timeout(Duration::from_secs(2), lease.release()).await;
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}
