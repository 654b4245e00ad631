//! Host patterns downstream calls may not reach.

use super::InvalidConfig;

/// Host patterns, case-insensitive, where `*` matches any run of characters
/// (`dynamodb.*.amazonaws.com`, `*.s3.amazonaws.com`, `127.0.0.1`). Ports are ignored.
///
/// # Examples
///
/// ```
/// use lift::middleware::chaos::Denylist;
///
/// let deny = Denylist::parse("dynamodb.*.amazonaws.com, hooks.example.com").unwrap();
/// assert!(deny.denies("dynamodb.eu-west-1.amazonaws.com"));
/// assert!(deny.denies("HOOKS.example.com"));
/// assert!(!deny.denies("kms.eu-west-1.amazonaws.com"));
/// assert!(Denylist::parse("https://hooks.example.com/x").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denylist {
    patterns: Vec<String>,
}

impl Denylist {
    /// Parses comma-separated patterns.
    ///
    /// # Errors
    /// [`InvalidConfig`] for a pattern that is a URL, has a path or characters no host has.
    pub fn parse(list: &str) -> Result<Self, InvalidConfig> {
        let mut deny = Self::default();
        for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            deny = deny.with(pattern)?;
        }
        Ok(deny)
    }

    /// Adds one pattern.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn with(mut self, pattern: &str) -> Result<Self, InvalidConfig> {
        let pattern = pattern.trim().to_ascii_lowercase();
        let host_chars =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | ':' | '[' | ']');
        if pattern.is_empty() || !pattern.chars().all(host_chars) {
            return Err(InvalidConfig::new(
                "chaos",
                "LIFT_CHAOS_DENYLIST takes host names or patterns with *, not urls or paths",
            ));
        }
        // An IPv6 host is matched without its brackets, as `host_of` gives it.
        let pattern = pattern
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .map_or(pattern.clone(), str::to_owned);
        self.patterns.push(pattern);
        Ok(self)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, lowercase.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `host` (a host, `host:port`, or a URL) matches a pattern.
    pub fn denies(&self, host: &str) -> bool {
        let host = host_of(host).to_ascii_lowercase();
        self.patterns.iter().any(|p| glob(p.as_bytes(), host.as_bytes()))
    }
}

/// The host of a URL or of `host:port` (bracketed IPv6 kept whole).
pub(crate) fn host_of(target: &str) -> &str {
    let rest = target.split_once("://").map_or(target, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if authority.starts_with('[') {
        return authority.split_once(']').map_or(authority, |(h, _)| &h[1..]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_hosts_only() {
        let deny = Denylist::parse("dynamodb.*.amazonaws.com,127.0.0.1,*.internal").unwrap();
        for yes in [
            "dynamodb.us-east-1.amazonaws.com",
            "https://dynamodb.eu-west-1.amazonaws.com/",
            "http://127.0.0.1:8000",
            "127.0.0.1",
            "db.internal:5432",
            "user@a.b.internal",
        ] {
            assert!(deny.denies(yes), "{yes}");
        }
        for no in [
            "dynamodb.us-east-1.amazonaws.com.evil.example",
            "kms.us-east-1.amazonaws.com",
            "127.0.0.10",
            "internal",
            "xdynamodb.us-east-1.amazonaws.com",
        ] {
            assert!(!deny.denies(no), "{no}");
        }
        assert!(Denylist::parse("[::1]").unwrap().denies("http://[::1]:8000/x"));
        assert!(Denylist::parse("").unwrap().is_empty());
        assert!(!Denylist::default().denies("anything"));
    }

    #[test]
    fn urls_and_paths_are_refused() {
        for bad in ["https://x.example", "x.example/path", "x example", "*"] {
            let refused = Denylist::parse(bad);
            if bad == "*" {
                assert!(refused.unwrap().denies("any.host"), "a lone * denies every host");
            } else {
                let err = refused.unwrap_err();
                assert!(err.reason().contains("LIFT_CHAOS_DENYLIST"), "{err}");
            }
        }
    }
}
