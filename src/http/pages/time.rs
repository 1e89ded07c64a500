//! Dates for the pages: a Unix time as a UTC date, with the few `strftime`
//! directives the templates use.

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// days-from-civil inverse): (year, month 1–12, day 1–31).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `secs` (UTC) with `%Y %y %m %d %b %H %M %S %%`; other
/// directives are copied as they are.
pub fn format_utc(secs: i64, fmt: &str) -> String {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (t / 3600, t / 60 % 60, t % 60);
    let mut out = String::with_capacity(fmt.len() + 8);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('b') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The current year (UTC).
pub fn year_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    civil(secs.div_euclid(86_400)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_like_python_strftime() {
        assert_eq!(format_utc(0, "%Y %b %d, %H:%M:%S UTC"), "1970 Jan 01, 00:00:00 UTC");
        assert_eq!(
            format_utc(1_764_107_620, "%Y %b %d, %H:%M:%S UTC"),
            "2025 Nov 25, 21:53:40 UTC"
        );
        assert_eq!(format_utc(951_782_400, "%Y-%m-%d"), "2000-02-29");
        assert_eq!(format_utc(4_107_542_399, "%Y-%m-%d %H:%M:%S"), "2100-02-28 23:59:59");
        assert_eq!(format_utc(86_399, "%y %q %%"), "70 %q %");
    }
}
