//! TLS on the listeners and mTLS agent identities, against the real sidecar, reqwest (rustls)
//! and curl; `clawgate certs init` through the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{BIN, Sidecar, audit_entries, check_body, start_with};
use clawgate::config::ListenerTls;
use clawgate::tls::ca::CertificateAuthority;
use clawgate::tls::init::{InitOptions, init};
use serde_json::json;

/// Certificates for one test: CA, server certificate for loopback, client certificate `main`.
pub fn make_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    init(&InitOptions {
        dir: certs.clone(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        agents: vec!["main".into()],
        days: 2,
        force: false,
    })
    .expect("certs init");
    certs
}

/// A listener serving `certs/server.pem`, requiring client certificates from the CA when
/// `client_ca`.
pub fn server_tls(certs: &Path, client_ca: bool) -> ListenerTls {
    ListenerTls {
        cert: certs.join("server.pem"),
        key: certs.join("server.key"),
        client_ca: client_ca.then(|| certs.join("ca.pem")),
        require_client_cert: client_ca,
    }
}

/// An agent listener that requires client certificates from the test CA.
async fn start_mtls() -> (Sidecar, PathBuf) {
    let mut certs = PathBuf::new();
    let sidecar = start_with(|config, dir| {
        certs = make_certs(dir);
        config.listeners.agent.tls = Some(server_tls(&certs, true));
    })
    .await;
    (sidecar, certs)
}

/// A reqwest client trusting the test CA, presenting `identity_pem` (cert + key) if given.
fn client(certs: &Path, identity_pem: Option<Vec<u8>>) -> reqwest::Client {
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let mut builder =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()]);
    if let Some(pem) = identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn identity(cert_pem: &str, key_pem: &str) -> Vec<u8> {
    format!("{cert_pem}{key_pem}").into_bytes()
}

fn agent_file_identity(certs: &Path, name: &str) -> Vec<u8> {
    let cert = std::fs::read_to_string(certs.join(format!("agent-{name}.pem"))).unwrap();
    let key = std::fs::read_to_string(certs.join(format!("agent-{name}.key"))).unwrap();
    identity(&cert, &key)
}

/// An error and its sources, joined: the TLS alert is a few levels down.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn check_url(s: &Sidecar) -> String {
    format!("https://127.0.0.1:{}/v1/check", s.running.agent_addr.port())
}

#[tokio::test]
async fn certs_init_writes_private_keys_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let run = || {
        tokio::process::Command::new(BIN)
            .args(["certs", "init", "--dir"])
            .arg(&certs)
            .args(["--agent", "main", "--agent", "ops", "--days", "30"])
            .output()
    };
    let out = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("NODE_EXTRA_CA_CERTS="), "{stdout}");
    for name in ["ca", "server", "agent-main", "agent-ops"] {
        let cert = certs.join(format!("{name}.pem"));
        let key = certs.join(format!("{name}.key"));
        assert!(stdout.contains(&cert.display().to_string()), "{stdout}");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
        assert!(
            std::fs::read_to_string(&cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }
    let ca_before = std::fs::read(certs.join("ca.pem")).unwrap();

    let again = run().await.unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), ca_before);
}

#[tokio::test]
async fn mtls_client_certificate_subject_becomes_authenticated_as() {
    let (s, certs) = start_mtls().await;
    let http = client(&certs, Some(agent_file_identity(&certs, "main")));
    let resp = http
        .post(check_url(&s))
        .json(&check_body("read", json!({"path": "/tmp/x"})))
        .send()
        .await
        .expect("a valid client certificate is accepted");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let decision: serde_json::Value = resp.json().await.unwrap();
    assert!(decision["decision"].is_string(), "{decision}");
    let entries = audit_entries(s.running.audit(), "decision");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["agent"]["authenticated_as"], "main", "{entry}");
    assert_eq!(entry["agent"]["id"], "main", "{entry}");
}

#[tokio::test]
async fn body_cannot_claim_authenticated_as() {
    let (s, certs) = start_mtls().await;
    let http = client(&certs, Some(agent_file_identity(&certs, "main")));
    let mut body = check_body("read", json!({}));
    body["agent"]["authenticated_as"] = json!("root");
    let resp = http.post(check_url(&s)).json(&body).send().await.unwrap();
    // The field is not part of the request body at all.
    assert_eq!(resp.status(), 400);
    assert!(audit_entries(s.running.audit(), "decision").is_empty());
}

#[tokio::test]
async fn expired_unknown_and_missing_client_certificates_are_refused() {
    let (s, certs) = start_mtls().await;

    // Expired: issued by the right CA, valid only in the past.
    let ca_pem = std::fs::read_to_string(certs.join("ca.pem")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "main");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let expired = params.signed_by(&key, &issuer).unwrap();
    let expired = identity(&expired.pem(), &key.serialize_pem());

    // Unknown: a valid certificate for `main` from another CA.
    let other = CertificateAuthority::create("another CA", 2).unwrap();
    let foreign = other.issue_client("main", 2).unwrap();
    let foreign = identity(&foreign.cert_pem, &foreign.key_pem);

    for (what, pem, alert) in [
        ("expired", Some(expired), "CertificateExpired"),
        ("unknown CA", Some(foreign), "UnknownCA"),
        ("no certificate", None, "CertificateRequired"),
    ] {
        let result = client(&certs, pem)
            .post(check_url(&s))
            .json(&check_body("read", json!({})))
            .send()
            .await;
        let err = match result {
            Ok(resp) => panic!("{what}: answered {}", resp.status()),
            Err(e) => error_chain(&e),
        };
        assert!(err.contains(alert), "{what}: {err}");
    }
    assert!(
        audit_entries(s.running.audit(), "decision").is_empty(),
        "no refused connection reached the gate"
    );

    // The listener keeps serving after failed handshakes.
    let ok = client(&certs, Some(agent_file_identity(&certs, "main")))
        .post(check_url(&s))
        .json(&check_body("read", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn curl_reaches_a_tls_admin_listener_only_when_it_trusts_the_ca() {
    let mut certs = PathBuf::new();
    let s = start_with(|config, dir| {
        certs = make_certs(dir);
        config.listeners.admin.tls = Some(server_tls(&certs, false));
    })
    .await;
    let url = format!("https://localhost:{}/healthz", s.running.admin_addr.port());
    let curl = |cacert: Option<PathBuf>| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["--silent", "--show-error", "--fail", "--max-time", "10"]);
        if let Some(ca) = cacert {
            cmd.arg("--cacert").arg(ca);
        }
        cmd.arg(&url).output()
    };
    let trusted = curl(Some(certs.join("ca.pem"))).await.unwrap();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = curl(None).await.unwrap();
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    // Plain HTTP to a TLS listener gets no answer either.
    let plain = s
        .http
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            s.running.admin_addr.port()
        ))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn a_missing_certificate_file_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path());
    config.listeners.agent.tls = Some(ListenerTls {
        cert: dir.path().join("nope.pem"),
        key: dir.path().join("nope.key"),
        client_ca: None,
        require_client_cert: false,
    });
    let err = match clawgate::app::start(config).await {
        Ok(_) => panic!("started without its certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("agent listener") && err.contains("nope.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn mcp_gateway_takes_authenticated_as_from_the_client_certificate() {
    let mut certs = PathBuf::new();
    let s = start_with(|config, dir| {
        certs = make_certs(dir);
        config.listeners.agent.tls = Some(server_tls(&certs, true));
        // Every call is denied, so the (unreachable) upstream is never asked.
        config.policy.dir = Some(crate::common::write_bundle(
            &dir.join("policy"),
            &[(
                "main.rego",
                "package clawgate\n\ndecision := {\"effect\": \"deny\", \"risk\": \"high\", \"reasons\": [\"test\"]}\n",
            )],
        ));
        config.mcp.servers.insert(
            "demo".into(),
            clawgate::config::McpServerConfig {
                url: "http://127.0.0.1:9/mcp".into(),
                headers: Default::default(),
                bearer_token_env: None,
                timeout_ms: 1_000,
            },
        );
    })
    .await;
    let resp = client(&certs, Some(agent_file_identity(&certs, "main")))
        .post(format!(
            "https://localhost:{}/mcp/demo",
            s.running.agent_addr.port()
        ))
        .header("accept", "application/json, text/event-stream")
        .header("x-clawgate-agent", "ops")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "drop_database", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let decisions = audit_entries(s.running.audit(), "decision");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    // The header names the agent; the certificate says who actually authenticated.
    assert_eq!(decisions[0]["agent"]["id"], "ops");
    assert_eq!(decisions[0]["agent"]["authenticated_as"], "main");
}

#[tokio::test]
async fn optional_client_certificates_authenticate_only_those_who_present_one() {
    let mut certs = PathBuf::new();
    let s = start_with(|config, dir| {
        certs = make_certs(dir);
        config.listeners.agent.tls = Some(ListenerTls {
            require_client_cert: false,
            ..server_tls(&certs, true)
        });
    })
    .await;
    for pem in [None, Some(agent_file_identity(&certs, "main"))] {
        let resp = client(&certs, pem)
            .post(check_url(&s))
            .json(&check_body("read", json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let decisions = audit_entries(s.running.audit(), "decision");
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(decisions[0]["agent"].get("authenticated_as").is_none());
    assert_eq!(decisions[1]["agent"]["authenticated_as"], "main");
}

#[tokio::test]
async fn the_cli_reaches_a_tls_admin_listener_with_ca_cert() {
    let mut certs = PathBuf::new();
    let s = start_with(|config, dir| {
        certs = make_certs(dir);
        config.listeners.admin.tls = Some(server_tls(&certs, false));
        config.admin.token_sha256 = Some(clawgate::admin::auth::AdminToken::hash_hex("tls-admin"));
    })
    .await;
    let url = format!("https://localhost:{}", s.running.admin_addr.port());
    let ca = certs.join("ca.pem");
    let cli = |args: Vec<String>| {
        tokio::process::Command::new(BIN)
            .args(args)
            .env_remove("CLAWGATE_ADMIN_CA")
            .env_remove("CLAWGATE_ADMIN_TOKEN")
            .output()
    };
    let with_ca = |cmd: &[&str]| {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--url".into(),
            url.clone(),
            "--token".into(),
            "tls-admin".into(),
        ]);
        v.extend(["--ca-cert".into(), ca.display().to_string()]);
        v
    };
    // The approvals API (reqwest) and the streamed audit export both go over TLS.
    let out = cli(with_ca(&["approvals", "list"])).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(with_ca(&["audit", "export"])).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export = String::from_utf8_lossy(&out.stdout);
    assert!(export.lines().count() >= 2, "{export}");
    // Without the CA the listener's certificate is not trusted.
    let mut args = with_ca(&["approvals", "list"]);
    args.truncate(args.len() - 2);
    let out = cli(args).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
}
