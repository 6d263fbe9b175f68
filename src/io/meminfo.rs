//! How much memory the host can still give this process: `MemAvailable` of /proc/meminfo (the
//! kernel's estimate of memory available without swapping), where there is one.

/// Available host memory in bytes; None where /proc/meminfo is missing or unreadable.
pub fn host_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mem_available_is_read_in_bytes() {
        let t = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(super::parse(t), Some(20_000_000 * 1024));
        assert_eq!(super::parse("MemTotal: 5 kB\n"), None);
    }
}
