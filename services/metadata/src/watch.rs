use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// High-watermark notifications, one channel per partition that someone watches.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    channels: Mutex<HashMap<(String, i32), watch::Sender<i64>>>,
}

impl Watchers {
    pub(crate) fn subscribe(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry((topic.to_string(), partition))
            .or_insert_with(|| watch::channel(-1).0)
            .subscribe()
    }

    /// Publishes a new high watermark; drops channels nobody listens to any more.
    pub(crate) fn publish(&self, topic: &str, partition: i32, high_watermark: i64) {
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

    /// Wakes and forgets every watcher of a topic (it was deleted).
    pub(crate) fn remove_topic(&self, topic: &str) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|(t, _), _| t != topic);
    }
}
