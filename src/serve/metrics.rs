//! Server metrics in Prometheus' text format: requests by status, tokens, time to first token and
//! inter-token latency histograms, queue depth, busy slots, GPU memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A cumulative histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation of `secs`.
    pub fn observe(&self, secs: f64) {
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            out.push_str(&format!("{name}_bucket{{le=\"{b}\"}} {}\n", c.load(Ordering::Relaxed)));
        }
        let n = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {n}\n"));
        out.push_str(&format!("{name}_sum {}\n", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6));
        out.push_str(&format!("{name}_count {n}\n"));
    }
}

/// Everything /metrics reports.
#[derive(Default)]
pub struct Metrics {
    /// Finished requests by HTTP status.
    pub by_status: Mutex<std::collections::BTreeMap<u16, u64>>,
    /// Prompt tokens processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Requests waiting for a sequence slot.
    pub queue_depth: AtomicU64,
    /// Sequence slots generating.
    pub busy_slots: AtomicU64,
    /// Sequence slots in all.
    pub slots: AtomicU64,
    /// GPU memory of the model, KV cache and scratch.
    pub gpu_bytes: AtomicU64,
    /// Seconds from a request's arrival to its first token.
    pub ttft: Histogram,
    /// Seconds between consecutive tokens of a request.
    pub itl: Histogram,
}

impl Metrics {
    /// Counts a finished request.
    pub fn finished(&self, status: u16) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP inferno_requests_total Finished requests by HTTP status.\n");
        out.push_str("# TYPE inferno_requests_total counter\n");
        if let Ok(m) = self.by_status.lock() {
            for (s, n) in m.iter() {
                out.push_str(&format!("inferno_requests_total{{status=\"{s}\"}} {n}\n"));
            }
        }
        let g = |out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        };
        g(&mut out, "inferno_prompt_tokens_total", "counter", "Prompt tokens processed.", &self.prompt_tokens);
        g(&mut out, "inferno_generated_tokens_total", "counter", "Tokens generated.", &self.generated_tokens);
        g(&mut out, "inferno_queue_depth", "gauge", "Requests waiting for a sequence slot.", &self.queue_depth);
        g(&mut out, "inferno_busy_slots", "gauge", "Sequence slots generating.", &self.busy_slots);
        g(&mut out, "inferno_slots", "gauge", "Sequence slots.", &self.slots);
        g(&mut out, "inferno_gpu_memory_bytes", "gauge", "GPU memory: weights, KV cache, scratch.", &self.gpu_bytes);
        self.ttft.write(&mut out, "inferno_time_to_first_token_seconds", "Arrival to first token.");
        self.itl.write(&mut out, "inferno_inter_token_latency_seconds", "Between consecutive tokens of a request.");
        out
    }
}
