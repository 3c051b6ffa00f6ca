//! yunshi-loadtest: synthetic WebRTC endpoints (str0m, real ICE/DTLS/SRTP) that publish real
//! H.264 and Opus and check what arrives, many per thread, for capacity measurements.
//!
//! How it is built: signalling (HTTP, WebSocket) runs on a control thread; media runs on
//! worker threads, each an epoll loop over its endpoints' sockets with a timer heap, so a slow
//! HTTP call never stalls a packet. Receivers account loss, jitter and latency per stream
//! (`stream_stats`), latency from the abs-capture-time header extension the publisher stamps
//! and the SFU carries through.

pub mod ceiling;
pub mod h264;
pub mod histogram;
pub mod http;
pub mod janus;
pub mod media;
pub mod peer;
pub mod plot;
pub mod poller;
pub mod proc_stat;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod server;
pub mod stream_stats;
pub mod udp_recv;
pub mod worker;
