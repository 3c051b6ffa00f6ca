//! What a remote offer must hold before str0m maps it: one payload type, one codec.
//!
//! All of an offer's m-lines share one transport (BUNDLE), so a payload type names the same
//! codec with the same parameters in every m-line (RFC 8843 §7.5): the receiver tells packets
//! apart by it. str0m assumes this and asserts while mapping an offer that breaks it ("Pt locked
//! multiple times"); the worker catches that panic, but a client's mistake is answered here, with
//! the payload type and both codecs named, before str0m sees it.

use std::collections::HashMap;

/// A payload type's codec as an m-line describes it: the `rtpmap` encoding (lowercased) and its
/// `fmtp` parameters (sorted, keys lowercased), so the same configuration written in another
/// order or case is the same.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Described {
    encoding: String,
    params: Vec<String>,
}

impl Described {
    fn show(&self) -> String {
        if self.params.is_empty() {
            self.encoding.clone()
        } else {
            format!("{} ({})", self.encoding, self.params.join(";"))
        }
    }
}

/// Why `sdp` cannot be mapped, if one payload type names two codecs (or one codec with two sets
/// of parameters) in its m-lines; `None` if every payload type names one.
pub fn payload_type_clash(sdp: &str) -> Option<String> {
    let mut seen: HashMap<u8, (Described, usize)> = HashMap::new();
    for (section, lines) in media_sections(sdp).into_iter().enumerate() {
        let mut rtpmap: HashMap<u8, String> = HashMap::new();
        let mut fmtp: HashMap<u8, Vec<String>> = HashMap::new();
        for line in lines {
            if let Some((pt, rest)) = attribute(line, "a=rtpmap:") {
                let encoding = rest.to_ascii_lowercase();
                if let Some(earlier) = rtpmap.insert(pt, encoding.clone()) {
                    if earlier != encoding {
                        return Some(format!(
                            "payload type {pt} names two codecs in m-line {}: {earlier} and {encoding}",
                            section + 1
                        ));
                    }
                }
            } else if let Some((pt, rest)) = attribute(line, "a=fmtp:") {
                fmtp.insert(pt, params(rest));
            }
        }
        for (pt, encoding) in rtpmap {
            let described = Described { encoding, params: fmtp.remove(&pt).unwrap_or_default() };
            match seen.get(&pt) {
                Some((first, at)) if *first != described => {
                    return Some(format!(
                        "payload type {pt} names {} in m-line {} and {} in m-line {}: one payload type, one \
                         codec, across a bundle",
                        first.show(),
                        at + 1,
                        described.show(),
                        section + 1
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(pt, (described, section));
                }
            }
        }
    }
    None
}

/// The lines of each m-line's section (the session part before the first is left out).
fn media_sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        } else if let Some(section) = sections.last_mut() {
            section.push(line);
        }
    }
    sections
}

/// `a=<name>:<pt> <rest>` → (pt, rest); `None` for another line or a payload type out of range
/// (str0m's parser has refused those already).
fn attribute<'a>(line: &'a str, prefix: &str) -> Option<(u8, &'a str)> {
    let body = line.strip_prefix(prefix)?;
    let (pt, rest) = body.split_once(' ').unwrap_or((body, ""));
    let pt: u8 = pt.parse().ok().filter(|&pt| pt < 128)?;
    Some((pt, rest.trim()))
}

fn params(fmtp: &str) -> Vec<String> {
    let mut params: Vec<String> = fmtp
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim().to_ascii_lowercase(), v.trim()),
            None => p.to_ascii_lowercase(),
        })
        .collect();
    params.sort();
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
                         a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n";
    const VIDEO: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n\
                         a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n";
    const SESSION: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";

    #[test]
    fn a_browser_like_offer_passes() {
        assert_eq!(payload_type_clash(&format!("{SESSION}{AUDIO}{VIDEO}")), None);
    }

    #[test]
    fn the_same_codec_on_the_same_payload_type_in_two_m_lines_passes() {
        // Two video transceivers (Chrome lists the same codecs in each), the second with its
        // fmtp written in another order and case.
        let second = VIDEO.replace("a=mid:1", "a=mid:2").replace("VP8/90000", "vp8/90000");
        let audio_again =
            AUDIO.replace("a=mid:0", "a=mid:3").replace("minptime=10;useinbandfec=1", "useinbandfec=1; minptime=10");
        assert_eq!(payload_type_clash(&format!("{SESSION}{AUDIO}{VIDEO}{second}{audio_again}")), None);
    }

    #[test]
    fn one_payload_type_for_opus_and_vp8_is_named() {
        let video = VIDEO.replace("96", "111");
        let why = payload_type_clash(&format!("{SESSION}{AUDIO}{video}")).expect("a clash");
        assert!(why.contains("payload type 111"), "{why}");
        assert!(why.contains("opus/48000/2") && why.contains("vp8/90000"), "{why}");
        assert!(why.contains("m-line 1") && why.contains("m-line 2"), "{why}");
    }

    #[test]
    fn one_codec_with_two_sets_of_parameters_is_named() {
        let h264 = |plid: &str| {
            format!(
                "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
                 a=fmtp:102 packetization-mode=1;profile-level-id={plid}\r\n"
            )
        };
        let why = payload_type_clash(&format!("{SESSION}{}{}", h264("42e01f"), h264("640032"))).expect("a clash");
        assert!(why.contains("profile-level-id=42e01f") && why.contains("profile-level-id=640032"), "{why}");
    }

    #[test]
    fn two_codecs_on_one_payload_type_within_one_m_line_are_named() {
        let video = VIDEO.replace("a=rtpmap:97 rtx/90000", "a=rtpmap:96 H264/90000");
        let why = payload_type_clash(&format!("{SESSION}{video}")).expect("a clash");
        assert!(why.contains("payload type 96 names two codecs in m-line 1"), "{why}");
    }

    #[test]
    fn junk_lines_are_left_to_the_parser() {
        let odd =
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:300 VP8/90000\r\na=rtpmap:x y\r\na=fmtp:\r\na=rtpmap:\r\n";
        assert_eq!(payload_type_clash(&format!("{SESSION}{odd}")), None);
    }
}
