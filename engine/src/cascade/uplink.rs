//! The link up to the parent: a thread that dials the parent's `/api/v1/cascade/link`, says
//! hello, sends a heartbeat every half second and the subtree whenever it changes, and dials again
//! (0.5 s, doubling to 2 s) whenever the link fails. One per node, so a plain blocking
//! WebSocket on its own thread is the simplest thing that works; it never touches media.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use tungstenite::{Message, WebSocket};

use crate::cascade::command::ControlAction;
use crate::cascade::health::{DOWN_AFTER, HEARTBEAT};
use crate::cascade::protocol::{LinkMessage, NodeView};
use crate::cascade::token;

#[derive(Clone, Debug)]
pub struct UplinkConfig {
    pub node: String,
    /// `http://host:port` (or `ws://`) of the parent's API.
    pub parent_url: String,
    pub secret: Vec<u8>,
}

#[derive(Debug)]
pub enum UplinkEvent {
    Welcomed { parent: String },
    Heard { rtt: Option<Duration> },
    Lost { reason: String },
    Command { id: u64, target: String, room: String, action: ControlAction, by: String },
}

/// What the owner sends up.
#[derive(Debug)]
pub enum Outgoing {
    /// The current subtree (kept, and sent again after every reconnect).
    Subtree(Vec<NodeView>),
    /// Sent once if the link is up; dropped otherwise (an acknowledgement on a connection that
    /// died is useless: the parent has already answered "no acknowledgement").
    Message(LinkMessage),
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Run the uplink until `subtree` is disconnected (the owner is gone).
pub fn spawn(
    cfg: UplinkConfig,
    events: impl Fn(UplinkEvent) + Send + 'static,
    subtree: Receiver<Outgoing>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("cascade-uplink".into()).spawn(move || {
        let mut latest = Vec::new();
        let mut retry = FIRST_RETRY;
        loop {
            let started = Instant::now();
            let result = session(&cfg, &events, &subtree, &mut latest);
            match result {
                Ok(()) => return,
                Err(reason) => events(UplinkEvent::Lost { reason }),
            }
            // A link that stayed up a while starts again from the short wait.
            retry = if started.elapsed() > Duration::from_secs(10) { FIRST_RETRY } else { retry };
            std::thread::sleep(retry);
            retry = (retry * 2).min(MAX_RETRY);
        }
    })
}

/// The link URL for a parent API address.
pub fn link_url(parent: &str, token: &str) -> Result<String, String> {
    let rest = parent
        .strip_prefix("http://")
        .or_else(|| parent.strip_prefix("ws://"))
        .ok_or_else(|| format!("cascade parent {parent:?}: use http://host:port (TLS belongs to a proxy in front)"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!("cascade parent {parent:?}: expected http://host:port"));
    }
    Ok(format!("ws://{host}/api/v1/cascade/link?token={token}"))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One connection, until it fails (Err) or the owner is gone (Ok).
fn session(
    cfg: &UplinkConfig,
    events: &impl Fn(UplinkEvent),
    subtree: &Receiver<Outgoing>,
    latest: &mut Vec<NodeView>,
) -> Result<(), String> {
    // Take the newest subtree even while disconnected, so the first report is current.
    if drain(subtree, latest, &mut Vec::new())? {
        return Ok(());
    }
    let url = link_url(&cfg.parent_url, &token::mint(&cfg.secret, &cfg.node, now_secs()))?;
    let host = url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_string();
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, DOWN_AFTER).map_err(|e| format!("connect {host}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(DOWN_AFTER)).map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).ok();
    let (mut ws, _) = tungstenite::client(url.as_str(), tcp).map_err(|e| format!("handshake with {host}: {e}"))?;

    send(&mut ws, &LinkMessage::Hello { node: cfg.node.clone() })?;
    let deadline = Instant::now() + DOWN_AFTER;
    let parent = loop {
        match read(&mut ws)? {
            Some(LinkMessage::Welcome { node }) => break node,
            Some(LinkMessage::Error { code, message }) => return Err(format!("parent refused: {code}: {message}")),
            _ if Instant::now() > deadline => return Err("no welcome from the parent".into()),
            _ => {}
        }
    };
    events(UplinkEvent::Welcomed { parent });
    send(&mut ws, &LinkMessage::Subtree { children: latest.clone() })?;

    let mut seq = 0u64;
    let mut ping_sent: Option<(u64, Instant)> = None;
    let mut next_ping = Instant::now();
    let mut last_heard = Instant::now();
    let mut rtt: Option<Duration> = None;
    loop {
        let now = Instant::now();
        if now >= next_ping {
            seq += 1;
            send(&mut ws, &LinkMessage::Ping { seq, rtt_ms: rtt.map(|d| d.as_secs_f64() * 1000.0) })?;
            ping_sent = Some((seq, now));
            next_ping = now + HEARTBEAT;
        }
        if let Some(msg) = read(&mut ws)? {
            last_heard = Instant::now();
            match msg {
                LinkMessage::Pong { seq: s } => {
                    if let Some((_, at)) = ping_sent.filter(|(q, _)| *q == s) {
                        rtt = Some(at.elapsed());
                    }
                    events(UplinkEvent::Heard { rtt });
                }
                LinkMessage::Error { code, message } => {
                    return Err(format!("parent closed the link: {code}: {message}"))
                }
                LinkMessage::Command { id, target, room, action, by } => {
                    events(UplinkEvent::Command { id, target, room, action, by });
                }
                _ => events(UplinkEvent::Heard { rtt: None }),
            }
        }
        if last_heard.elapsed() >= DOWN_AFTER {
            return Err(format!("parent silent for {} ms", last_heard.elapsed().as_millis()));
        }
        let before = latest.clone();
        let mut messages = Vec::new();
        if drain(subtree, latest, &mut messages)? {
            let _ = ws.close(None);
            return Ok(());
        }
        if *latest != before {
            send(&mut ws, &LinkMessage::Subtree { children: latest.clone() })?;
        }
        for m in &messages {
            send(&mut ws, m)?;
        }
    }
}

/// Newest subtree into `latest`, messages to send into `messages`; true if the owner has gone.
fn drain(rx: &Receiver<Outgoing>, latest: &mut Vec<NodeView>, messages: &mut Vec<LinkMessage>) -> Result<bool, String> {
    loop {
        match rx.try_recv() {
            Ok(Outgoing::Subtree(v)) => *latest = v,
            Ok(Outgoing::Message(m)) => messages.push(m),
            Err(TryRecvError::Empty) => return Ok(false),
            Err(TryRecvError::Disconnected) => return Ok(true),
        }
    }
}

fn send(ws: &mut WebSocket<TcpStream>, m: &LinkMessage) -> Result<(), String> {
    let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
    ws.send(Message::text(text)).map_err(|e| format!("send: {e}"))
}

/// One message if one arrived within the socket's read timeout.
fn read(ws: &mut WebSocket<TcpStream>) -> Result<Option<LinkMessage>, String> {
    match ws.read() {
        Ok(Message::Text(t)) => Ok(serde_json::from_str(t.as_str()).ok()),
        Ok(Message::Close(_)) => Err("parent closed the connection".into()),
        Ok(_) => Ok(None),
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_addresses() {
        assert_eq!(link_url("http://10.0.0.1:8080", "t").unwrap(), "ws://10.0.0.1:8080/api/v1/cascade/link?token=t");
        assert_eq!(link_url("ws://city:80/", "t").unwrap(), "ws://city:80/api/v1/cascade/link?token=t");
        assert!(link_url("https://city", "t").is_err());
        assert!(link_url("http://city/base", "t").is_err());
        assert!(link_url("http://", "t").is_err());
    }
}
