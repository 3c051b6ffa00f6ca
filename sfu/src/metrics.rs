//! Media-plane metrics. Counters are resolved to their label children once per worker, so the
//! hot path only does atomic adds.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub rooms: IntGauge,
    pub participants: IntGauge,
    pub tracks: IntGauge,
    pub peers: IntGauge,
    pub packets: IntCounterVec,
    pub bytes: IntCounterVec,
    pub nacks: IntCounterVec,
    pub plis: IntCounterVec,
    pub dropped: IntCounterVec,
    pub dependency_descriptors: IntCounterVec,
    pub forward_latency: Histogram,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str| {
        let g = IntGauge::new(name, help).expect("valid gauge");
        registry.register(Box::new(g.clone())).expect("unique gauge");
        g
    };
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
        registry.register(Box::new(c.clone())).expect("unique counter");
        c
    };
    let rooms = gauge("yunshi_rooms", "Rooms with at least one participant");
    let participants = gauge("yunshi_participants", "Connected participants (browser, WHIP, WHEP)");
    let tracks = gauge("yunshi_tracks", "Published tracks");
    let peers = gauge("yunshi_peer_connections", "Peer connections on media workers");
    let packets = counter(
        "yunshi_packets_total",
        "RTP packets by direction and kind (audio, video; out also fec: ULPFEC parity sent)",
        &["direction", "kind"],
    );
    let bytes = counter("yunshi_bytes_total", "RTP payload bytes by direction and kind", &["direction", "kind"]);
    let nacks = counter("yunshi_nacks_total", "NACKs by direction (rx = received from subscribers)", &["direction"]);
    let plis = counter("yunshi_plis_total", "Keyframe requests (PLI/FIR) by direction", &["direction"]);
    let dropped = counter("yunshi_dropped_packets_total", "Datagrams dropped, by reason", &["reason"]);
    let dependency_descriptors = counter(
        "yunshi_dependency_descriptors_total",
        "Dependency Descriptor header extensions received, by result (read; unreadable: no structure yet, or corrupt)",
        &["result"],
    );
    let forward_latency = Histogram::with_opts(
        HistogramOpts::new("yunshi_forward_latency_seconds", "Receive to hand-off to the subscriber's send queue")
            .buckets(vec![0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05]),
    )
    .expect("valid histogram");
    registry.register(Box::new(forward_latency.clone())).expect("unique histogram");
    Metrics {
        registry,
        rooms,
        participants,
        tracks,
        peers,
        packets,
        bytes,
        nacks,
        plis,
        dropped,
        dependency_descriptors,
        forward_latency,
    }
});

/// Label children resolved once; cloning a counter shares the same atomic.
pub struct WorkerMetrics {
    pub packets_in_audio: IntCounter,
    pub packets_in_video: IntCounter,
    pub bytes_in_audio: IntCounter,
    pub bytes_in_video: IntCounter,
    pub packets_out_audio: IntCounter,
    pub packets_out_video: IntCounter,
    pub bytes_out_audio: IntCounter,
    pub bytes_out_video: IntCounter,
    pub plis_in: IntCounter,
    pub plis_out: IntCounter,
    pub fec_packets_out: IntCounter,
    pub dropped_malformed: IntCounter,
    pub dropped_unknown_peer: IntCounter,
    pub dd_read: IntCounter,
    pub dd_unreadable: IntCounter,
    pub forward_latency: Histogram,
}

impl WorkerMetrics {
    pub fn new() -> Self {
        let m = &*METRICS;
        Self {
            packets_in_audio: m.packets.with_label_values(&["in", "audio"]),
            packets_in_video: m.packets.with_label_values(&["in", "video"]),
            bytes_in_audio: m.bytes.with_label_values(&["in", "audio"]),
            bytes_in_video: m.bytes.with_label_values(&["in", "video"]),
            packets_out_audio: m.packets.with_label_values(&["out", "audio"]),
            packets_out_video: m.packets.with_label_values(&["out", "video"]),
            bytes_out_audio: m.bytes.with_label_values(&["out", "audio"]),
            bytes_out_video: m.bytes.with_label_values(&["out", "video"]),
            plis_in: m.plis.with_label_values(&["rx"]),
            plis_out: m.plis.with_label_values(&["tx"]),
            fec_packets_out: m.packets.with_label_values(&["out", "fec"]),
            dropped_malformed: m.dropped.with_label_values(&["malformed"]),
            dropped_unknown_peer: m.dropped.with_label_values(&["unknown_peer"]),
            dd_read: m.dependency_descriptors.with_label_values(&["read"]),
            dd_unreadable: m.dependency_descriptors.with_label_values(&["unreadable"]),
            forward_latency: m.forward_latency.clone(),
        }
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
