//! Window lengths written as `30d`, `6h`, `5m`, `90s`.

use std::fmt;

/// A window length in whole seconds, written in SLO files as `<n><unit>` with the unit one
/// of `s`, `m`, `h`, `d` (`30d`, `6h`, `5m`).
///
/// # Examples
///
/// ```
/// use lift_monitoring::slo::Window;
/// let w: Window = "6h".parse()?;
/// assert_eq!((w.seconds(), w.minutes(), w.to_string()), (21_600, 360, "6h".to_owned()));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window(u64);

impl Window {
    /// A window of `seconds`.
    pub const fn from_secs(seconds: u64) -> Self {
        Self(seconds)
    }

    /// The length in seconds.
    pub const fn seconds(self) -> u64 {
        self.0
    }

    /// The length in whole minutes (windows used by alerts are whole minutes: validated).
    pub const fn minutes(self) -> u64 {
        self.0 / 60
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let unit = s.chars().last().ok_or_else(|| "an empty window".to_owned())?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(format!("`{s}` has no unit: write it as <n>s, <n>m, <n>h or <n>d")),
        };
        let n: u64 = s[..s.len() - 1]
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number followed by s, m, h or d"))?;
        match n.checked_mul(scale) {
            Some(0) => Err(format!("`{s}` is an empty window")),
            Some(secs) => Ok(Self(secs)),
            None => Err(format!("`{s}` is too long")),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match () {
            () if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            () if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            () if s % 60 == 0 => write!(f, "{}m", s / 60),
            () => write!(f, "{s}s"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_prints_the_largest_whole_one() {
        for (text, secs, shown) in [
            ("90s", 90, "90s"),
            ("5m", 300, "5m"),
            ("60m", 3_600, "1h"),
            ("3d", 259_200, "3d"),
            ("72h", 259_200, "3d"),
        ] {
            let w: Window = text.parse().unwrap();
            assert_eq!((w.seconds(), w.to_string()), (secs, shown.to_owned()), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_window() {
        for bad in ["", "5", "m", "0m", "1.5h", "-1h", "5w", "99999999999999999999d"] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?} was accepted");
        }
    }
}
