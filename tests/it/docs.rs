//! The operations docs and the deployment example against the code: the configuration
//! reference in docs/operations.md is the config struct, and the clawgate.toml shipped in
//! examples/deploy/k8s/pod.yaml passes `clawgate config check`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clawgate::config::{
    AdminConfig, Config, ListenerTls, McpServerConfig, PolicyConfig, SlackConfig, WebhookConfig,
};
use clawgate::identity::{IdentityConfig, Scopes};

const OPERATIONS: &str = include_str!("../../docs/operations.md");
const POD: &str = include_str!("../../examples/deploy/k8s/pod.yaml");
const BIN: &str = env!("CARGO_BIN_EXE_clawgate");

/// The text after `heading` up to the next heading of the same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"))
        + heading.len()
        + 2;
    let level = heading.split(' ').next().unwrap();
    let rest = &doc[start..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let line = &rest[i..];
            line.starts_with('#')
                && line
                    .split(' ')
                    .next()
                    .is_some_and(|hashes| hashes.len() <= level.len())
        })
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The body of the first fenced block of `lang` in `text`.
fn fenced<'a>(text: &'a str, lang: &str) -> &'a str {
    let open = format!("```{lang}\n");
    let start = text.find(&open).expect("a fenced block") + open.len();
    let end = start + text[start..].find("\n```").expect("a closed block") + 1;
    &text[start..end]
}

#[test]
fn operations_md_shows_the_embedded_defaults_byte_for_byte() {
    let block = fenced(section(OPERATIONS, "### The embedded defaults"), "toml");
    assert_eq!(
        block,
        Config::default_toml(),
        "docs/operations.md is out of date: paste `clawgate config default` into it"
    );
}

/// A config with every optional key set and one entry in every map, each map key `NAME`.
/// Struct literals (no `..Default::default()`) on purpose: a new optional field does not
/// compile here until it is added, and then the key table below must name it.
fn everything_set() -> Config {
    let mut c = Config::default();
    let tls = ListenerTls {
        cert: "s.pem".into(),
        key: "s.key".into(),
        client_ca: Some("ca.pem".into()),
        require_client_cert: true,
    };
    for listener in [
        &mut c.listeners.agent,
        &mut c.listeners.egress,
        &mut c.listeners.admin,
    ] {
        listener.tls = Some(tls.clone());
    }
    c.listeners.transparent = Some(clawgate::config::TransparentConfig {
        addrs: vec!["127.0.0.1:15001".parse().unwrap()],
        peek_timeout_ms: 1,
        max_connections: 1,
        dns_addrs: vec!["127.0.0.1:15053".parse().unwrap()],
        dns_upstream: Some("192.0.2.53:53".parse().unwrap()),
        dns_timeout_ms: 1,
    });
    c.policy = PolicyConfig {
        dir: Some("policies".into()),
        eval_timeout_ms: 50,
        watch: true,
        decision_cache_entries: 1,
    };
    let name = || "NAME".to_string();
    c.audit.redact.keys = vec!["k".into()];
    c.audit.redact.paths = vec!["a.b".into()];
    c.audit.redact.patterns.insert(name(), "x".into());
    c.approval.groups.insert(name(), vec!["U1".into()]);
    c.notify.slack = SlackConfig {
        webhook_url: Some("https://hooks.example".into()),
        signing_secret: Some("s".into()),
    };
    c.notify.webhook = WebhookConfig {
        url: Some("https://hook.example".into()),
        secret: Some("whsec_x".into()),
    };
    c.approvers.insert(
        name(),
        clawgate::admin::ApproverCredential {
            token_sha256: "1".repeat(64),
            webhook_secret: Some("whsec_y".into()),
        },
    );
    c.people.insert(
        name(),
        clawgate::config::Person {
            ids: vec!["U0123ABCD".into()],
        },
    );
    c.admin = AdminConfig {
        public_url: Some("https://admin.example".into()),
        token_sha256: Some("0".repeat(64)),
        ..AdminConfig::default()
    };
    c.mcp.servers.insert(
        name(),
        McpServerConfig {
            url: "https://mcp.example/mcp".into(),
            headers: [(name(), "v".to_string())].into(),
            bearer_token_env: Some("T".into()),
            timeout_ms: 1,
        },
    );
    c.egress
        .resolve
        .insert(name(), vec!["192.0.2.1".parse().unwrap()]);
    c.egress.ca_cert = Some("ca.pem".into());
    c.egress.ca_key = Some("ca.key".into());
    c.identities.insert(
        name(),
        IdentityConfig {
            token_sha256: Some("0".repeat(64)),
            cert_subject: Some("cn".into()),
            uid: Some(61_002),
            scopes: Scopes {
                tool_groups: Some(vec![]),
                mcp_servers: Some(vec![]),
                egress_hosts: Some(vec![]),
                environments: Some(vec![]),
            },
            home: Some("/home/agent".into()),
        },
    );
    c.facts.home = Some("/home/agent".into());
    c.facts.workspace = Some("/home/agent/work".into());
    c.facts.parse_memory_mib = Some(256);
    c.facts.parse_timeout_ms = Some(2000);
    c
}

/// Dotted paths of every value that is not a table; keys under `listeners` read `NAME` too.
fn leaf_keys(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let key = if prefix == "listeners" { "NAME" } else { key };
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => leaf_keys(&path, t, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn operations_md_key_table_names_exactly_the_config_keys() {
    let value = toml::Table::try_from(everything_set()).unwrap();
    let mut from_struct = BTreeSet::new();
    leaf_keys("", &value, &mut from_struct);

    let table = section(OPERATIONS, "### Every key");
    let from_docs: BTreeSet<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_string())
        .collect();
    let missing: Vec<_> = from_struct.difference(&from_docs).collect();
    let stale: Vec<_> = from_docs.difference(&from_struct).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/operations.md \"Every key\": missing {missing:?}, not in the config struct {stale:?}"
    );
}

/// The block scalar `key: |` of the first YAML document line that names it, de-indented.
fn yaml_block_scalar(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines();
    let header = format!("{key}: |");
    lines
        .by_ref()
        .find(|l| l.trim_start() == header)
        .unwrap_or_else(|| panic!("no {header:?} in the manifest"));
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    let mut text: String = body
        .iter()
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    while text.ends_with("\n\n") {
        text.pop();
    }
    text
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_pod_manifest_config_passes_config_check() {
    let toml = yaml_block_scalar(POD, "clawgate.toml");
    assert!(toml.contains("data_dir = \"/var/lib/clawgate\""), "{toml}");

    // The files the manifest mounts under /etc/clawgate, laid out the same way elsewhere:
    // the repository's policy bundle (the clawgate-policies ConfigMap) and a server
    // certificate from `clawgate certs init` (the clawgate-admin-tls Secret).
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-clawgate");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("policies"), &etc.join("policies"));
    let certs = dir.path().join("certs");
    let init = Command::new(BIN)
        .args(["certs", "init", "--dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    std::fs::create_dir_all(etc.join("tls")).unwrap();
    std::fs::copy(certs.join("server.pem"), etc.join("tls/tls.crt")).unwrap();
    std::fs::copy(certs.join("server.key"), etc.join("tls/tls.key")).unwrap();

    let relocated = toml.replace("/etc/clawgate/", &format!("{}/", etc.display()));
    let file = dir.path().join("clawgate.toml");
    std::fs::write(&file, &relocated).unwrap();
    let check = Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}\n{relocated}");
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");

    // The bundle it points at is the one that compiles (what `serve` would load).
    let test = Command::new(BIN)
        .args(["policy", "test"])
        .arg(etc.join("policies"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );
}

const POLICY_GUIDE: &str = include_str!("../../docs/policy-guide.md");

/// What each helper docs/policy-guide.md offers for custom rules means, as a Rego test body
/// (`main_test.rego`'s `tool_call`, `exec_call` and `with_facts` build the inputs).
const HELPER_CHECKS: &[(&str, &str)] = &[
    (
        "action_kind",
        r#"action_kind == "mcp" with input as {"action": {"kind": "mcp", "server": "gh", "tool": "get_issue"}}"#,
    ),
    (
        "params",
        r#"params.action == "send" with input as tool_call("message", {"action": "send"}, "staging")"#,
    ),
    (
        "environment",
        r#"environment == "staging" with input as tool_call("read", {}, "staging")"#,
    ),
    (
        "is_production",
        r#"is_production with input as tool_call("read", {}, "production")
	not is_production with input as tool_call("read", {}, "staging")"#,
    ),
    (
        "tool_name",
        r#"tool_name == "message" with input as tool_call("message", {"action": "send"}, "staging")"#,
    ),
    (
        "tool_action",
        r#"tool_action == "send" with input as tool_call("message", {"action": "send"}, "staging")"#,
    ),
    (
        "tool_mutates",
        r#"tool_mutates with input as tool_call("message", {"action": "send"}, "staging")
	not tool_mutates with input as tool_call("message", {"action": "read"}, "staging")"#,
    ),
    (
        "facts",
        r#"facts.home == "/home/dev" with input as with_facts(exec_call("ls", "staging"))"#,
    ),
    (
        "fact_commands",
        r#"names := {c.name | some c in fact_commands} with input as with_facts(exec_call("ls && git status", "staging"))
	names == {"ls", "git"}"#,
    ),
    (
        "command_read_only(c)",
        r#"read_only := {c.name | some c in fact_commands; command_read_only(c)} with input as with_facts(exec_call("ls; rm -rf x", "staging"))
	read_only == {"ls"}"#,
    ),
    (
        "subcommand_of(c)",
        r#"subs := {s | some c in fact_commands; s := subcommand_of(c)} with input as with_facts(exec_call("git status", "staging"))
	subs == {"status"}"#,
    ),
    (
        "exec_read_only",
        r#"exec_read_only with input as with_facts(exec_call("ls -la", "staging"))
	not exec_read_only with input as with_facts(exec_call("rm -rf build", "staging"))"#,
    ),
    (
        "mcp_call",
        r#"mcp_call == {"server": "gh", "tool": "get_issue", "args": {"n": 1}} with input as {"action": {"kind": "mcp", "server": "gh", "tool": "get_issue", "params": {"n": 1}}}"#,
    ),
    (
        "http_host",
        r#"http_host == "api.example.com" with input as {"action": {"kind": "http", "http": {"method": "post", "host": "api.example.com"}, "dest": {"host": "api.example.com", "port": 443}}}"#,
    ),
    (
        "http_method",
        r#"http_method == "POST" with input as {"action": {"kind": "http", "http": {"method": "post", "host": "api.example.com"}, "dest": {"host": "api.example.com", "port": 443}}}"#,
    ),
];

/// The guide's "Changing the policy" keeps its word for a custom bundle: its example rule,
/// added to the embedded bundle, denies what it says, and every helper it lists exists and
/// means what its name says.
#[test]
fn the_policy_guides_example_rule_and_helpers_work_in_a_custom_bundle() {
    // Not `section`: the example's Rego comments start with `#` too.
    let changing = POLICY_GUIDE
        .split("To add logic")
        .nth(1)
        .expect("the guide shows how to add logic");
    let example = fenced(changing, "rego");
    let listed = changing
        .split("Useful helpers:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the guide lists its helpers");
    let helpers: BTreeSet<&str> = listed.split('`').skip(1).step_by(2).collect();
    let checked: BTreeSet<&str> = HELPER_CHECKS.iter().map(|(h, _)| *h).collect();
    assert_eq!(helpers, checked, "every helper the guide lists is checked");

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("policies");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &bundle,
    );
    // The example changes what the bundle decides, so the bundle's own tests of those
    // decisions do not apply; main_test.rego stays for its input builders.
    for entry in std::fs::read_dir(&bundle).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("_test.rego") && name != "main_test.rego" {
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::write(bundle.join("custom.rego"), example).unwrap();
    let mut tests = String::from(
        "package clawgate\n\nimport rego.v1\n\n\
         test_guide_example_denies_a_non_owner_message if {\n\
         \td := decide(tool_call(\"message\", {\"action\": \"send\"}, \"staging\"))\n\
         \tfired(d, \"custom.non_owner_message\")\n\
         \td.effect == \"deny\"\n}\n",
    );
    for (helper, body) in HELPER_CHECKS {
        let name: String = helper.chars().take_while(|c| *c != '(').collect();
        tests.push_str(&format!("\ntest_guide_helper_{name} if {{\n\t{body}\n}}\n"));
    }
    std::fs::write(bundle.join("custom_test.rego"), &tests).unwrap();
    let out = Command::new(BIN)
        .args(["policy", "test"])
        .arg(&bundle)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{tests}");
    let written = tests.matches("\ntest_").count() + 1;
    let summary = stdout.lines().last().unwrap_or_default();
    let passed: usize = summary
        .split(' ')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap();
    assert!(passed >= written, "the custom tests ran: {summary}");
}
