//! CPU time of a process (the server under test) from /proc/<pid>/stat.

use std::time::Duration;

/// User + system CPU time of `pid`, all threads.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu(&stat, clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Fields 14 and 15 (utime, stime) in clock ticks; the command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last ')'.
fn parse_cpu(stat: &str, ticks: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / ticks))
}

/// Resident memory of `pid` in bytes.
pub fn process_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_tricky_name() {
        let stat = "4242 (yun shi (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 123 0 0";
        assert_eq!(parse_cpu(stat, 100), Some(Duration::from_secs(3)));
        assert!(process_cpu(std::process::id()).is_some());
        assert!(process_rss(std::process::id()).unwrap() > 0);
    }
}
