//! Video FEC in the SDP: str0m negotiates no `red`/`ulpfec` for video, so the subscriber's
//! SDP is completed here, as text. Chromium offers `red/90000` and `ulpfec/90000` in every
//! video m-line; a WHEP answer takes them over, a server offer proposes payload types that are
//! free, and the client's answer says what it accepted.

use std::collections::HashMap;

/// The payload types of RED and ULPFEC in one video m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecPts {
    pub red: u8,
    pub ulpfec: u8,
}

/// One m-section: its line range in the SDP and what it says.
struct Section<'a> {
    lines: std::ops::Range<usize>,
    video: bool,
    port_zero: bool,
    formats: Vec<u8>,
    mid: Option<&'a str>,
    rtpmaps: Vec<(u8, &'a str)>,
}

fn sections<'a>(lines: &[&'a str]) -> Vec<Section<'a>> {
    let mut out: Vec<Section> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(m) = line.strip_prefix("m=") {
            if let Some(last) = out.last_mut() {
                last.lines.end = i;
            }
            let mut words = m.split_whitespace();
            let video = words.next() == Some("video");
            let port_zero = words.next() == Some("0");
            let formats = words.skip(1).filter_map(|w| w.parse().ok()).collect();
            out.push(Section { lines: i..lines.len(), video, port_zero, formats, mid: None, rtpmaps: Vec::new() });
        } else if let Some(s) = out.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                s.mid = Some(mid.trim());
            } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let mut it = map.splitn(2, ' ');
                if let (Some(Ok(pt)), Some(name)) = (it.next().map(str::parse::<u8>), it.next()) {
                    s.rtpmaps.push((pt, name.trim()));
                }
            }
        }
    }
    out
}

fn split_lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").flat_map(|l| l.split('\n')).filter(|l| !l.is_empty()).collect()
}

/// The RED and ULPFEC payload types each video m-line (by mid) lists, where it lists both.
pub fn negotiated(sdp: &str) -> HashMap<String, FecPts> {
    let lines = split_lines(sdp);
    let mut out = HashMap::new();
    for s in sections(&lines) {
        let (Some(mid), true, false) = (s.mid, s.video, s.port_zero) else { continue };
        let find = |name: &str| {
            s.rtpmaps.iter().find(|(pt, n)| n.eq_ignore_ascii_case(name) && s.formats.contains(pt)).map(|(pt, _)| *pt)
        };
        if let (Some(red), Some(ulpfec)) = (find("red/90000"), find("ulpfec/90000")) {
            out.insert(mid.to_string(), FecPts { red, ulpfec });
        }
    }
    out
}

/// Two payload types no m-line of `sdp` uses (dynamic range first), for a server offer.
pub fn unused_pts(sdp: &str) -> Option<FecPts> {
    let lines = split_lines(sdp);
    let used: Vec<u8> = sections(&lines).iter().flat_map(|s| s.formats.clone()).collect();
    let mut free = (96..=127u8).rev().chain((35..=63u8).rev()).filter(|pt| !used.contains(pt));
    Some(FecPts { red: free.next()?, ulpfec: free.next()? })
}

/// Whether no m-line of `sdp` uses either of `pts`.
pub fn pts_free(sdp: &str, pts: FecPts) -> bool {
    let lines = split_lines(sdp);
    !sections(&lines).iter().any(|s| s.formats.contains(&pts.red) || s.formats.contains(&pts.ulpfec))
}

/// `sdp` with RED and ULPFEC added to the video m-lines named in `pts` (those that do not list
/// them already). Line endings are CRLF, as SDP wants.
pub fn add(sdp: &str, pts: &HashMap<String, FecPts>) -> String {
    let lines = split_lines(sdp);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // Insert from the end so earlier line numbers stay valid.
    for s in sections(&lines).iter().rev() {
        let (Some(mid), true, false) = (s.mid, s.video, s.port_zero) else { continue };
        let Some(p) = pts.get(mid) else { continue };
        if s.formats.contains(&p.red) || s.formats.contains(&p.ulpfec) {
            continue;
        }
        let at = s
            .lines
            .clone()
            .rev()
            .find(|&i| ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].iter().any(|k| lines[i].starts_with(k)))
            .map_or(s.lines.end, |i| i + 1);
        out.insert(at, format!("a=rtpmap:{} ulpfec/90000", p.ulpfec));
        out.insert(at, format!("a=rtpmap:{} red/90000", p.red));
        out[s.lines.start] = format!("{} {} {}", out[s.lines.start], p.red, p.ulpfec);
    }
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 118 119 120\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n\
        a=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:118 red/90000\r\n\
        a=rtpmap:119 rtx/90000\r\na=fmtp:119 apt=118\r\na=rtpmap:120 ulpfec/90000\r\na=sendrecv\r\n";

    const STR0M_ANSWER: &str = "v=0\r\no=- 3 4 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n\
        a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=sendonly\r\n";

    #[test]
    fn chrome_offer_names_its_fec_payload_types() {
        let pts = negotiated(CHROME_OFFER);
        assert_eq!(pts.len(), 1, "audio RED is not video FEC");
        assert_eq!(pts["1"], FecPts { red: 118, ulpfec: 120 });
    }

    #[test]
    fn answer_gains_them_once_and_stays_parseable() {
        let pts = negotiated(CHROME_OFFER);
        let answer = add(STR0M_ANSWER, &pts);
        assert!(answer.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97 118 120\r\n"), "{answer}");
        assert!(
            answer.contains("a=fmtp:97 apt=96\r\na=rtpmap:118 red/90000\r\na=rtpmap:120 ulpfec/90000\r\na=sendonly")
        );
        assert_eq!(negotiated(&answer), pts);
        assert_eq!(add(&answer, &pts), answer, "adding twice changes nothing");
    }

    #[test]
    fn offer_uses_free_payload_types_and_skips_rejected_lines() {
        let free = unused_pts(CHROME_OFFER).unwrap();
        assert_eq!(free, FecPts { red: 127, ulpfec: 126 });
        assert!(pts_free(CHROME_OFFER, free));
        assert!(!pts_free(CHROME_OFFER, FecPts { red: 127, ulpfec: 96 }));
        let mut pts = HashMap::new();
        pts.insert("1".to_string(), free);
        let rejected = STR0M_ANSWER.replace("m=video 9", "m=video 0");
        assert_eq!(add(&rejected, &pts), add(&rejected, &HashMap::new()));
        assert!(negotiated("garbage\nm=video x\na=rtpmap:zz red/90000").is_empty());
    }
}
