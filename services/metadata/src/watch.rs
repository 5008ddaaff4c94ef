use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// A change a store announces: what a remote watcher needs to wake its local waiters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchEvent {
    /// The high watermark of a partition moved.
    Moved {
        topic: String,
        partition: i32,
        high_watermark: i64,
    },
    /// A topic was deleted.
    TopicDeleted { topic: String },
}

/// Events kept for a slow feed subscriber before it is told it lagged.
const FEED_CAPACITY: usize = 65_536;

/// High-watermark notifications, one channel per partition that someone watches, plus a
/// feed of every change (for the metadata service's remote watchers).
#[derive(Debug)]
pub struct Watchers {
    channels: Mutex<HashMap<(String, i32), watch::Sender<i64>>>,
    feed: broadcast::Sender<WatchEvent>,
}

impl Default for Watchers {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            feed: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl Watchers {
    pub fn subscribe(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry((topic.to_string(), partition))
            .or_insert_with(|| watch::channel(-1).0)
            .subscribe()
    }

    /// Every change from now on.
    pub fn feed(&self) -> broadcast::Receiver<WatchEvent> {
        self.feed.subscribe()
    }

    /// Publishes a new high watermark; drops channels nobody listens to any more.
    pub fn publish(&self, topic: &str, partition: i32, high_watermark: i64) {
        {
            let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let key = (topic.to_string(), partition);
            if let Some(sender) = channels.get(&key) {
                if sender.receiver_count() == 0 {
                    channels.remove(&key);
                } else {
                    sender.send_replace(high_watermark);
                }
            }
        }
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(WatchEvent::Moved {
                topic: topic.to_string(),
                partition,
                high_watermark,
            });
        }
    }

    /// Wakes and forgets every watcher of a topic (it was deleted).
    pub fn remove_topic(&self, topic: &str) {
        {
            let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            channels.retain(|(t, _), _| t != topic);
        }
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(WatchEvent::TopicDeleted {
                topic: topic.to_string(),
            });
        }
    }

    /// Wakes every waiter (they re-read the offsets): after a remote feed reconnects, when
    /// changes may have been missed.
    pub fn wake_all(&self) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for sender in channels.values() {
            let current = *sender.borrow();
            sender.send_replace(current);
        }
    }

    /// Applies an event received from a remote feed.
    pub fn apply(&self, event: &WatchEvent) {
        match event {
            WatchEvent::Moved {
                topic,
                partition,
                high_watermark,
            } => self.publish(topic, *partition, *high_watermark),
            WatchEvent::TopicDeleted { topic } => self.remove_topic(topic),
        }
    }
}
