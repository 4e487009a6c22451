//! CPU time and resident memory of the processes under test, from `/proc`.

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ; 100 on Linux).
const TICKS: f64 = 100.0;

/// User + system CPU seconds of one process (all its threads).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// `(VmRSS, VmHWM)` in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:").unwrap_or(0)))
}

/// Sums over several processes (nginx: master and workers).
pub(crate) fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_seconds(*p)).sum()
}

/// Sum of current RSS over `pids`, and the largest single VmHWM.
pub(crate) fn total_rss(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    for p in pids {
        if let Some((r, h)) = rss_kib(*p) {
            rss += r;
            hwm = hwm.max(h);
        }
    }
    (rss, hwm)
}

/// This process's own CPU seconds.
pub(crate) fn self_cpu() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}
