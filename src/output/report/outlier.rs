//! Outliers: is this hour (or day) unusual against the same hour (or weekday) of the previous weeks?
//!
//! The band is the range of the same period on the previous [`WEEKS`] weeks, widened by [`MARGIN_PERCENT`]
//! on each side: `[min x 0.8, max x 1.2]`. A value outside it is an outlier. At least [`MIN_HISTORY`] of
//! those weeks must have data, otherwise nothing is judged. Computed on exact integers (cents, counts).

/// Weeks of history looked at.
pub const WEEKS: i64 = 4;
/// How far outside the weeks' min-max a value must be, in percent of the bound.
pub const MARGIN_PERCENT: i128 = 20;
/// Weeks with data needed to judge.
pub const MIN_HISTORY: usize = 2;

/// Where a value lies against its band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Above,
    Below,
}

/// The band of a history: `(low, high)` in hundredths of the unit (so that 20% of a count is exact), or
/// `None` with too little history.
pub fn band(history: &[i128]) -> Option<(i128, i128)> {
    if history.len() < MIN_HISTORY {
        return None;
    }
    let min = *history.iter().min()?;
    let max = *history.iter().max()?;
    Some((min * (100 - MARGIN_PERCENT), max * (100 + MARGIN_PERCENT)))
}

/// Judges `value` against `history` (the same period on previous weeks that have data).
pub fn judge(value: i128, history: &[i128]) -> Option<Verdict> {
    let (low, high) = band(history)?;
    let scaled = value * 100;
    if scaled > high {
        Some(Verdict::Above)
    } else if scaled < low {
        Some(Verdict::Below)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_is_twenty_percent_around_the_weeks_range() {
        let h = [100, 150, 120];
        assert_eq!(band(&h), Some((8_000, 18_000)));
        for (value, want) in [
            (180, None),
            (181, Some(Verdict::Above)),
            (80, None),
            (79, Some(Verdict::Below)),
            (0, Some(Verdict::Below)),
            (130, None),
        ] {
            assert_eq!(judge(value, &h), want, "{value}");
        }
        assert_eq!(judge(1_000, &[100]), None, "one week of history is not enough");
        assert_eq!(judge(1_000, &[]), None);
        assert_eq!(judge(1, &[0, 0]), Some(Verdict::Above), "anything above an all-zero history");
        assert_eq!(judge(0, &[0, 0]), None);
    }
}
