//! Time as a value: seconds since the Unix epoch, passed in by the caller.

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z.
///
/// The databases never read a clock; every operation that needs the time
/// takes one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Seconds elapsed from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The 20-character form setkey prints (`ctime(3)` without the weekday
    /// and newline, here always in UTC): `Nov 22 02:25:03 2026`. Time 0
    /// prints as 20 spaces, as setkey's `str_time` does.
    pub fn setkey_format(self) -> String {
        if self.0 == 0 {
            return " ".repeat(20);
        }
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let days = self.0 / 86_400;
        let secs = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days);
        let month = MONTHS
            .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
            .copied()
            .unwrap_or("???");
        let mut s = format!(
            "{month} {d:>2} {:02}:{:02}:{:02} {y}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        // ctime's field is 20 characters wide; setkey copies exactly 20.
        while s.len() < 20 {
            s.push(' ');
        }
        s.truncate(20);
        s
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_ctime_in_utc() {
        // date -u -d @1795314303 → Sun Nov 22 02:25:03 UTC 2026
        assert_eq!(
            Timestamp(1_795_314_303).setkey_format(),
            "Nov 22 02:25:03 2026"
        );
        assert_eq!(Timestamp(1).setkey_format(), "Jan  1 00:00:01 1970");
        // 2000-02-29 (leap day) 12:00:00
        assert_eq!(
            Timestamp(951_825_600).setkey_format(),
            "Feb 29 12:00:00 2000"
        );
        assert_eq!(Timestamp(0).setkey_format(), " ".repeat(20));
    }
}
