//! A worker's own librdkafka queue. Its partitions' fetched messages are forwarded there at
//! assignment, and the worker reads them in batches, in place: no consumer thread polls each
//! message and copies it over to a worker. That hand-off cost the consumer thread what a bare
//! consumer's whole loop costs (0.6 µs a message, `perf` by scheduler switches in
//! `cargo bench --bench kafka`), on a machine whose two cores were both busy.
//!
//! rdkafka wraps neither a queue of the application's nor a batch read
//! (`rd_kafka_consume_batch_queue`), so this module calls librdkafka itself: the crate's one
//! use of `unsafe`, each call's contract beside it.

use std::ffi::{CStr, CString, c_int};
use std::ptr::{self, NonNull};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers};
use rdkafka::types::RDKafkaRespErr;

/// A queue of fetched messages, created on a consumer. It must be dropped before the
/// consumer is (`Workers::detach`), and so must every message read from it.
pub(crate) struct WorkerQueue(NonNull<rd::rd_kafka_queue_t>);

// SAFETY: librdkafka's queues are locked inside; any thread may read, forward to or wake one.
unsafe impl Send for WorkerQueue {}
unsafe impl Sync for WorkerQueue {}

impl WorkerQueue {
    pub(crate) fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<WorkerQueue> {
        // SAFETY: the consumer's handle is valid while it lives, and the queue is dropped first.
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        NonNull::new(queue).map(WorkerQueue)
    }

    /// Sends the fetched messages of a partition here, from before it is assigned, so that
    /// none goes to the group consumer's queue. librdkafka keeps a forward the application
    /// set when fetching starts, and undoes it when fetching stops (a revocation): every
    /// assignment sets it again. Whether it could be set.
    pub(crate) fn forward<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, topic: &str, partition: i32) -> bool {
        let Ok(topic) = CString::new(topic) else { return false };
        // SAFETY: valid handle and C string; the partition's queue, created when missing, is a
        // reference of ours, given back once the forward is set (the forward keeps its own).
        unsafe {
            let from = rd::rd_kafka_queue_get_partition(consumer.client().native_ptr(), topic.as_ptr(), partition);
            if from.is_null() {
                return false;
            }
            rd::rd_kafka_queue_forward(from, self.0.as_ptr());
            rd::rd_kafka_queue_destroy(from);
        }
        true
    }

    /// Adds up to `max` messages to `into`: the first to come within `timeout` and those
    /// waiting behind it. (`rd_kafka_consume_batch_queue` alone waits until it has `max` or
    /// `timeout` has passed: a quiet stream's message would wait out the timeout.) Returns
    /// early, maybe with none, when [`WorkerQueue::wake`] is called. A wake is a flag the
    /// next wait clears, so the wait comes first: a wake before it ends it, and one cleared
    /// by the read behind it came after a job its caller looks for next.
    pub(crate) fn read(&self, timeout: Duration, max: usize, into: &mut Vec<Fetched>) {
        if max > 0 && self.batch(timeout, 1, into) == 1 {
            self.batch(Duration::ZERO, max - 1, into);
        }
    }

    fn batch(&self, timeout: Duration, max: usize, into: &mut Vec<Fetched>) -> usize {
        into.reserve(max);
        let spare = into.spare_capacity_mut();
        let timeout = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `spare` has room for `max` pointers; librdkafka writes the first `n`, each
        // a message of ours until destroyed (`Fetched`'s drop).
        unsafe {
            let n = rd::rd_kafka_consume_batch_queue(self.0.as_ptr(), timeout, spare.as_mut_ptr().cast(), max);
            // -1: an error (none is raised for an application's queue).
            let n = usize::try_from(n).unwrap_or(0).min(max);
            into.set_len(into.len() + n);
            n
        }
    }

    /// Makes a [`WorkerQueue::read`] waiting now, or the next one, return at once.
    pub(crate) fn wake(&self) {
        // SAFETY: a valid queue.
        unsafe { rd::rd_kafka_queue_yield(self.0.as_ptr()) }
    }
}

impl Drop for WorkerQueue {
    fn drop(&mut self) {
        // SAFETY: ours, dropped once. Messages forwarded here after it is gone are discarded.
        unsafe { rd::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// A message (or a fetch error) read from a [`WorkerQueue`], destroyed when dropped.
/// `repr(transparent)`: a batch read writes the pointers straight into a `Vec<Fetched>`.
#[repr(transparent)]
pub(crate) struct Fetched(NonNull<rd::rd_kafka_message_t>);

// SAFETY: a consumed message is the application's alone until destroyed, from any thread.
unsafe impl Send for Fetched {}

impl Fetched {
    fn message(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: valid until dropped.
        unsafe { self.0.as_ref() }
    }

    /// Why the fetch failed, for an error rather than a message.
    pub(crate) fn error(&self) -> Option<KafkaError> {
        match self.message().err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR => None,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                Some(KafkaError::PartitionEOF(self.message().partition))
            }
            err => Some(KafkaError::MessageConsumption(RDKafkaErrorCode::from(err))),
        }
    }

    pub(crate) fn topic(&self) -> &[u8] {
        // SAFETY: a consumed message's topic handle and name live as long as the message.
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.message().rkt)).to_bytes() }
    }

    pub(crate) fn partition(&self) -> i32 {
        self.message().partition
    }

    pub(crate) fn offset(&self) -> i64 {
        self.message().offset
    }

    pub(crate) fn payload(&self) -> &[u8] {
        let m = self.message();
        bytes(m.payload, m.len).unwrap_or_default()
    }

    pub(crate) fn key(&self) -> Option<&[u8]> {
        let m = self.message();
        bytes(m.key, m.key_len)
    }

    /// Its timestamp in milliseconds, as `Timestamp::to_millis` gives it.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a valid message.
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.0.as_ptr(), &mut kind) };
        let available = kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ms != -1;
        available.then_some(ms)
    }

    pub(crate) fn headers(&self) -> Option<FetchedHeaders<'_>> {
        let mut headers = ptr::null_mut();
        // SAFETY: a valid message; the headers are its own, read while it lives.
        let err = unsafe { rd::rd_kafka_message_headers(self.0.as_ptr(), &mut headers) };
        (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && !headers.is_null())
            .then_some(FetchedHeaders { headers, _message: self })
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: ours, destroyed once.
        unsafe { rd::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

/// A fetched message's headers, read where they are.
pub(crate) struct FetchedHeaders<'a> {
    headers: *mut rd::rd_kafka_headers_t,
    _message: &'a Fetched,
}

impl Headers for FetchedHeaders<'_> {
    fn count(&self) -> usize {
        // SAFETY: valid while the message is.
        unsafe { rd::rd_kafka_header_cnt(self.headers) }
    }

    fn try_get(&self, index: usize) -> Option<Header<'_, &[u8]>> {
        let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0);
        // SAFETY: valid while the message is; librdkafka hands out a C string for the name
        // and the value's bytes (null for a header without one), both the message's.
        unsafe {
            let err = rd::rd_kafka_header_get_all(self.headers, index, &mut name, &mut value, &mut size);
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            // A name that is not UTF-8 is no header nhid writes: read as an empty name,
            // the walk goes on to the headers after it (`None` would end it there).
            let key = CStr::from_ptr(name).to_str().unwrap_or_default();
            Some(Header { key, value: bytes(value.cast_mut(), size) })
        }
    }
}

/// The `len` bytes at `data`, which a message owns; `None` for a null pointer.
fn bytes<'a>(data: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: librdkafka's pointer and length for bytes the message holds while it lives,
    // which the callers' borrows of it bound.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::consumer::BaseConsumer;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    use super::*;

    /// Longer than any wait this test should see: a read that waits it out failed.
    const LONG: Duration = Duration::from_secs(30);

    /// A forwarded partition's messages are read where they are, as soon as they come (not
    /// after a full batch or the timeout), and a wake ends a read waiting on nothing. On
    /// librdkafka's mock cluster: a real consumer, fetching from a broker in process.
    #[test]
    fn a_read_takes_what_comes_at_once_and_a_wake_ends_a_wait() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("audit", 2, 1).expect("topic");
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().expect("producer");
        for (i, payload) in ["a", "b", "c"].iter().enumerate() {
            let key = format!("k{i}");
            let record = BaseRecord::to("audit").partition(1).key(&key).payload(*payload);
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(LONG).expect("flush");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "queue-test")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let queue = WorkerQueue::new(&consumer).expect("queue");
        assert!(queue.forward(&consumer, "audit", 1));
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset("audit", 1, Offset::Beginning).expect("partition");
        consumer.assign(&assignment).expect("assign");

        let started = Instant::now();
        let mut read = Vec::new();
        while read.len() < 3 && started.elapsed() < LONG {
            queue.read(LONG, 256, &mut read);
        }
        assert!(started.elapsed() < LONG, "the read waited for a full batch");
        let seen: Vec<_> = read
            .iter()
            .map(|m| {
                assert!(m.error().is_none());
                assert_eq!((m.topic(), m.partition()), (&b"audit"[..], 1));
                (m.offset(), m.payload(), m.key(), m.timestamp().is_some())
            })
            .collect();
        assert_eq!(
            seen,
            [
                (0, &b"a"[..], Some(&b"k0"[..]), true),
                (1, &b"b"[..], Some(&b"k1"[..]), true),
                (2, &b"c"[..], Some(&b"k2"[..]), true)
            ]
        );
        assert!(read[0].headers().is_none());

        let waiting = Instant::now();
        let mut more = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| queue.read(LONG, 256, &mut more));
            queue.wake();
        });
        assert!(more.is_empty());
        assert!(waiting.elapsed() < LONG, "the wake did not end the read");
        // librdkafka's messages and queue go before their consumer.
        drop((read, queue));
    }
}
