//! Why a run could not start or did not end cleanly. Errors the runtime recovers from (a
//! broker gone, a commit refused) are not here: they are logged and counted
//! ([`crate::internal_events`]) and the run goes on.

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every problem [`crate::KafkaConfig::validate`] found, so that one run shows them all.
    #[error("invalid kafka configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// librdkafka refused the client configuration (an unknown property, say).
    #[error("creating the Kafka {client}")]
    CreateClient { client: &'static str, source: KafkaError },
    #[error("subscribing to the input topics")]
    Subscribe(#[source] KafkaError),
    #[error("starting a worker thread")]
    SpawnWorker(#[source] std::io::Error),
    /// A worker's statistics are lost with it, so the report would be wrong.
    #[error("a worker panicked")]
    WorkerPanicked,
    /// Something still holds the consumer's context, and with it the workers' queues: the
    /// workers would never see them close.
    #[error("the consumer context outlived the consumer")]
    ContextOutlivedConsumer,
    /// An output was never acknowledged: its input was not committed past, and a restart
    /// reads it again.
    #[error("stopped after a delivery failed for good: {0}")]
    DeliveryFailed(String),
}
