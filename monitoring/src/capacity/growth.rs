//! Compound monthly growth and the month a limit is reached.

/// The first month `m` in `0..=months` at which `now × (1 + growth_percent / 100)^m` reaches
/// `limit` (is at or above it), or `None` when it does not within `months` months.
///
/// Month 0 is today's peak. Growth compounds monthly; a negative growth shrinks the demand,
/// so a limit not reached today is never reached. The months are walked one by one
/// (`powi`), so the answer is exactly the first month whose projected demand is at the
/// limit: the closed form `ceil(ln(limit / now) / ln(1 + g))` gives the same month, up to
/// rounding when the ratio is an exact power.
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::month_reached;
///
/// // 500 concurrent today, 10 % a month, limit 1,000: 1.1^7 = 1.95 < 2 <= 1.1^8 = 2.14.
/// assert_eq!(month_reached(500.0, 10.0, 1000.0, 24), Some(8));
/// assert_eq!(month_reached(500.0, 10.0, 1000.0, 7), None);
/// assert_eq!(month_reached(1200.0, 0.0, 1000.0, 12), Some(0));
/// ```
pub fn month_reached(now: f64, growth_percent: f64, limit: f64, months: u32) -> Option<u32> {
    if now >= limit {
        return Some(0);
    }
    if now <= 0.0 || growth_percent <= 0.0 {
        return None;
    }
    let factor = 1.0 + growth_percent / 100.0;
    (1..=months).find(|&m| now * factor.powi(m as i32) >= limit)
}

/// The demand `now` projected `month` months ahead at `growth_percent` a month.
///
/// # Examples
///
/// ```
/// use lift_monitoring::capacity::project;
/// assert!((project(100.0, 10.0, 2) - 121.0).abs() < 1e-9);
/// ```
pub fn project(now: f64, growth_percent: f64, month: u32) -> f64 {
    now * (1.0 + growth_percent / 100.0).powi(month as i32)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ten_percent_from_500_reaches_1000_in_month_8() {
        // ln(1000 / 500) / ln(1.1) = 0.693147 / 0.0953102 = 7.2725, so ceil = 8.
        let by_hand = (2.0f64.ln() / 1.1f64.ln()).ceil() as u32;
        assert_eq!(by_hand, 8);
        assert_eq!(month_reached(500.0, 10.0, 1000.0, 24), Some(by_hand));
        // 1.1^7 = 1.9487 (974.4 concurrent), 1.1^8 = 2.1436 (1071.8).
        assert!(project(500.0, 10.0, 7) < 1000.0 && project(500.0, 10.0, 8) >= 1000.0);
    }

    #[test]
    fn at_the_limit_counts_as_reached_and_no_growth_never_reaches() {
        assert_eq!(month_reached(1000.0, 5.0, 1000.0, 12), Some(0));
        assert_eq!(month_reached(999.0, 0.0, 1000.0, 1200), None);
        assert_eq!(month_reached(999.0, -10.0, 1000.0, 1200), None);
        assert_eq!(month_reached(0.0, 50.0, 1000.0, 1200), None);
        // 100 % a month doubles: 125 -> 250 -> 500 -> 1000 at month 3.
        assert_eq!(month_reached(125.0, 100.0, 1000.0, 12), Some(3));
        assert_eq!(month_reached(125.0, 100.0, 1000.0, 2), None);
    }

    proptest! {
        #[test]
        fn faster_growth_never_reaches_a_limit_later(
            now in 0.1f64..5000.0,
            slow in -99.0f64..200.0,
            extra in 0.0f64..200.0,
            limit in 1.0f64..10_000.0,
            months in 0u32..120,
        ) {
            let fast = slow + extra;
            let a = month_reached(now, slow, limit, months);
            let b = month_reached(now, fast, limit, months);
            match (a, b) {
                (Some(a), Some(b)) => prop_assert!(b <= a, "slow {slow}: {a}, fast {fast}: {b}"),
                (Some(a), None) => prop_assert!(false, "slow growth reached at {a}, faster never"),
                _ => {}
            }
        }

        #[test]
        fn the_month_found_is_the_first_at_the_limit(
            now in 0.1f64..5000.0, growth in 0.1f64..100.0, limit in 1.0f64..10_000.0,
        ) {
            if let Some(m) = month_reached(now, growth, limit, 1200) {
                prop_assert!(project(now, growth, m) >= limit);
                if m > 0 {
                    prop_assert!(project(now, growth, m - 1) < limit);
                }
            }
        }
    }
}
