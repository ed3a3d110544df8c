//! The Prometheus text exposition (format 0.0.4) of the registry, encoded
//! by `prometheus-client` from a collector that reads [`Registry::collect`]
//! on every scrape.
//!
//! Names are the dotted names with `.` and `-` turned into `_`
//! (`serf.member.join` → `serf_member_join_total`); counters count events
//! (for `memberlist.udp.*` and `engine.udp.*`: bytes); timers are
//! histograms with the single `+Inf` bucket, in milliseconds.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::{Registry, Value};

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The Prometheus name of a dotted metric name.
pub fn prometheus_name(dotted: &str) -> String {
    dotted.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

#[derive(Debug)]
struct Scrape(Registry);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for s in self.0.collect() {
            let name = prometheus_name(s.name);
            match s.value {
                Value::Counter { sum, .. } => {
                    let c = ConstCounter::new(sum);
                    c.encode(encoder.encode_descriptor(&name, s.help, None, c.metric_type())?)?;
                }
                Value::Gauge(v) => {
                    let g = ConstGauge::new(v);
                    g.encode(encoder.encode_descriptor(&name, s.help, None, g.metric_type())?)?;
                }
                Value::Timer { count, sum_ms } => {
                    let mut m =
                        encoder.encode_descriptor(&name, s.help, None, MetricType::Histogram)?;
                    m.encode_histogram::<NoLabelSet>(
                        sum_ms,
                        count,
                        &[(f64::INFINITY, count)],
                        None,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// A `prometheus-client` registry whose only collector is `registry`.
pub fn exporter(registry: Registry) -> prometheus_client::registry::Registry {
    let mut r = prometheus_client::registry::Registry::default();
    r.register_collector(Box::new(Scrape(registry)));
    r
}

/// One scrape in the text format 0.0.4.
pub fn render(exporter: &prometheus_client::registry::Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, exporter);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::prometheus_name("serf.member.join"), "serf_member_join");
        assert_eq!(super::prometheus_name("a.b-c"), "a_b_c");
    }
}
