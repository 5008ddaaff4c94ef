//! Waiting on many partitions at once, on the high-watermark channels alone: a long poll
//! over N partitions costs no metadata call while it waits, and reads nothing to find out
//! that data arrived.

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// The high-watermark channels of some partitions, subscribed before their offsets were
/// read (so no commit slips between the read and the wait), with the high watermark last
/// seen of each.
#[derive(Debug)]
pub struct PartitionWatch {
    partitions: Vec<Watched>,
}

#[derive(Debug)]
struct Watched {
    channel: watch::Receiver<i64>,
    seen: i64,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// A partition's high watermark passed what was seen of it.
    Data,
    /// Something else changed (a topic was deleted, the change feed reconnected and
    /// changes may have been missed): look again.
    LookAgain,
    /// The deadline passed.
    Deadline,
}

impl PartitionWatch {
    pub(crate) fn new(channels: Vec<watch::Receiver<i64>>) -> Self {
        Self {
            partitions: channels
                .into_iter()
                .map(|channel| Watched {
                    channel,
                    seen: i64::MIN,
                })
                .collect(),
        }
    }

    /// Notes the high watermark read for partition `index` (in subscription order).
    pub fn seen(&mut self, index: usize, high_watermark: i64) {
        if let Some(p) = self.partitions.get_mut(index) {
            p.seen = p.seen.max(high_watermark);
        }
    }

    /// Waits until a partition's high watermark passes the one seen, another change asks
    /// for a fresh look, or `deadline`. With no partitions it sleeps until the deadline.
    pub async fn wait(&mut self, deadline: Instant) -> Woken {
        // A change already published since the offsets were read.
        if self.partitions.iter().any(|p| *p.channel.borrow() > p.seen) {
            return Woken::Data;
        }
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let mut changes: FuturesUnordered<_> = self
            .partitions
            .iter_mut()
            .map(|p| async move {
                let changed = p.channel.changed().await;
                match changed {
                    Ok(()) if *p.channel.borrow_and_update() > p.seen => Woken::Data,
                    // The same value again (a resync), or the channel closed (the topic
                    // was deleted).
                    _ => Woken::LookAgain,
                }
            })
            .collect();
        if changes.is_empty() {
            sleep.await;
            return Woken::Deadline;
        }
        tokio::select! {
            Some(woken) = changes.next() => woken,
            () = &mut sleep => Woken::Deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn deadline(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn wakes_when_any_partition_passes_what_was_seen() {
        let (_a_tx, a_rx) = watch::channel(5);
        let (b_tx, b_rx) = watch::channel(7);
        let mut w = PartitionWatch::new(vec![a_rx, b_rx]);
        w.seen(0, 5);
        w.seen(1, 7);
        assert_eq!(w.wait(deadline(20)).await, Woken::Deadline);
        let waiter = tokio::spawn(async move { w.wait(deadline(5_000)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        b_tx.send_replace(8);
        assert_eq!(waiter.await.expect("joins"), Woken::Data);
    }

    #[tokio::test]
    async fn a_change_published_before_the_wait_is_not_missed() {
        let (tx, rx) = watch::channel(3);
        let mut w = PartitionWatch::new(vec![rx]);
        w.seen(0, 3);
        tx.send_replace(4);
        assert_eq!(w.wait(deadline(5_000)).await, Woken::Data);
    }

    #[tokio::test]
    async fn a_resync_or_a_deleted_topic_asks_for_a_fresh_look() {
        let (tx, rx) = watch::channel(3);
        let mut w = PartitionWatch::new(vec![rx]);
        w.seen(0, 3);
        let waiter = tokio::spawn(async move { w.wait(deadline(5_000)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.send_replace(3);
        assert_eq!(waiter.await.expect("joins"), Woken::LookAgain);

        let (tx, rx) = watch::channel(3);
        let mut w = PartitionWatch::new(vec![rx]);
        w.seen(0, 3);
        drop(tx);
        assert_eq!(w.wait(deadline(5_000)).await, Woken::LookAgain);
    }

    #[tokio::test]
    async fn no_partitions_sleep_out_the_wait() {
        let mut w = PartitionWatch::new(Vec::new());
        let started = Instant::now();
        assert_eq!(w.wait(deadline(30)).await, Woken::Deadline);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
