//! VP8 picture id and TL0PICIDX continuity for one subscriber. When it switches simulcast
//! streams the ids of the new stream are unrelated; when temporal frames are dropped the ids
//! have holes that look like loss. The munger renumbers so the receiver sees one clean stream.
//! The worker applies the result as a str0m `Vp8Patch`, so the payload is never copied.

use super::layers::FrameInfo;

const PID_MASK: u16 = 0x7fff;

#[derive(Debug, Clone, Default)]
pub struct Vp8Munger {
    pid_offset: u16,
    tl0_offset: u8,
    last_out: Option<(u16, u8)>,
    rebase: bool,
}

impl Vp8Munger {
    /// The next forwarded frame continues from the last one (a stream switch).
    pub fn rebase(&mut self) {
        self.rebase = true;
    }

    /// A whole frame of the followed stream is dropped: close the hole it leaves.
    pub fn drop_frame(&mut self, info: &FrameInfo) {
        if info.frame_start && info.picture_id.is_some() {
            self.pid_offset = self.pid_offset.wrapping_sub(1);
        }
    }

    /// Output (picture id, TL0PICIDX) for a forwarded packet that carries them.
    pub fn map(&mut self, info: &FrameInfo) -> Option<(u16, u8)> {
        let (pid, tl0) = (info.picture_id?, info.tl0.unwrap_or(0));
        if self.rebase && info.frame_start {
            self.rebase = false;
            if let Some((last_pid, last_tl0)) = self.last_out {
                self.pid_offset = last_pid.wrapping_add(1).wrapping_sub(pid);
                self.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(tl0);
            }
        }
        let out = (pid.wrapping_add(self.pid_offset) & PID_MASK, tl0.wrapping_add(self.tl0_offset));
        self.last_out = Some(out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pid: u16, tl0: u8, start: bool) -> FrameInfo {
        FrameInfo { picture_id: Some(pid), tl0: Some(tl0), frame_start: start, ..Default::default() }
    }

    #[test]
    fn dropped_frames_leave_no_hole() {
        let mut m = Vp8Munger::default();
        assert_eq!(m.map(&frame(100, 5, true)), Some((100, 5)));
        m.drop_frame(&frame(101, 5, true));
        assert_eq!(m.map(&frame(102, 6, true)), Some((101, 6)));
        assert_eq!(m.map(&frame(102, 6, false)), Some((101, 6)));
    }

    #[test]
    fn switch_continues_numbering_and_wraps() {
        let mut m = Vp8Munger::default();
        m.map(&frame(0x7ffe, 250, true));
        m.map(&frame(0x7fff, 251, true));
        m.rebase();
        // Another stream with its own numbering.
        assert_eq!(m.map(&frame(9, 40, true)), Some((0, 252)));
        assert_eq!(m.map(&frame(10, 41, true)), Some((1, 253)));
        assert_eq!(m.map(&FrameInfo::default()), None);
    }
}
