//! Why a run could not start or did not end cleanly. Errors the runtime recovers from (a
//! broker gone, a commit refused) are not here: they are logged and counted
//! ([`crate::internal_events`]) and the run goes on.

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every problem [`crate::KafkaConfig::validate`] found, so that one run shows them all.
    #[error("invalid kafka configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// librdkafka refused the client configuration (an unknown property, say). Its message
    /// quotes the value it refused, which may be a secret: kept with the value cut out.
    #[error("creating the Kafka {client}: {detail}")]
    CreateClient { client: &'static str, detail: String },
    #[error("subscribing to the input topics")]
    Subscribe(#[source] KafkaError),
    /// Re-keying sends watermarks to every partition of the events topic, and detection
    /// waits for every partition of the re-keyed topics: both must exist.
    #[error("looking up a topic's partitions (re-keying needs the re-keyed topics and the events topic to exist): {0}")]
    Metadata(String),
    /// The state changelog topic was missing and could not be created.
    #[error("creating the state changelog topic {topic:?}: {detail}")]
    CreateChangelog { topic: String, detail: String },
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

impl Error {
    /// [`Error::CreateClient`] from librdkafka's refusal, without the value it quotes.
    pub(crate) fn create_client(client: &'static str, source: &KafkaError) -> Self {
        Error::CreateClient { client, detail: refusal(source) }
    }
}

/// What librdkafka refused, never with the value: a configuration error's own display ends
/// with the property's value (`No such configuration property: "sasl.passwrod" sasl.passwrod
/// hunter2`), so only its description is kept, and values quoted in a description are cut.
pub(crate) fn refusal(source: &KafkaError) -> String {
    match source {
        KafkaError::ClientConfig(_, description, _, _) => without_values(description),
        KafkaError::ClientCreation(message) => without_values(message),
        other => without_values(&other.to_string()),
    }
}

/// librdkafka's configuration errors (`Invalid value "hunter2" for configuration property
/// "sasl.password"`) with every quoted value cut out; property names stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("value \"") {
        let (head, tail) = rest.split_at(at + "value ".len());
        out.push_str(head);
        out.push_str("<redacted>");
        rest = match tail[1..].find('"') {
            Some(end) => &tail[end + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;

    #[test]
    fn a_refused_property_s_value_is_never_shown() {
        let error = ClientConfig::new().set("sasl.passwrod", "hunter2").create_native_config().err().unwrap();
        assert!(error.to_string().contains("hunter2"), "librdkafka's own display shows it: {error}");
        assert_eq!(super::refusal(&error), r#"No such configuration property: "sasl.passwrod""#);
        let error = ClientConfig::new().set("acks", "hunter2").create_native_config().err().unwrap();
        assert!(!super::refusal(&error).contains("hunter2"), "{}", super::refusal(&error));
        assert!(super::refusal(&error).contains("acks"), "{}", super::refusal(&error));
    }

    #[test]
    fn a_refused_value_is_never_echoed() {
        let m =
            r#"Client creation error: Invalid value "hunter2" for configuration property "sasl.oauthbearer.config""#;
        assert_eq!(
            super::without_values(m),
            r#"Client creation error: Invalid value <redacted> for configuration property "sasl.oauthbearer.config""#
        );
        assert_eq!(
            super::without_values("No such configuration property: \"x\""),
            "No such configuration property: \"x\""
        );
    }
}
