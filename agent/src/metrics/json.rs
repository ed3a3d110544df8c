//! The registry in Consul's `/v1/agent/metrics` JSON shape:
//! `{"Timestamp", "Gauges": [{Name, Value, Labels}], "Points": [],
//! "Counters": [{Name, Count, Rate, Sum, Min, Max, Mean, Stddev, Labels}],
//! "Samples": [same, in milliseconds]}`.
//!
//! Unlike Consul's in-memory sink (10 s intervals) the values are
//! cumulative since the agent started; `Rate` is `Sum` per second of
//! uptime. Only counts and sums are kept, so `Min`, `Max` and `Mean` all
//! show the mean increment and `Stddev` is 0.

use super::{Sample, Value};
use crate::go::json::Writer;

/// `unix_secs` as Go prints a UTC `time.Time`: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The JSON document; `uptime_s` turns sums into rates; `indent` as for
/// [`Writer::new`].
pub fn render(samples: &[Sample], unix_secs: u64, uptime_s: f64, indent: &'static str) -> String {
    let mut w = Writer::new(indent);
    w.begin_object().key("Timestamp").str(&go_utc(unix_secs));
    w.key("Gauges").begin_array();
    for s in samples {
        if let Value::Gauge(v) = s.value {
            w.begin_object().key("Name").str(s.name).key("Value").float(v);
            w.key("Labels").begin_object().end_object().end_object();
        }
    }
    w.end_array().key("Points").begin_array().end_array();
    let aggregate = |w: &mut Writer, name: &str, count: u64, sum: f64| {
        let mean = if count > 0 { sum / count as f64 } else { 0.0 };
        let rate = if uptime_s > 0.0 { sum / uptime_s } else { 0.0 };
        w.begin_object().key("Name").str(name).key("Count").uint(count);
        w.key("Rate").float(rate).key("Sum").float(sum);
        w.key("Min").float(mean).key("Max").float(mean).key("Mean").float(mean);
        w.key("Stddev").float(0.0).key("Labels").begin_object().end_object().end_object();
    };
    w.key("Counters").begin_array();
    for s in samples {
        if let Value::Counter { count, sum } = s.value {
            aggregate(&mut w, s.name, count, sum as f64);
        }
    }
    w.end_array().key("Samples").begin_array();
    for s in samples {
        if let Value::Timer { count, sum_ms } = s.value {
            aggregate(&mut w, s.name, count, sum_ms);
        }
    }
    w.end_array().end_object();
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format() {
        assert_eq!(go_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_utc(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(go_utc(1_700_000_000), "2023-11-14 22:13:20 +0000 UTC");
    }

    #[test]
    fn consul_shape() {
        let samples = [
            Sample { name: "a.g", help: "", value: Value::Gauge(2.0) },
            Sample { name: "a.c", help: "", value: Value::Counter { count: 4, sum: 8 } },
            Sample { name: "a.t", help: "", value: Value::Timer { count: 2, sum_ms: 3.0 } },
        ];
        assert_eq!(
            render(&samples, 0, 2.0, ""),
            concat!(
                r#"{"Timestamp":"1970-01-01 00:00:00 +0000 UTC","Gauges":[{"Name":"a.g","Value":2,"Labels":{}}],"#,
                r#""Points":[],"Counters":[{"Name":"a.c","Count":4,"Rate":4,"Sum":8,"Min":2,"Max":2,"Mean":2,"Stddev":0,"Labels":{}}],"#,
                r#""Samples":[{"Name":"a.t","Count":2,"Rate":1.5,"Sum":3,"Min":1.5,"Max":1.5,"Mean":1.5,"Stddev":0,"Labels":{}}]}"#
            )
        );
    }
}
