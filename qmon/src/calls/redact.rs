//! Redaction of secrets before a call reaches any sink. On by default.
//!
//! A redacted value becomes `[REDACTED:<len>]`, `<len>` being the original
//! value's length in bytes, so "was a credential sent, and how big" stays
//! answerable. `Authorization`/`Proxy-Authorization` keep their scheme:
//! `Bearer [REDACTED:3]`.
//!
//! Redacted: `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
//! every header and query parameter whose name looks like a credential
//! (key, token, secret, password, session, signature, credential, …), any
//! extra names configured, and `user:password@` in authorities.

use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

use super::{Call, Exchange, Headers, ProcessInfo};

/// Headers always redacted, whatever their value looks like.
const ALWAYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Names containing one of these (after lowercasing) are credentials.
const SUBSTRINGS: &[&str] = &[
    "token",
    "secret",
    "passw",
    "passwd",
    "session",
    "sessid",
    "signature",
    "credential",
    "apikey",
    "api-key",
    "api_key",
    "private-key",
    "private_key",
    "auth-key",
];

/// Names with one of these as a whole `-`/`_`/`.`-separated word.
const WORDS: &[&str] = &[
    "key", "pwd", "pass", "sig", "auth", "jwt", "sid", "csrf", "xsrf",
];

/// Names that match the rules above but are not secrets and help debugging.
const NOT_SECRET: &[&str] = &["idempotency-key", "x-idempotency-key", "keep-alive"];

/// Common header names that no rule above matches, so most headers skip the
/// lowercasing and substring scans (those were ~6% of the daemon's CPU).
/// A unit test checks that the full rules agree.
const COMMON_PLAIN: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "date",
    "etag",
    "expires",
    "host",
    "last-modified",
    "location",
    "server",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "x-request-id",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-status",
    "grpc-message",
    "te",
];

/// What to redact. `Redactor::default()` is what `qmon record` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    enabled: bool,
    /// Extra header / query parameter names (lowercase), matched exactly.
    extra: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    /// Redaction on, built-in rules only.
    pub fn new() -> Self {
        Self {
            enabled: true,
            extra: Vec::new(),
        }
    }

    /// Redaction on, plus these names (headers or query parameters, any case).
    pub fn with_extra_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            enabled: true,
            extra: names
                .into_iter()
                .map(|n| n.as_ref().trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Nothing is redacted (`--no-redact`).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            extra: Vec::new(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a header or query parameter of this name is redacted.
    pub fn is_sensitive(&self, name: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let name = name.trim();
        if self.extra.iter().any(|e| e.eq_ignore_ascii_case(name)) {
            return true;
        }
        if COMMON_PLAIN.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return false;
        }
        matches_rules(&name.to_ascii_lowercase())
    }

    /// Redact every call field that can carry a secret: headers, trailers,
    /// the path's query string, and userinfo in the authority.
    pub fn redact_exchange(&self, ex: &mut Exchange) {
        if !self.enabled {
            return;
        }
        self.redact_headers(&mut ex.req_headers);
        self.redact_headers(&mut ex.resp_headers);
        self.redact_headers(&mut ex.req_trailers);
        self.redact_headers(&mut ex.resp_trailers);
        if let Some(path) = &ex.path {
            ex.path = Some(self.redact_path(path));
        }
        if let Some(auth) = &ex.authority {
            ex.authority = Some(redact_userinfo(auth));
        }
    }

    pub fn redact_headers(&self, headers: &mut Headers) {
        if !self.enabled {
            return;
        }
        for (name, value) in headers.iter_mut() {
            if !self.is_sensitive(name) || is_redacted(value) {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            *value = if lower == "authorization" || lower == "proxy-authorization" {
                redact_keep_scheme(value)
            } else {
                redacted(value.len())
            };
        }
    }

    /// Redact sensitive query parameter values (and userinfo of an
    /// absolute-form target). The fragment, if any, is kept as is.
    pub fn redact_path(&self, path: &str) -> String {
        if !self.enabled {
            return path.to_string();
        }
        let path = if path.contains("://") {
            redact_userinfo_in_url(path)
        } else {
            path.to_string()
        };
        let Some(q) = path.find('?') else {
            return path;
        };
        let (base, rest) = path.split_at(q + 1);
        let (query, fragment) = match rest.find('#') {
            Some(f) => rest.split_at(f),
            None => (rest, ""),
        };
        let mut out = String::with_capacity(path.len());
        out.push_str(base);
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value)) if self.is_sensitive(&percent_decode_name(name)) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(&redacted(value.len()));
                }
                _ => out.push_str(pair),
            }
        }
        out.push_str(fragment);
        out
    }
}

/// The built-in rules, on a lowercase name.
fn matches_rules(lower: &str) -> bool {
    if ALWAYS.contains(&lower) {
        return true;
    }
    if NOT_SECRET.contains(&lower) {
        return false;
    }
    if SUBSTRINGS.iter().any(|s| lower.contains(s)) {
        return true;
    }
    lower
        .split(['-', '_', '.', '[', ']'])
        .any(|w| WORDS.contains(&w))
}

impl Redactor {
    /// A process's command line, joined with spaces, with credentials
    /// redacted: values of sensitive flags (`--token X`, `--password=X`),
    /// header arguments (`Authorization: Bearer X`), `-u user:pass`, and
    /// query parameters and passwords in URLs.
    pub fn redact_args(&self, args: &[String]) -> String {
        self.redact_argv(args).join(" ")
    }

    /// [`Redactor::redact_args`], one output argument per input argument.
    pub fn redact_argv(&self, args: &[String]) -> Vec<String> {
        if !self.enabled {
            return args.to_vec();
        }
        let mut out: Vec<String> = Vec::with_capacity(args.len());
        let mut redact_next = false;
        let mut userinfo_next = false;
        for arg in args {
            if redact_next && !arg.starts_with('-') {
                out.push(redacted(arg.len()));
                redact_next = false;
                continue;
            }
            if userinfo_next {
                userinfo_next = false;
                out.push(match arg.split_once(':') {
                    Some((user, pw)) => format!("{user}:{}", redacted(pw.len())),
                    None => arg.clone(),
                });
                continue;
            }
            redact_next = false;
            out.push(self.redact_arg(arg, &mut redact_next, &mut userinfo_next));
        }
        out
    }

    fn redact_arg(&self, arg: &str, redact_next: &mut bool, userinfo_next: &mut bool) -> String {
        if let Some(flag) = arg.strip_prefix('-') {
            let flag = flag.trim_start_matches('-');
            if let Some((name, value)) = flag.split_once('=') {
                if self.is_sensitive(name) {
                    return format!(
                        "{}={}",
                        &arg[..arg.len() - value.len() - 1],
                        redacted(value.len())
                    );
                }
                return arg.to_string();
            }
            if matches!(flag, "u" | "user" | "proxy-user") {
                *userinfo_next = true;
            } else if self.is_sensitive(flag) {
                *redact_next = true;
            }
            return arg.to_string();
        }
        // `Name: value`, as given to curl -H.
        if let Some((name, value)) = arg.split_once(':') {
            let name = name.trim();
            if !name.is_empty()
                && !name.contains(['/', ' '])
                && value.starts_with(' ')
                && (ALWAYS.contains(&name.to_ascii_lowercase().as_str()) || self.is_sensitive(name))
            {
                return format!("{name}: {}", redact_keep_scheme(value.trim_start()));
            }
        }
        if arg.contains("://") {
            // Query parameters and `user:password@`.
            return self.redact_path(arg);
        }
        // NAME=value (environment-style assignments).
        if let Some((name, value)) = arg.split_once('=') {
            if !name.is_empty() && !name.contains(['/', ' ', '?']) && self.is_sensitive(name) {
                return format!("{name}={}", redacted(value.len()));
            }
        }
        arg.to_string()
    }
}

/// The redaction policy applied to whole calls. A process makes many calls
/// with one command line, and redacting it was ~8% of the daemon's CPU on
/// small calls, so each process's redacted metadata is kept and shared.
#[derive(Debug, Default)]
pub struct CallRedactor {
    rules: Redactor,
    /// By pid: the metadata as read, and its redacted copy.
    procs: HashMap<u32, (Arc<ProcessInfo>, Arc<ProcessInfo>)>,
}

impl CallRedactor {
    /// Bound on remembered processes; past it the memo starts over.
    const MAX_PROCS: usize = 4096;

    pub fn new(rules: Redactor) -> Self {
        Self {
            rules,
            procs: HashMap::new(),
        }
    }

    pub fn rules(&self) -> &Redactor {
        &self.rules
    }

    /// Redact every field of `call` that can carry a secret.
    pub fn redact(&mut self, call: &mut Call) {
        if !self.rules.enabled {
            return;
        }
        self.rules.redact_exchange(&mut call.exchange);
        if call.process.args.is_empty() {
            return;
        }
        let pid = call.process.pid;
        if let Some((raw, red)) = self.procs.get(&pid) {
            if Arc::ptr_eq(raw, &call.process) {
                call.process = red.clone();
                return;
            }
        }
        let red = Arc::new(ProcessInfo {
            args: self.rules.redact_argv(&call.process.args),
            ..(*call.process).clone()
        });
        if self.procs.len() >= Self::MAX_PROCS {
            self.procs.clear();
        }
        let raw = std::mem::replace(&mut call.process, red.clone());
        self.procs.insert(pid, (raw, red));
    }
}

/// Already redacted (redaction is idempotent).
fn is_redacted(value: &str) -> bool {
    value.ends_with(']') && value.contains("[REDACTED:")
}

fn redacted(len: usize) -> String {
    format!("[REDACTED:{len}]")
}

/// `Bearer abc` → `Bearer [REDACTED:3]`; a value without a scheme is
/// redacted whole.
fn redact_keep_scheme(value: &str) -> String {
    let trimmed = value.trim_start();
    match trimmed.split_once(' ') {
        Some((scheme, cred))
            if !scheme.is_empty()
                && scheme.len() <= 32
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            let cred = cred.trim_start();
            format!("{scheme} {}", redacted(cred.len()))
        }
        _ => redacted(value.len()),
    }
}

/// `user:pw@host:443` → `user:[REDACTED:2]@host:443`.
fn redact_userinfo(authority: &str) -> String {
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pw)) => format!("{user}:{}@{host}", redacted(pw.len())),
            None => format!("{}@{host}", redacted(userinfo.len())),
        },
        None => authority.to_string(),
    }
}

fn redact_userinfo_in_url(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return url.to_string();
    };
    let start = i + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |e| start + e);
    let authority = &url[start..end];
    if !authority.contains('@') {
        return url.to_string();
    }
    format!(
        "{}{}{}",
        &url[..start],
        redact_userinfo(authority),
        &url[end..]
    )
}

/// Decode `%XX` in a query parameter name (`api%5Fkey`) and `+` as a space
/// (form encoding), lossily.
fn percent_decode_name(name: &str) -> String {
    if !name.contains('%') && !name.contains('+') {
        return name.to_string();
    }
    // `+` first: a `%2B` must stay a plus.
    percent_decode_str(&name.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Protocol;

    #[test]
    fn common_plain_names_agree_with_the_rules() {
        for name in COMMON_PLAIN {
            assert_eq!(name.to_ascii_lowercase(), *name);
            assert!(!matches_rules(name), "{name} is sensitive by the rules");
        }
        let r = Redactor::new();
        assert!(!r.is_sensitive(" Content-Type "));
        assert!(r.is_sensitive("X-Api-Token"));
        // An extra name wins over the fast path.
        let r = Redactor::with_extra_names(["Server"]);
        assert!(r.is_sensitive("server"));
        assert!(r.is_sensitive("SERVER"));
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sensitive_names() {
        let r = Redactor::new();
        for n in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "Set-Cookie",
            "x-api-key",
            "X-API-Key",
            "api_key",
            "apikey",
            "access_token",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
            "X-Amz-Credential",
            "client_secret",
            "passwd",
            "password",
            "x-session-id",
            "PHPSESSID",
            "sig",
            "x-auth-token",
            "x-csrf-token",
            "key",
            "private_key",
            "pwd",
        ] {
            assert!(r.is_sensitive(n), "{n} should be sensitive");
        }
        for n in [
            "content-type",
            "accept",
            ":authority",
            "host",
            "keep-alive",
            "idempotency-key",
            "x-request-id",
            "user-agent",
            "page",
            "q",
            "monkey",
        ] {
            assert!(!r.is_sensitive(n), "{n} should not be sensitive");
        }
    }

    #[test]
    fn command_lines() {
        let r = Redactor::new();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            r.redact_args(&args(&[
                "curl",
                "-H",
                "Authorization: Bearer secret123",
                "https://h/x?api_key=abc&q=1"
            ])),
            "curl -H Authorization: Bearer [REDACTED:9] https://h/x?api_key=[REDACTED:3]&q=1"
        );
        assert_eq!(
            r.redact_args(&args(&[
                "tool",
                "--token",
                "t0k",
                "--password=hunter2",
                "--verbose",
                "-u",
                "bob:pw"
            ])),
            "tool --token [REDACTED:3] --password=[REDACTED:7] --verbose -u bob:[REDACTED:2]"
        );
        assert_eq!(
            r.redact_args(&args(&[
                "env",
                "API_TOKEN=zzz",
                "PATH=/bin",
                "https://u:pw@h/"
            ])),
            "env API_TOKEN=[REDACTED:3] PATH=/bin https://u:[REDACTED:2]@h/"
        );
        assert_eq!(
            r.redact_args(&args(&["python3", "-c", "print(1)"])),
            "python3 -c print(1)"
        );
        assert_eq!(
            Redactor::disabled().redact_args(&args(&["x", "--token", "t"])),
            "x --token t"
        );
    }

    #[test]
    fn headers_keep_length_and_scheme() {
        let r = Redactor::new();
        let mut hs = h(&[
            ("Authorization", "Bearer xyz"),
            ("Proxy-Authorization", "Basic dXNlcjpwdw=="),
            ("authorization", "opaque-no-scheme"),
            ("Cookie", "a=1; b=2"),
            ("x-api-key", "k-123456"),
            ("Content-Type", "application/json"),
        ]);
        r.redact_headers(&mut hs);
        assert_eq!(hs[0].1, "Bearer [REDACTED:3]");
        assert_eq!(hs[1].1, "Basic [REDACTED:12]");
        assert_eq!(hs[2].1, "[REDACTED:16]");
        assert_eq!(hs[3].1, "[REDACTED:8]");
        assert_eq!(hs[4].1, "[REDACTED:8]");
        assert_eq!(hs[5].1, "application/json");
        // Idempotent.
        let before = hs.clone();
        r.redact_headers(&mut hs);
        assert_eq!(hs, before);
    }

    #[test]
    fn query_parameters() {
        let r = Redactor::new();
        assert_eq!(
            r.redact_path("/x?api_key=abcd&page=2&access_token=t0k#frag"),
            "/x?api_key=[REDACTED:4]&page=2&access_token=[REDACTED:3]#frag"
        );
        assert_eq!(
            r.redact_path("/b/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=ff00ff&X-Amz-Expires=60"),
            "/b/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=[REDACTED:6]&X-Amz-Expires=60"
        );
        assert_eq!(
            r.redact_path("/x?api%5Fkey=s3cr3t"),
            "/x?api%5Fkey=[REDACTED:6]"
        );
        assert_eq!(r.redact_path("/x?flag&q=1"), "/x?flag&q=1");
        assert_eq!(r.redact_path("/plain/path"), "/plain/path");
        assert_eq!(r.redact_path("/x?password="), "/x?password=[REDACTED:0]");
        assert_eq!(
            r.redact_path("http://u:pw@proxy.example/x?q=1"),
            "http://u:[REDACTED:2]@proxy.example/x?q=1"
        );
    }

    #[test]
    fn extra_names_and_disabled() {
        let r = Redactor::with_extra_names(["X-Tenant", "customer"]);
        assert!(r.is_sensitive("x-tenant"));
        assert_eq!(
            r.redact_path("/a?customer=acme"),
            "/a?customer=[REDACTED:4]"
        );

        let off = Redactor::disabled();
        assert!(!off.is_sensitive("Authorization"));
        let mut hs = h(&[("Authorization", "Bearer xyz")]);
        off.redact_headers(&mut hs);
        assert_eq!(hs[0].1, "Bearer xyz");
        assert_eq!(off.redact_path("/a?token=1"), "/a?token=1");
    }

    #[test]
    fn whole_exchange() {
        let r = Redactor::new();
        let mut ex = Exchange::new(Protocol::Http2);
        ex.authority = Some("user:secret@api.example.com".into());
        ex.path = Some("/v1?token=abc".into());
        ex.req_headers = h(&[("authorization", "Bearer abc")]);
        ex.resp_headers = h(&[("set-cookie", "sid=1; HttpOnly")]);
        ex.resp_trailers = h(&[("x-session-token", "zz")]);
        ex.req_trailers = h(&[("grpc-status", "0")]);
        r.redact_exchange(&mut ex);
        assert_eq!(
            ex.authority.as_deref(),
            Some("user:[REDACTED:6]@api.example.com")
        );
        assert_eq!(ex.path.as_deref(), Some("/v1?token=[REDACTED:3]"));
        assert_eq!(ex.req_headers[0].1, "Bearer [REDACTED:3]");
        assert_eq!(ex.resp_headers[0].1, "[REDACTED:15]");
        assert_eq!(ex.resp_trailers[0].1, "[REDACTED:2]");
        assert_eq!(ex.req_trailers[0].1, "0");
    }

    #[test]
    fn query_names_are_percent_and_form_decoded() {
        assert_eq!(percent_decode_name("api%5Fkey"), "api_key");
        assert_eq!(percent_decode_name("a+b%2B"), "a b+");
        assert_eq!(percent_decode_name("a%20b%zz%"), "a b%zz%");
        // A sign is not a hex digit (the hand-written decoder read `%+B` as 0x0B).
        assert_eq!(percent_decode_name("%+B"), "% B");
    }
}
