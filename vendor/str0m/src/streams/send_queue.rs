use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::MediaTime;
use crate::pacer::{QueuePriority, QueueSnapshot};
use crate::rtp_::{SeqNo, Ssrc};
use crate::util::not_happening;

use super::RtpPacket;
use super::compact::CachedPacket;

// yunshi: queued packets are kept in compact form (`Queued`, 72 bytes instead of a 384-byte
// `RtpPacket`). An SFU hands a keyframe to every receiver's queue at once and the pacer lets
// it out over tens of milliseconds: 30-80 packets of 1080p per receiver at the same moment,
// and a queue keeps its capacity. The head is expanded into a full `RtpPacket` when it is
// peeked, and changes to it last until it is popped.
#[derive(Debug)]
pub(crate) struct SendQueue {
    queue: VecDeque<Queued>,
    /// The front of `queue`, expanded, once peeked.
    head: Option<RtpPacket>,
    total: TotalQueue,
    last_emitted: Option<Instant>,
}

/// A queued packet: its compact form and what a first send reads besides.
#[derive(Debug)]
struct Queued {
    packet: CachedPacket,
    seq_no: SeqNo,
    time: MediaTime,
    /// When it was enqueued (`not_happening` until the next `handle_timeout`).
    timestamp: Instant,
    ssrc: Ssrc,
    nackable: bool,
}

impl Queued {
    fn expand(&self) -> RtpPacket {
        let mut packet = self.packet.to_packet(self.seq_no, self.ssrc);
        packet.time = self.time;
        packet.timestamp = self.timestamp;
        packet.nackable = self.nackable;
        packet
    }
}

impl SendQueue {
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            head: None,
            total: TotalQueue::default(),
            last_emitted: None,
        }
    }

    pub fn push(&mut self, packet: RtpPacket) {
        // Every incoming packet must be timestamped withe a handle_timeout.
        // This sentinel value indicates it is needed.
        self.queue.push_back(Queued {
            seq_no: packet.seq_no,
            time: packet.time,
            timestamp: not_happening(),
            ssrc: packet.header.ssrc,
            nackable: packet.nackable,
            packet: CachedPacket::from_packet(packet),
        });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for q in self.queue.iter_mut().rev() {
            if q.timestamp != not_happening() {
                // all enqueued packets are timestamped.
                break;
            } else {
                q.timestamp = now;
                self.total.increase(now, q.packet.payload().len());
            }
        }
    }

    pub fn need_timeout(&self) -> bool {
        // Packets are timestamped contiguously from the front,
        // so checking the tail summarizes the entire queue's state.
        self.queue
            .back()
            .map(|p| p.timestamp == not_happening())
            .unwrap_or_default()
    }

    pub fn peek(&mut self) -> Option<&mut RtpPacket> {
        let front = self.queue.front()?;
        if front.timestamp == not_happening() {
            return None;
        }
        if self.head.is_none() {
            self.head = Some(front.expand());
        }
        self.head.as_mut()
    }

    pub fn pop(&mut self, now: Instant) -> Option<RtpPacket> {
        self.pop_sent(now).map(|(packet, _)| packet)
    }

    /// yunshi: pop the head, with the compact form it was queued in, for the RTX cache: the
    /// body it shares with other receivers' copies stays shared there (compacted again on
    /// sending, one receiver's packets after another, it would not be).
    pub(crate) fn pop_sent(&mut self, now: Instant) -> Option<(RtpPacket, CachedPacket)> {
        // Don't release packets without a timestamp.
        self.peek()?;

        // Unwraps are OK, because peek() above must have returned a value
        // for us to be here.
        let packet = self.head.take().unwrap();
        let compact = self.queue.pop_front().unwrap().packet;

        // Must be timestamped
        assert!(packet.timestamp != not_happening());

        let queue_time = now - packet.timestamp;
        self.total.decrease(now, packet.payload.len(), queue_time);
        self.last_emitted = Some(now);

        Some((packet, compact))
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The payload of the packet queued last.
    pub fn last_payload(&self) -> Option<&[u8]> {
        self.queue.back().map(|q| q.packet.payload().as_ref())
    }

    pub(crate) fn snapshot(&mut self, now: Instant) -> QueueSnapshot {
        self.total.move_time_forward(now);

        QueueSnapshot {
            created_at: now,
            byte_size: self.total.unsent_size,
            packet_count: self.total.unsent_count as u32,
            total_queue_time_origin: self.total.queue_time,
            last_emitted: self.last_emitted,
            first_unsent: self
                .queue
                .iter()
                .find(|q| q.timestamp != not_happening())
                .map(|q| q.timestamp),
            priority: if self.total.unsent_count > 0 {
                QueuePriority::Media
            } else {
                QueuePriority::Empty
            },
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.head = None;
        self.total.clear();
        self.last_emitted = None;
    }
}

// Total queue time in buffer. This lovely drawing explains how to add more time.
//
// -time--------------------------------------------------------->
//
// +--------------+
// |              |
// +--------------+
//      +---------+                          Already
//      |         |                           queued
//      +---------+                         durations
//          +-----+
//          |     |
//          +-----+
//                       +-+
//                       | |         <-----  Add next
//                       +-+                  packet
//
//
//
// +--------------+--------+
// |              |@@@@@@@@|
// +--------------+--------+
//      +---------+--------+                 The @ is
//      |         |@@@@@@@@|                  what's
//      +---------+--------+                  added
//          +-----+--------+
//          |     |@@@@@@@@|
//          +-----+--------+
//                       +-+
//                       |@|
//                       +-+
#[derive(Debug, Default)]
struct TotalQueue {
    /// Number of unsent packets.
    unsent_count: usize,
    /// The data size (bytes) of the unsent packets.
    unsent_size: usize,
    // /// When we last added some value to `queue_time`.
    // last: Option<Instant>,
    /// The total queue time of all the unsent packets.
    queue_time: Duration,
    // Timestamp of the last added packet.
    last: Option<Instant>,
}

impl TotalQueue {
    fn move_time_forward(&mut self, now: Instant) {
        if let Some(last) = self.last {
            assert!(self.unsent_count > 0);
            let from_last = now - last;
            self.queue_time += from_last * (self.unsent_count as u32);
            self.last = Some(now);
        } else {
            assert!(self.unsent_count == 0);
            assert!(self.unsent_size == 0);
            assert!(self.queue_time == Duration::ZERO);
        }
    }

    fn increase(&mut self, now: Instant, size: usize) {
        self.move_time_forward(now);
        self.unsent_count += 1;
        self.unsent_size += size;
        self.last = Some(now);
    }

    fn decrease(&mut self, now: Instant, size: usize, queue_time: Duration) {
        self.move_time_forward(now);

        self.unsent_count -= 1;
        self.unsent_size -= size;

        self.queue_time -= queue_time;

        if self.unsent_count == 0 {
            assert!(self.unsent_size == 0);
            self.queue_time = Duration::ZERO;
            self.last = None;
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod test {
    use crate::rtp_::MediaTime;
    use crate::rtp_::RtpHeader;

    use super::*;

    // yunshi: a queued packet takes 104 bytes, not the 384 of an `RtpPacket`.
    #[test]
    fn a_queued_packet_is_compact() {
        assert_eq!(std::mem::size_of::<Queued>(), 72);
        assert_eq!(std::mem::size_of::<RtpPacket>(), 384);
    }

    // yunshi: what goes in comes out, and a change to the peeked head lasts until its pop.
    #[test]
    fn a_packet_comes_out_as_it_went_in() {
        use crate::rtp_::ExtensionValues;
        let mut queue = SendQueue::new();
        let start = Instant::now();
        let header = RtpHeader {
            marker: true,
            payload_type: 96.into(),
            sequence_number: 7,
            timestamp: 123_456,
            ssrc: 42.into(),
            csrc_count: 1,
            csrc: [9; 15],
            ext_vals: ExtensionValues {
                audio_level: Some(-30),
                video_orientation: Some(crate::rtp_::VideoOrientation::Deg90),
                ..Default::default()
            },
            ..Default::default()
        };
        for seq in [7u64, 8] {
            queue.push(RtpPacket {
                seq_no: seq.into(),
                time: MediaTime::from_90khz(123_456),
                header: RtpHeader {
                    sequence_number: seq as u16,
                    ..header.clone()
                },
                payload: [1, 2, 3].into(),
                vp8_patch: None,
                timestamp: start,
                last_sender_info: None,
                nackable: true,
            });
        }
        queue.handle_timeout(start);

        let head = queue.peek().expect("timestamped");
        head.header.ext_vals.rid_repair = None;
        head.time = MediaTime::new(123_456, crate::rtp_::Frequency::NINETY_KHZ);
        head.nackable = false;
        assert_eq!(queue.last_payload(), Some(&[1u8, 2, 3][..]));

        let first = queue.pop(start).expect("head");
        assert_eq!(*first.seq_no, 7);
        assert!(!first.nackable, "the change to the peeked head is kept");
        assert_eq!(first.timestamp, start);
        assert_eq!(first.header.marker, true);
        assert_eq!(first.header.payload_type, 96.into());
        assert_eq!(first.header.sequence_number, 7);
        assert_eq!(first.header.timestamp, 123_456);
        assert_eq!(first.header.ssrc, 42.into());
        assert_eq!(first.header.csrc_count, 1);
        assert_eq!(first.header.csrc, [9; 15]);
        assert_eq!(first.header.ext_vals.audio_level, Some(-30));
        assert_eq!(
            first.header.ext_vals.video_orientation,
            Some(crate::rtp_::VideoOrientation::Deg90)
        );
        assert_eq!(&first.payload[..], &[1, 2, 3]);

        let second = queue.pop(start).expect("second");
        assert_eq!(*second.seq_no, 8);
        assert!(second.nackable);
        assert_eq!(second.time, MediaTime::from_90khz(123_456));
        assert!(queue.pop(start).is_none());
    }

    // yunshi: receivers' queues that take the same forwarded packets, one packet to every
    // receiver after another, hand the RTX cache compact packets that share one body each,
    // though they are sent one receiver's packets after another.
    #[test]
    fn receivers_sending_in_turn_keep_the_shared_bodies() {
        let start = Instant::now();
        let payloads: Vec<std::sync::Arc<[u8]>> = (0..3u8).map(|i| vec![i; 100].into()).collect();
        let mut queues: Vec<SendQueue> = (0..2).map(|_| SendQueue::new()).collect();
        for (n, payload) in payloads.iter().enumerate() {
            for (r, queue) in queues.iter_mut().enumerate() {
                queue.push(RtpPacket {
                    seq_no: (n as u64 + 100 * r as u64).into(),
                    time: MediaTime::from_90khz(0),
                    header: RtpHeader {
                        ssrc: (r as u32).into(),
                        ..Default::default()
                    },
                    payload: payload.clone(),
                    vp8_patch: None,
                    timestamp: start,
                    last_sender_info: None,
                    nackable: true,
                });
            }
        }
        let mut sent: Vec<Vec<CachedPacket>> = Vec::new();
        for queue in &mut queues {
            queue.handle_timeout(start);
            let mut mine = Vec::new();
            while let Some((packet, compact)) = queue.pop_sent(start) {
                assert_eq!(packet.payload, *compact.payload());
                mine.push(compact);
            }
            sent.push(mine);
        }
        for n in 0..payloads.len() {
            assert!(sent[0][n].shares_body_with(&sent[1][n]), "packet {n}");
            assert!(std::sync::Arc::ptr_eq(sent[0][n].payload(), &payloads[n]));
        }
        assert!(!sent[0][0].shares_body_with(&sent[0][1]));
    }

    #[test]
    fn peek_pop_no_timestamp() {
        let mut queue = SendQueue::new();

        queue.push(RtpPacket {
            seq_no: 0.into(),
            time: MediaTime::from_90khz(10),
            header: RtpHeader::default(),
            payload: [].into(),
            vp8_patch: None,
            timestamp: Instant::now(),
            last_sender_info: None,
            nackable: true,
        });

        assert!(queue.peek().is_none());
        assert!(queue.pop(Instant::now()).is_none());
        assert!(queue.need_timeout());

        let snapshot_at = Instant::now() + Duration::from_secs(3);
        assert_eq!(
            queue.snapshot(snapshot_at),
            QueueSnapshot {
                created_at: snapshot_at,
                packet_count: 0,
                byte_size: 0,
                total_queue_time_origin: Duration::ZERO,
                first_unsent: None,
                priority: QueuePriority::Empty,
                ..Default::default()
            }
        );
    }

    #[test]
    fn peek_pop_after_timestamp() {
        let mut queue = SendQueue::new();

        let start = Instant::now();

        queue.push(RtpPacket {
            seq_no: 0.into(),
            time: MediaTime::from_90khz(10),
            header: RtpHeader::default(),
            payload: [42, 42].into(),
            vp8_patch: None,
            timestamp: start,
            last_sender_info: None,
            nackable: true,
        });

        queue.handle_timeout(start);

        assert!(queue.peek().is_some());
        assert!(!queue.need_timeout());

        let snapshot_at = start + Duration::from_secs(3);
        assert_eq!(
            queue.snapshot(snapshot_at),
            QueueSnapshot {
                created_at: snapshot_at,
                packet_count: 1,
                byte_size: 2,
                total_queue_time_origin: Duration::from_secs(3),
                first_unsent: Some(start),
                priority: QueuePriority::Media,
                ..Default::default()
            }
        );

        assert!(queue.pop(Instant::now()).is_some());
    }

    #[test]
    fn untimed_packets_are_contiguous_at_tail() {
        let mut queue = SendQueue::new();
        let start = Instant::now();

        queue.push(RtpPacket {
            seq_no: 0.into(),
            time: MediaTime::from_90khz(10),
            header: RtpHeader::default(),
            payload: [0; 10].into(),
            vp8_patch: None,
            timestamp: start,
            last_sender_info: None,
            nackable: true,
        });
        queue.push(RtpPacket {
            seq_no: 1.into(),
            time: MediaTime::from_90khz(20),
            header: RtpHeader::default(),
            payload: [1; 10].into(),
            vp8_patch: None,
            timestamp: start,
            last_sender_info: None,
            nackable: true,
        });
        queue.push(RtpPacket {
            seq_no: 2.into(),
            time: MediaTime::from_90khz(20),
            header: RtpHeader::default(),
            payload: [1; 10].into(),
            vp8_patch: None,
            timestamp: start,
            last_sender_info: None,
            nackable: true,
        });

        assert!(
            queue.queue.iter().all(|q| q.timestamp == not_happening()),
            "expect every new packet's timestamp to start with the sentinel value"
        );
        assert!(queue.need_timeout());

        let now = start + Duration::from_millis(10);
        queue.handle_timeout(now);

        assert!(
            queue.queue.iter().all(|q| q.timestamp != not_happening()),
            "expect handle_timeout to have timestamped every packet"
        );
        assert!(!queue.need_timeout());
    }

    #[test]
    fn total_queue() {
        let mut total_queue = TotalQueue::default();
        let now = Instant::now();
        total_queue.increase(now, 0);
        total_queue.increase(now, 1);
        total_queue.decrease(now, 1, Duration::ZERO);
        // Doesn't panic
        total_queue.move_time_forward(now + Duration::from_millis(1));
    }
}
