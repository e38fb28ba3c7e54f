//! Every Kafka error the runtime logs and carries on from, each one struct that both logs it
//! and counts it in `nhid_kafka_errors_total{kind}` (Vector's `internal_events`): a log line
//! cannot be written without its count, and the dashboard shows what the logs say.

use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

use nhid_engine::metrics::{KafkaErrorKind, Metrics};

/// A logged Kafka error. Emitting it is the only way to log one.
pub(crate) trait KafkaErrorEvent: Sized {
    fn kind(&self) -> KafkaErrorKind;

    fn log(&self);

    fn emit(self, metrics: &Metrics) {
        self.log();
        metrics.kafka_error(self.kind());
    }
}

/// librdkafka's error callback, from the consumer or the producer: it reconnects and retries
/// by itself, so these are warnings.
pub(crate) struct ClientError<'a> {
    pub error: &'a KafkaError,
    pub reason: &'a str,
}

impl ClientError<'_> {
    pub(crate) fn brokers_down(&self) -> bool {
        self.error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
    }
}

impl KafkaErrorEvent for ClientError<'_> {
    fn kind(&self) -> KafkaErrorKind {
        if self.brokers_down() { KafkaErrorKind::BrokersDown } else { KafkaErrorKind::Client }
    }

    fn log(&self) {
        tracing::warn!(error = %self.error, reason = self.reason, "kafka client error");
    }
}

/// The group answered a rebalance with an error; the consumer unassigns everything and
/// waits for the next one.
pub(crate) struct RebalanceFailed {
    pub error: RDKafkaRespErr,
}

impl KafkaErrorEvent for RebalanceFailed {
    fn kind(&self) -> KafkaErrorKind {
        KafkaErrorKind::Rebalance
    }

    fn log(&self) {
        tracing::warn!(error = ?self.error, "rebalance error");
    }
}

pub(crate) struct AssignmentFailed<'a> {
    pub error: &'a KafkaError,
}

impl KafkaErrorEvent for AssignmentFailed<'_> {
    fn kind(&self) -> KafkaErrorKind {
        KafkaErrorKind::Assignment
    }

    fn log(&self) {
        tracing::error!(error = %self.error, "applying the new assignment failed");
    }
}

/// A call the runtime retries or works around (polling, committing, looking up offsets):
/// logged as a warning with what happens next, and counted by kind.
pub(crate) struct CallFailed<'a> {
    pub kind: KafkaErrorKind,
    pub error: &'a KafkaError,
    /// What the failure means and what the runtime does instead, for the log line.
    pub then: &'static str,
}

impl KafkaErrorEvent for CallFailed<'_> {
    fn kind(&self) -> KafkaErrorKind {
        self.kind
    }

    fn log(&self) {
        tracing::warn!(error = %self.error, "{}", self.then);
    }
}

/// A drain's grace ran out with outputs in flight: their inputs stay uncommitted.
pub(crate) struct FlushTimedOut<'a> {
    pub error: &'a KafkaError,
    pub unacknowledged: u64,
}

impl KafkaErrorEvent for FlushTimedOut<'_> {
    fn kind(&self) -> KafkaErrorKind {
        KafkaErrorKind::FlushTimeout
    }

    fn log(&self) {
        tracing::warn!(
            error = %self.error,
            unacknowledged = self.unacknowledged,
            "not every output was acknowledged in time; their inputs will be read again"
        );
    }
}

/// An output the producer refused as larger than its `message.max.bytes`; a dead letter
/// that says so replaces it.
pub(crate) struct OutputTooLarge<'a> {
    pub output_topic: &'a str,
    pub bytes: usize,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl KafkaErrorEvent for OutputTooLarge<'_> {
    fn kind(&self) -> KafkaErrorKind {
        KafkaErrorKind::OutputTooLarge
    }

    fn log(&self) {
        tracing::warn!(
            output_topic = %self.output_topic,
            bytes = self.bytes,
            topic = %self.topic,
            partition = self.partition,
            offset = self.offset,
            "output larger than the producer's message.max.bytes; dead-lettered instead"
        );
    }
}

/// An output that will never be acknowledged, with the input message it came from.
pub(crate) struct OutputLost<'a> {
    /// [`KafkaErrorKind::Produce`] (never enqueued) or [`KafkaErrorKind::Delivery`] (never
    /// acknowledged).
    pub kind: KafkaErrorKind,
    pub why: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl KafkaErrorEvent for OutputLost<'_> {
    fn kind(&self) -> KafkaErrorKind {
        self.kind
    }

    fn log(&self) {
        tracing::error!(
            topic = %self.topic,
            partition = self.partition,
            offset = self.offset,
            "{}; stopping without committing past it",
            self.why
        );
    }
}

/// A re-keying watermark that will never be acknowledged. Nothing is lost with it: the
/// detection stage waits for the next one, or `kafka.rekey_max_idle_ms` at most.
pub(crate) struct WatermarkLost<'a> {
    pub kind: KafkaErrorKind,
    pub why: &'a str,
}

impl KafkaErrorEvent for WatermarkLost<'_> {
    fn kind(&self) -> KafkaErrorKind {
        self.kind
    }

    fn log(&self) {
        tracing::warn!("{}; a re-keying watermark was lost, detection may wait for the next one", self.why);
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn count(metrics: &Metrics, kind: &str) -> String {
        let engine = nhid_engine::Engine::new(Vec::new(), Default::default(), Default::default());
        let text = metrics.render(&engine);
        let series = format!("nhid_kafka_errors_total{{kind=\"{kind}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)).unwrap_or_else(|| panic!("{series} in {text}")).to_string()
    }

    #[test]
    fn emitting_counts_by_kind() {
        let metrics = Metrics::new();
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        let transport = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        ClientError { error: &down, reason: "1/1 brokers are down" }.emit(&metrics);
        ClientError { error: &transport, reason: "disconnected" }.emit(&metrics);
        CallFailed { kind: KafkaErrorKind::Commit, error: &transport, then: "offset commit failed" }.emit(&metrics);
        CallFailed { kind: KafkaErrorKind::Commit, error: &transport, then: "offset commit failed" }.emit(&metrics);
        assert_eq!(count(&metrics, "brokers_down"), "1");
        assert_eq!(count(&metrics, "client"), "1");
        assert_eq!(count(&metrics, "commit"), "2");
        assert_eq!(count(&metrics, "consume"), "0");
    }
}
