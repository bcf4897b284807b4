//! Checks of `packaging/` that need no BPF: the systemd unit passes
//! `systemd-analyze verify`, the Kubernetes manifests render with
//! `kubectl kustomize` and carry what qmon needs, and the default config is
//! TOML with only the keys the `--config` contract allows.
//!
//! The .deb build, lintian and a clean-root install are slow and live in
//! `packaging/release-check.sh` (see packaging/README.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use qmon_e2e::{qmon_bin, workspace_root};
use serde_json::Value;

fn packaging() -> PathBuf {
    workspace_root().join("packaging")
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: install it (scripts/test.sh does) to check packaging/");
}

// ---------------------------------------------------------------- systemd

/// The shipped unit, verified as it will run. `systemd-analyze verify`
/// checks that ExecStart's binary exists, and /usr/bin/qmon exists only once
/// the package is installed, so the unit is copied to a temporary directory
/// with `/usr/bin/qmon` rewritten to the binary under test; nothing else
/// changes. `--man=no`: the man page is only installed by the package.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(packaging().join("qmon.service")).unwrap();
    assert!(unit.contains("\nExecStart=/usr/bin/qmon record --config /etc/qmon/qmon.toml"));
    let bin = qmon_bin().expect("qmon binary");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("qmon.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/bin/qmon ",
            &format!("ExecStart={} ", bin.display()),
        ),
    )
    .unwrap();
    let out = Command::new(tool("systemd-analyze"))
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

fn unit_values(key: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(packaging().join("qmon.service")).unwrap();
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn systemd_unit_has_exactly_the_capture_capabilities_and_keeps_uprobes_working() {
    let caps = "CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH";
    assert_eq!(unit_values("CapabilityBoundingSet"), [caps]);
    assert_eq!(unit_values("AmbientCapabilities"), [caps]);
    assert_eq!(unit_values("StateDirectory"), ["qmon"]);
    assert_eq!(unit_values("ProtectSystem"), ["strict"]);
    assert_eq!(unit_values("ReadWritePaths"), ["/var/lib/qmon"]);
    // Libraries under /home must stay readable for uprobes.
    assert_eq!(unit_values("ProtectHome"), ["read-only"]);
    assert_eq!(unit_values("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(unit_values("Restart"), ["on-failure"]);
    for forbidden in ["ProtectKernelTunables", "PrivateDevices", "ProcSubset"] {
        assert!(
            unit_values(forbidden).is_empty(),
            "{forbidden} would break tracefs, perf events or /proc/PID access"
        );
    }
}

// ------------------------------------------------------------- kubernetes

fn rendered() -> Vec<Value> {
    let out = Command::new(tool("kubectl"))
        .arg("kustomize")
        .arg(packaging().join("kubernetes"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn kustomize_renders_a_daemonset_with_what_qmon_needs() {
    let docs = rendered();
    for k in ["Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"] {
        kind(&docs, k);
    }
    let ds = kind(&docs, "DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], "qmon");
    let tpl = &ds["spec"]["template"];
    let ann = &tpl["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], "9464");
    let pod = &tpl["spec"];
    assert_eq!(pod["hostPID"], true);

    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example.invalid/qmon:0.1.0");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "record");
    let flag = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .map(|i| args[i + 1])
            .unwrap_or_else(|| panic!("{name} not passed: {args:?}"))
    };
    assert_eq!(flag("--config"), "/etc/qmon/qmon.toml");
    // The exporter's loopback default would be unreachable from the kubelet.
    assert_eq!(flag("--metrics-addr"), "0.0.0.0:9464");
    assert_eq!(c["ports"][0]["containerPort"], 9464);

    let sc = &c["securityContext"];
    let mut added: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    added.sort_unstable();
    assert_eq!(
        added,
        [
            "BPF",
            "DAC_READ_SEARCH",
            "PERFMON",
            "SYS_ADMIN",
            "SYS_PTRACE"
        ]
    );
    assert_eq!(sc["privileged"], false);

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let g = &c[probe]["httpGet"];
        assert_eq!(g["path"], path, "{probe}");
        assert!(g["port"] == "metrics" || g["port"] == 9464, "{probe} port");
    }

    // Mounts: container path -> volume, and volume -> host path.
    let volumes = pod["volumes"].as_array().unwrap();
    let host_path = |mount_path: &str| -> String {
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("volume {} missing", m["name"]));
        v["hostPath"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{mount_path} is not a hostPath"))
            .to_string()
    };
    assert_eq!(host_path("/sys/kernel/tracing"), "/sys/kernel/tracing");
    assert_eq!(host_path("/sys/kernel/btf"), "/sys/kernel/btf");
    assert_eq!(host_path("/var/lib/qmon"), "/var/lib/qmon");
}

// ----------------------------------------------------------------- config

// The keys the daemon accepts, from the daemon itself.
use qmon::config::{FILTER_KEYS, KEYS as TOP_KEYS};

/// Parses `text` as TOML and checks every key against the contract. Returns
/// the table for further checks.
fn check_config(name: &str, text: &str) -> toml::Table {
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not TOML: {e}"));
    for (k, v) in &table {
        assert!(TOP_KEYS.contains(&k.as_str()), "{name}: unknown key {k}");
        if k == "filter" {
            let f = v.as_table().expect("[filter] is a table");
            for fk in f.keys() {
                assert!(
                    FILTER_KEYS.contains(&fk.as_str()),
                    "{name}: unknown key filter.{fk}"
                );
            }
        }
    }
    table
}

/// Every `# key = value` line, uncommented, must also parse and use only
/// allowed keys: the documented examples are what users will uncomment.
fn uncomment_all(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn default_config_is_toml_with_only_contract_keys() {
    let text = std::fs::read_to_string(packaging().join("qmon.toml")).unwrap();
    let t = check_config("packaging/qmon.toml", &text);
    assert_eq!(t["db"].as_str(), Some("/var/lib/qmon/qmon.db"));

    let all = check_config(
        "packaging/qmon.toml (all uncommented)",
        &uncomment_all(&text),
    );
    let mut top: Vec<&str> = all.keys().map(String::as_str).collect();
    top.sort_unstable();
    let mut want = TOP_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(top, want, "every key is documented");
    let filter = all["filter"].as_table().unwrap();
    assert_eq!(
        filter.len(),
        FILTER_KEYS.len(),
        "every filter key is documented"
    );
    assert_eq!(filter["loopback"].as_bool(), Some(true));
    assert!(all["redact"].is_array());

    // Everything commented out is an empty, valid config.
    let empty: String = text
        .lines()
        .filter(|l| !l.contains(" = ") || l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    check_config("packaging/qmon.toml (defaults removed)", &empty);
}

#[test]
fn kubernetes_config_is_toml_with_only_contract_keys() {
    let text = std::fs::read_to_string(packaging().join("kubernetes/qmon.toml")).unwrap();
    check_config("packaging/kubernetes/qmon.toml", &text);
}
