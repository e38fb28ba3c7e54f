//! Which input offset may be committed: at-least-once bookkeeping for one partition.
//!
//! A message is done when it has been processed and every message it caused (alerts,
//! actions, dead letters, lane copies) has been acknowledged by the broker. The committable
//! offset is the first message not yet done, so a crash re-reads everything whose effects
//! might not have reached the broker, and never skips one that did not.
//!
//! Most messages cause nothing and are done as soon as they are processed, so only messages
//! with outputs in flight are kept: everything before the first of them is done.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct Progress {
    /// The offset after the last processed message; `None` before the first one.
    processed_next: Option<i64>,
    /// Processed messages whose outputs are not all acknowledged: (offset, outputs left).
    pending: VecDeque<(i64, u32)>,
    /// Offsets whose outputs failed for good; they hold the commit back forever.
    failed: u64,
    /// The first message processed (in this assignment).
    first: Option<i64>,
}

impl Progress {
    /// A message was processed and sent `outputs` messages; called in offset order.
    pub fn processed(&mut self, offset: i64, outputs: u32) {
        debug_assert!(self.processed_next.is_none_or(|next| offset >= next), "offsets go backwards");
        if outputs > 0 {
            self.pending.push_back((offset, outputs));
        }
        self.first.get_or_insert(offset);
        self.processed_next = Some(offset + 1);
    }

    /// `outputs` more messages of the processed message at `offset` were sent: the
    /// changelog's records of the state as of it.
    pub fn sent(&mut self, offset: i64, outputs: u32) {
        if outputs == 0 {
            return;
        }
        debug_assert!(self.processed_next.is_some_and(|next| offset < next), "not processed yet");
        match self.pending.binary_search_by_key(&offset, |&(o, _)| o) {
            Ok(i) => self.pending[i].1 += outputs,
            Err(i) => self.pending.insert(i, (offset, outputs)),
        }
    }

    /// The offset after the last processed message (held ones included).
    pub fn processed_next(&self) -> Option<i64> {
        self.processed_next
    }

    /// A message registered with one output of its own (held back before processing) was
    /// processed and sent `outputs` messages: they replace it.
    pub fn released(&mut self, offset: i64, outputs: u32) {
        if let Ok(i) = self.pending.binary_search_by_key(&offset, |&(o, _)| o) {
            self.pending[i].1 += outputs;
        }
        self.acknowledged(offset);
    }

    /// One output of the message at `offset` was acknowledged by the broker.
    pub fn acknowledged(&mut self, offset: i64) {
        let Ok(i) = self.pending.binary_search_by_key(&offset, |&(o, _)| o) else {
            debug_assert!(false, "acknowledgement for an offset with nothing in flight");
            return;
        };
        self.pending[i].1 -= 1;
        while self.pending.front().is_some_and(|&(_, left)| left == 0) {
            self.pending.pop_front();
        }
    }

    /// An output of the message at `offset` could not be delivered: its offset is never
    /// committed, so the message is read again after a restart.
    pub fn failed(&mut self, _offset: i64) {
        self.failed += 1;
    }

    /// The offset to commit (the next one to read), if any message was processed.
    pub fn committable(&self) -> Option<i64> {
        self.pending.front().map(|&(offset, _)| offset).or(self.processed_next)
    }

    /// The first message processed (in this assignment).
    pub fn first(&self) -> Option<i64> {
        self.first
    }

    /// Whether the message at `offset` was processed here.
    pub fn was_processed(&self, offset: i64) -> bool {
        self.first.is_some_and(|first| offset >= first) && self.processed_next.is_some_and(|next| offset < next)
    }

    /// Messages with outputs of their own not yet acknowledged (held ones count one).
    pub fn unfinished(&self) -> usize {
        self.pending.iter().filter(|&&(_, left)| left > 0).count()
    }

    /// Outputs sent and not yet acknowledged (failed ones included).
    pub fn in_flight(&self) -> u64 {
        self.pending.iter().map(|&(_, left)| u64::from(left)).sum()
    }

    pub fn has_failed(&self) -> bool {
        self.failed > 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nothing_processed_commits_nothing() {
        assert_eq!(Progress::default().committable(), None);
    }

    #[test]
    fn messages_without_outputs_are_done_when_processed() {
        let mut p = Progress::default();
        p.processed(10, 0);
        p.processed(11, 0);
        assert_eq!(p.committable(), Some(12));
    }

    #[test]
    fn an_unacknowledged_output_holds_back_later_messages() {
        let mut p = Progress::default();
        p.processed(10, 0);
        p.processed(11, 2);
        p.processed(12, 0);
        p.processed(13, 1);
        assert_eq!(p.committable(), Some(11));
        p.acknowledged(13);
        assert_eq!(p.committable(), Some(11), "a later ack does not release an earlier message");
        p.acknowledged(11);
        assert_eq!(p.committable(), Some(11));
        p.acknowledged(11);
        assert_eq!(p.committable(), Some(14));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn a_held_message_is_not_committed_past_until_processed_and_its_outputs_acknowledged() {
        let mut p = Progress::default();
        p.processed(10, 1);
        p.processed(11, 0);
        p.processed(12, 1);
        assert_eq!(p.committable(), Some(10));
        p.released(12, 0);
        assert_eq!(p.committable(), Some(10), "processed out of order, the earlier one still held");
        p.released(10, 2);
        assert_eq!(p.committable(), Some(10), "its outputs in flight");
        p.acknowledged(10);
        p.acknowledged(10);
        assert_eq!(p.committable(), Some(13));
    }

    #[test]
    fn changelog_records_sent_after_later_messages_hold_the_commit_at_their_message() {
        let mut p = Progress::default();
        p.processed(10, 0);
        p.processed(11, 1);
        p.processed(12, 0);
        // The state as of 12 goes to the changelog, while 13 is processed with an output.
        p.processed(13, 1);
        p.sent(12, 2);
        p.acknowledged(11);
        assert_eq!(p.committable(), Some(12), "not past the state's records");
        p.acknowledged(12);
        p.acknowledged(12);
        assert_eq!(p.committable(), Some(13));
        p.sent(13, 1);
        p.acknowledged(13);
        assert_eq!(p.committable(), Some(13), "one record of 13 still in flight");
        p.acknowledged(13);
        assert_eq!(p.committable(), Some(14));
    }

    #[test]
    fn messages_finished_out_of_order_are_not_counted_unfinished() {
        let mut p = Progress::default();
        assert!(!p.was_processed(0));
        p.processed(10, 1);
        p.processed(11, 1);
        p.processed(12, 2);
        p.acknowledged(11);
        assert_eq!(p.unfinished(), 2, "11 is done though 10 holds it in the queue");
        assert!(p.was_processed(10) && p.was_processed(12) && !p.was_processed(9) && !p.was_processed(13));
    }

    #[test]
    fn a_failed_output_is_never_committed_past() {
        let mut p = Progress::default();
        p.processed(5, 1);
        p.processed(6, 0);
        p.failed(5);
        assert!(p.has_failed());
        assert_eq!(p.committable(), Some(5));
    }

    proptest! {
        /// Whatever order acknowledgements arrive in, the committable offset never passes
        /// a message with an output in flight, never goes backwards, and reaches the end
        /// once everything is acknowledged.
        #[test]
        fn commit_never_passes_an_unacknowledged_output(
            outputs in prop::collection::vec(0u32..3, 1..40),
            seed in any::<u64>(),
        ) {
            let mut p = Progress::default();
            let mut acks = Vec::new();
            for (offset, &n) in outputs.iter().enumerate() {
                p.processed(offset as i64, n);
                acks.extend(std::iter::repeat_n(offset as i64, n as usize));
            }
            // A seeded shuffle: deliveries complete in any order across partitions' batches.
            let mut x = seed | 1;
            for i in (1..acks.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                acks.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut left: Vec<u32> = outputs.clone();
            let mut last = p.committable().unwrap();
            for offset in acks {
                p.acknowledged(offset);
                left[offset as usize] -= 1;
                let c = p.committable().unwrap();
                prop_assert!(c >= last);
                let first_open = left.iter().position(|&n| n > 0).map_or(outputs.len() as i64, |i| i as i64);
                prop_assert_eq!(c, first_open);
                last = c;
            }
            prop_assert_eq!(p.committable(), Some(outputs.len() as i64));
        }
    }
}
