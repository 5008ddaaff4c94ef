//! Latency summaries, the broker's metrics and memory, and how results are printed.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of a latency histogram recorded in microseconds, reported in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.1}  p95 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1} ms  ({} samples)",
            self.p50_ms, self.p95_ms, self.p99_ms, self.p999_ms, self.max_ms, self.count
        )
    }
}

/// A histogram of microseconds from 1 µs to 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

/// Silt's object-store counters, by operation (`silt_object_requests_total`,
/// `silt_object_bytes_total`), read from its Prometheus text.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectCounters {
    pub requests: BTreeMap<String, f64>,
    pub bytes: BTreeMap<String, f64>,
}

impl ObjectCounters {
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let op = series
                .split("op=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string();
            if series.starts_with("silt_object_requests_total{") {
                out.requests.insert(op, value);
            } else if series.starts_with("silt_object_bytes_total{") {
                out.bytes.insert(op, value);
            }
        }
        out
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        let diff = |now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>| {
            now.iter()
                .map(|(op, v)| (op.clone(), v - then.get(op).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect()
        };
        Self {
            requests: diff(&self.requests, &before.requests),
            bytes: diff(&self.bytes, &before.bytes),
        }
    }
}

pub async fn scrape(url: &str) -> anyhow::Result<ObjectCounters> {
    let text = reqwest::get(url).await?.error_for_status()?.text().await?;
    Ok(ObjectCounters::parse(&text))
}

/// Resident memory of a process, in bytes: (current, peak since it started), from
/// /proc/<pid>/status (VmRSS, VmHWM).
pub fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_counters_come_from_prometheus_text() {
        let before = ObjectCounters::parse(
            "# TYPE silt_object_requests_total counter\nsilt_object_requests_total{op=\"put\"} 3\nsilt_object_requests_total{op=\"get\"} 0\nsilt_object_bytes_total{op=\"put\"} 300\n",
        );
        let after = ObjectCounters::parse(
            "silt_object_requests_total{op=\"put\"} 10\nsilt_object_requests_total{op=\"get\"} 0\nsilt_object_bytes_total{op=\"put\"} 1300\nother 5\n",
        );
        let d = after.since(&before);
        assert_eq!(d.requests.get("put"), Some(&7.0));
        assert_eq!(d.requests.get("get"), None, "zero deltas are left out");
        assert_eq!(d.bytes.get("put"), Some(&1000.0));
    }

    #[test]
    fn latency_percentiles_in_ms() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).expect("in range");
        }
        let l = Latency::of(&h);
        assert!((l.p50_ms - 500.0).abs() < 2.0, "{l:?}");
        assert!((l.max_ms - 1000.0).abs() < 2.0, "{l:?}");
    }
}
