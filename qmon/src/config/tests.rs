use super::*;

#[test]
fn empty_file_changes_nothing() {
    assert_eq!(parse("").unwrap(), FileConfig::default());
    assert_eq!(parse("# only comments\n").unwrap(), FileConfig::default());
}

#[test]
fn every_key_parses() {
    let cfg = parse(
        r#"
db = "/var/lib/qmon/x.db"
retain = "7d"
max_db_size = "500MB"
body_limit = 1024
no_bodies = false
no_redact = false
redact = ["x-internal-auth"]
ring_size = 33554432
max_chunks = 8
attach_mode = "tracepoint"
metrics_addr = "127.0.0.1:9999"

[filter]
include_comm = ["curl"]
exclude_comm = ["apt"]
include_pid = [1]
exclude_pid = [2]
include_container = ["abc"]
exclude_container = ["def"]
include_host = ["*.example.com"]
exclude_host = ["metadata.internal"]
include_port = [443]
exclude_port = [9464]
loopback = false
"#,
    )
    .unwrap();
    assert_eq!(cfg.db.as_deref(), Some(Path::new("/var/lib/qmon/x.db")));
    assert_eq!(cfg.retain, Some(Duration::from_secs(7 * 86400)));
    assert_eq!(cfg.max_db_size, Some(500_000_000));
    assert_eq!(cfg.body_limit, Some(1024));
    assert_eq!(cfg.redact, Some(vec!["x-internal-auth".to_string()]));
    assert_eq!(cfg.ring_size, Some(1 << 25));
    assert_eq!(cfg.max_chunks, Some(8));
    assert_eq!(cfg.attach_mode.as_deref(), Some("tracepoint"));
    assert_eq!(cfg.metrics_addr.as_deref(), Some("127.0.0.1:9999"));
    assert_eq!(cfg.scope.include_comm, vec!["curl"]);
    assert_eq!(cfg.scope.exclude_port, vec![9464]);
    assert!(!cfg.scope.loopback);
}

/// Every error message: one line, naming the key, the value and what is
/// allowed.
#[test]
fn error_messages() {
    let cases: &[(&str, &str)] = &[
        ("ring_size = 1000", "key `ring_size` = 1000 is not allowed: expected a power of two from 4096 to 1073741824 bytes"),
        ("ring_size = 12288", "key `ring_size` = 12288 is not allowed: expected a power of two from 4096 to 1073741824 bytes"),
        ("ring_size = \"16M\"", "key `ring_size` = \"16M\" is not allowed: expected a power of two from 4096 to 1073741824 bytes"),
        ("max_chunks = 0", "key `max_chunks` = 0 is not allowed: expected 1 to 16"),
        ("body_limit = -1", "key `body_limit` = -1 is not allowed: expected 0 to 16777216 bytes"),
        ("no_bodies = \"yes\"", "key `no_bodies` = \"yes\" is not allowed: expected true or false"),
        ("no_redact = 1", "key `no_redact` = 1 is not allowed: expected true or false"),
        ("redact = \"authorization\"", "key `redact` = \"authorization\" is not allowed: expected a list of strings, e.g. [\"a\", \"b\"]"),
        ("attach_mode = \"fentry\"", "key `attach_mode` = fentry is not allowed: expected \"kprobe\" or \"tracepoint\""),
        ("metrics_addr = \"localhost\"", "key `metrics_addr` = localhost is not allowed: expected an IP:port such as \"127.0.0.1:9464\", or \"none\""),
        ("db = 5", "key `db` = 5 is not allowed: expected a string"),
        ("filter = 1", "key `filter` must be a table ([filter])"),
        ("[filter]\ninclude_port = [0]", "key `filter.include_port` = [0] is not allowed: expected a list of ports 1 to 65535, e.g. [443, 8443]"),
        ("[filter]\nexclude_pid = [\"x\"]", "key `filter.exclude_pid` = [\"x\"] is not allowed: expected a list of process ids, e.g. [443, 8443]"),
        ("[filter]\nloopback = \"no\"", "key `filter.loopback` = \"no\" is not allowed: expected true or false"),
        ("retian = \"7d\"", "unknown key `retian` (did you mean `retain`?); known keys: db, retain, max_db_size, body_limit, no_bodies, no_redact, redact, ring_size, max_chunks, attach_mode, metrics_addr, filter"),
        ("ringsize = 4096", "unknown key `ringsize` (did you mean `ring_size`?); known keys: db, retain, max_db_size, body_limit, no_bodies, no_redact, redact, ring_size, max_chunks, attach_mode, metrics_addr, filter"),
        ("colour = true", "unknown key `colour`; known keys: db, retain, max_db_size, body_limit, no_bodies, no_redact, redact, ring_size, max_chunks, attach_mode, metrics_addr, filter"),
        ("[filter]\nexclude_hosts = []", "unknown key `filter.exclude_hosts` (did you mean `filter.exclude_host`?); known keys: include_comm, exclude_comm, include_pid, exclude_pid, include_container, exclude_container, include_host, exclude_host, include_port, exclude_port, loopback"),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err(), *want, "for {text:?}");
    }
    // Values validated by the shared AGE/SIZE parsers keep their message.
    let e = parse("retain = \"forever\"").unwrap_err();
    assert!(
        e.starts_with("key `retain` = forever is not allowed: expected "),
        "{e}"
    );
    let e = parse("max_db_size = \"big\"").unwrap_err();
    assert!(
        e.starts_with("key `max_db_size` = big is not allowed: expected "),
        "{e}"
    );
    let e = parse("db = \"unterminated").unwrap_err();
    assert!(e.starts_with("not valid TOML: "), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("qmon.toml");
    std::fs::write(&p, "max_chunks = 99\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "config {}: key `max_chunks` = 99 is not allowed: expected 1 to 16",
            p.display()
        )
    );
    let e = load(&dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml: cannot read it"), "{e}");
}

/// The config files we ship must parse with the real parser.
#[test]
fn shipped_configs_parse() {
    for (name, text) in [
        (
            "packaging/qmon.toml",
            include_str!("../../../packaging/qmon.toml"),
        ),
        (
            "packaging/kubernetes/qmon.toml",
            include_str!("../../../packaging/kubernetes/qmon.toml"),
        ),
    ] {
        if let Err(e) = parse(text) {
            panic!("{name}: {e}");
        }
    }
}

/// The key lists are the structs' fields, in the order messages list them.
#[test]
fn key_lists_come_from_the_structs() {
    assert_eq!(
        *KEYS,
        [
            "db",
            "retain",
            "max_db_size",
            "body_limit",
            "no_bodies",
            "no_redact",
            "redact",
            "ring_size",
            "max_chunks",
            "attach_mode",
            "metrics_addr",
            "filter",
        ]
    );
    assert_eq!(FILTER_KEYS.len(), 11);
    assert_eq!(FILTER_KEYS.first(), Some(&"include_comm"));
    assert_eq!(FILTER_KEYS.last(), Some(&"loopback"));
    // Every key is accepted, and no other.
    for key in KEYS.iter().filter(|k| **k != "filter") {
        let e = parse(&format!("{key} = {{}}")).unwrap_err();
        assert!(
            e.starts_with(&format!("key `{key}` = {{}} is not allowed")),
            "{e}"
        );
    }
    for key in FILTER_KEYS.iter() {
        let e = parse(&format!("[filter]\n{key} = {{}}")).unwrap_err();
        assert!(
            e.starts_with(&format!("key `filter.{key}` = {{}} is not allowed")),
            "{e}"
        );
    }
}

/// Values of every TOML type get the usual message (a date reaches the
/// checkers as a string, so it is shown quoted), and a `[filter]` that is
/// not a table is named as such.
#[test]
fn odd_values_get_the_same_one_line_messages() {
    let cases: &[(&str, &str)] = &[
        ("ring_size = 1979-05-27", "key `ring_size` = \"1979-05-27\" is not allowed: expected a power of two from 4096 to 1073741824 bytes"),
        ("body_limit = 1.5", "key `body_limit` = 1.5 is not allowed: expected 0 to 16777216 bytes"),
        ("db = [\"a\"]", "key `db` = [\"a\"] is not allowed: expected a string"),
        ("[filter]\ninclude_port = 443", "key `filter.include_port` = 443 is not allowed: expected a list of ports 1 to 65535, e.g. [443, 8443]"),
        ("filter = 1979-05-27", "key `filter` must be a table ([filter])"),
        ("filter = [1]", "key `filter` must be a table ([filter])"),
        ("[filter.deeper]\nx = 1", "unknown key `filter.deeper`; known keys: include_comm, exclude_comm, include_pid, exclude_pid, include_container, exclude_container, include_host, exclude_host, include_port, exclude_port, loopback"),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err(), *want, "for {text:?}");
    }
    let cfg = parse("[filter]\nloopback = false\n").unwrap();
    assert!(!cfg.scope.loopback);
    assert_eq!(parse("[filter]\n").unwrap(), FileConfig::default());
    assert_eq!(
        parse("retain = \"90 minutes\"").unwrap().retain,
        Some(Duration::from_secs(5400))
    );
}
