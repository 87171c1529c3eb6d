//! The egress forward proxy against real peers on loopback: curl as the client, a real HTTP
//! server and a real WebSocket server as destinations. Destinations are told apart by
//! address: 127.0.0.2 is allowed by the test's policy data, 127.0.0.1 stays blocked like
//! every loopback address in the default bundle. Names are pinned with `egress.resolve`, so
//! nothing needs DNS and nothing leaves the machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Sidecar, audit_entries, start_with};
use clawgate::config::Config;
use clawgate::identity::{IdentityConfig, Scopes};
use clawgate::token::TokenHash;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const APPROVER_TOKEN: &str = "egress-test-ops-token";
const ADMIN_TOKEN: &str = "egress-test-admin-token";
/// Responses over this size are cut off (the test bundle's low tier).
const SIZE_LIMIT: usize = 2000;

/// The embedded bundle with 127.0.0.2 reachable, tunnels to any port, and a small response
/// size limit for reads.
fn test_bundle(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let out = dir.join("policy");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        std::fs::copy(&path, out.join(name)).unwrap();
    }
    let data_path = out.join("data.json");
    let mut data: Value = serde_json::from_slice(&std::fs::read(&data_path).unwrap()).unwrap();
    data["clawgate"]["network"]["allowed_cidrs"] = json!(["127.0.0.2/32"]);
    data["clawgate"]["tiers"]["low"]["constraints"]["max_response_bytes"] = json!(SIZE_LIMIT);
    // Test servers listen on random ports, not 443/80.
    data["clawgate"]["network"]["unusual_port_rule"]["effect"] = json!("allow");
    std::fs::write(&data_path, serde_json::to_vec_pretty(&data).unwrap()).unwrap();
    out
}

async fn sidecar() -> Sidecar {
    sidecar_with(|_| {}).await
}

async fn sidecar_with(extra: impl FnOnce(&mut Config)) -> Sidecar {
    start_with(move |c, dir| {
        c.policy.dir = Some(test_bundle(dir));
        c.policy.watch = false;
        c.approval.hold_s = 1;
        c.approval
            .groups
            .insert("operators".into(), vec!["U_OPS".into()]);
        c.admin.token_sha256 = Some(clawgate::admin::auth::AdminToken::hash_hex(ADMIN_TOKEN));
        // The approver answers with a token of their own (the admin token answers only as
        // the local operator).
        let token_sha256 = clawgate::admin::auth::AdminToken::hash_hex(APPROVER_TOKEN);
        c.approvers.insert(
            "U_OPS".into(),
            clawgate::admin::ApproverCredential {
                token_sha256,
                webhook_secret: None,
            },
        );
        let pin = |name: &str, ip: &str| (name.to_string(), vec![ip.parse().unwrap()]);
        c.egress.resolve = [
            pin("allowed.test", "127.0.0.2"),
            pin("harmless.example.com", "127.0.0.1"),
            pin("mapped.example.com", "::ffff:127.0.0.1"),
        ]
        .into_iter()
        .collect();
        extra(c);
    })
    .await
}

/// Token of the identity `openclaw-main` (hex: safe to put in a URL as it is).
const MAIN_TOKEN: &str = "6f70656e636c61772d6d61696e2d746f6b656e";
/// Token of the identity `odd`, with characters that must be percent-encoded in a URL.
const ODD_TOKEN: &str = "a/b+c=d@e:f";
/// Token of the identity `narrow`, whose egress scope excludes allowed.test.
const NARROW_TOKEN: &str = "narrow-token";

fn identities(c: &mut Config) {
    let mut add = |name: &str, token: &str, egress_hosts: Option<Vec<String>>| {
        c.identities.insert(
            name.into(),
            IdentityConfig {
                token_sha256: Some(TokenHash::hex_of(token)),
                scopes: Scopes {
                    egress_hosts,
                    ..Scopes::default()
                },
                ..IdentityConfig::default()
            },
        );
    };
    add("openclaw-main", MAIN_TOKEN, None);
    add("odd", ODD_TOKEN, None);
    add("narrow", NARROW_TOKEN, Some(vec!["*.github.com".into()]));
}

fn proxy(s: &Sidecar) -> String {
    format!("http://{}", s.running.egress_addr)
}

struct Curl {
    code: i32,
    status: u16,
    body: String,
    stderr: String,
}

/// curl through the egress proxy; `-w` appends the status on its own line.
async fn curl(s: &Sidecar, args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-x",
            &proxy(s),
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Curl {
        code: out.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn decisions(s: &Sidecar, kind: &str) -> Vec<Value> {
    audit_entries(s.running.audit(), "decision")
        .into_iter()
        .filter(|e| e["action"]["kind"] == kind)
        .collect()
}

/// The result entries, once `n` of them are recorded (results are written in the background).
async fn results(s: &Sidecar, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = audit_entries(s.running.audit(), "result");
        if found.len() >= n {
            return found;
        }
        assert!(Instant::now() < deadline, "{} of {n} results", found.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_decided_forwarded_and_audited() {
    let s = sidecar().await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let url = format!("http://allowed.test:{}/hello?x=1", upstream.addr.port());
    let r = curl(
        &s,
        &[
            "-H",
            "Authorization: Bearer sk-live-secret",
            "-H",
            "X-Trace: t1",
            &url,
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.status, r.body.as_str()),
        (0, 200, "ok"),
        "{}",
        r.stderr
    );
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello");
    assert_eq!(seen[0].header("authorization"), "Bearer sk-live-secret");
    assert_eq!(
        seen[0].header("host"),
        format!("allowed.test:{}", upstream.addr.port())
    );
    assert!(!seen[0].headers.contains_key("proxy-connection"));

    let d = &decisions(&s, "http")[0];
    assert_eq!(d["decision"], "allow");
    let action = &d["action"];
    assert_eq!(action["http"]["method"], "GET");
    assert_eq!(action["http"]["host"], "allowed.test");
    assert_eq!(action["http"]["path"], "/hello");
    assert_eq!(action["http"]["query"], "x=1");
    assert_eq!(action["http"]["headers"]["x-trace"], "t1");
    // Evidence keeps the request but never the credential: the header is there, redacted.
    assert_eq!(action["http"]["headers"]["authorization"], "[REDACTED]");
    assert_eq!(action["dest"]["ips"], json!(["127.0.0.2"]));
    let result = &results(&s, 1).await[0];
    assert_eq!(result["decision_id"], d["decision_id"]);
    assert_eq!(result["status"], 200);
    assert_eq!(result["size"], 2);
    assert_eq!(
        result["result_sha256"],
        "2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_blocked_addresses_are_refused_before_connecting() {
    let s = sidecar().await;
    // A server on 127.0.0.1 that must never be reached.
    let canary = Receiver::start(Reply::ok(), &[]).await;
    let port = canary.addr.port();
    for host in [
        "harmless.example.com",
        "mapped.example.com",
        "127.0.0.1",
        "localhost",
    ] {
        let r = curl(&s, &[&format!("http://{host}:{port}/")]).await;
        assert_eq!(r.status, 403, "{host}: {} {}", r.body, r.stderr);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"]["code"], "denied_by_policy", "{host}");
        assert_eq!(body["decision"], "deny");
        assert!(body["decision_id"].as_str().is_some_and(|d| !d.is_empty()));
        let reasons = body["reasons"].to_string();
        assert!(
            reasons.contains("private") || reasons.contains("loopback"),
            "{host}: {reasons}"
        );
        // Through a CONNECT tunnel too (curl -p), where the 403 ends the tunnel attempt.
        let r = curl(&s, &["-p", &format!("http://{host}:{port}/")]).await;
        assert_ne!(r.code, 0, "{host}: tunnel must fail");
        assert!(r.stderr.contains("403"), "{host}: {}", r.stderr);
    }
    assert_eq!(canary.count(), 0, "nothing reached the blocked destination");
    let mapped = decisions(&s, "http")
        .into_iter()
        .find(|d| d["action"]["dest"]["host"] == "mapped.example.com")
        .unwrap();
    // The IPv4 address inside the IPv4-mapped IPv6 answer is judged too.
    assert_eq!(
        mapped["action"]["dest"]["ips"],
        json!(["::ffff:127.0.0.1", "127.0.0.1"])
    );
    assert_eq!(decisions(&s, "connect").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_carry_http_and_websockets() {
    let s = sidecar().await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let url = format!(
        "http://allowed.test:{}/through-tunnel",
        upstream.addr.port()
    );
    let r = curl(&s, &["-p", &url]).await;
    assert_eq!(
        (r.code, r.status, r.body.as_str()),
        (0, 200, "ok"),
        "{}",
        r.stderr
    );
    assert_eq!(upstream.requests()[0].path, "/through-tunnel");

    // A WebSocket echo server, reached through CONNECT.
    let ws = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let ws_port = ws.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = ws.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(msg)) = socket.next().await {
            if msg.is_text() {
                socket.send(msg).await.unwrap();
            }
        }
    });
    let stream = connect_tunnel(&s, &format!("allowed.test:{ws_port}")).await;
    let (mut socket, _) =
        tokio_tungstenite::client_async(format!("ws://allowed.test:{ws_port}/echo"), stream)
            .await
            .expect("websocket handshake through the tunnel");
    socket.send("hello through clawgate".into()).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(
        echoed.into_text().unwrap().as_str(),
        "hello through clawgate"
    );
    socket.close(None).await.unwrap();
    drop(socket);

    let connects = decisions(&s, "connect");
    assert_eq!(connects.len(), 2);
    assert!(connects.iter().all(|d| d["decision"] == "allow"));
    assert_eq!(connects[1]["action"]["dest"]["port"], ws_port);
    let results = results(&s, 2).await;
    let ws_result = results
        .iter()
        .find(|r| r["decision_id"] == connects[1]["decision_id"])
        .unwrap();
    assert_eq!(ws_result["status"], 200);
    assert!(ws_result["size"].as_u64().unwrap() > 0);
}

/// Open a CONNECT tunnel by hand and return the stream once the proxy said 200.
async fn connect_tunnel(s: &Sidecar, target: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(s.running.egress_addr)
        .await
        .unwrap();
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut reader = BufReader::new(&mut stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_name_the_approval_and_the_identical_retry_passes_once_approved() {
    let s = sidecar().await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let url = format!("http://allowed.test:{}/deploy", upstream.addr.port());
    let post = [
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"service":"api","version":"1.2.3"}"#,
        url.as_str(),
    ];
    let started = Instant::now();
    let r = curl(&s, &post).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held for approval.hold_s"
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "approval_pending");
    let approval = body["approval_id"].as_str().unwrap().to_string();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&approval)
    );
    assert_eq!(upstream.count(), 0);
    let d = &decisions(&s, "http")[0];
    assert_eq!(d["action"]["http"]["body"]["version"], "1.2.3");
    assert!(d["action"]["http"]["body_sha256"].as_str().is_some());

    let answer = json!({"decision": "approve", "approver": "U_OPS"});
    let (status, _) = s.answer_approval(APPROVER_TOKEN, &approval, &answer).await;
    assert_eq!(status, 200);

    // Another body is another action: still held.
    let other = curl(
        &s,
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"service":"db"}"#,
            &url,
        ],
    )
    .await;
    assert_eq!(other.status, 403);
    let r = curl(&s, &post).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{}", r.stderr);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json()["version"], "1.2.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_limits_cut_off_large_responses() {
    let s = sidecar().await;
    let big: &'static str = Box::leak("x".repeat(SIZE_LIMIT * 3).into_boxed_str());
    let upstream = Receiver::start_on(
        "127.0.0.2",
        Reply {
            body: big,
            ..Reply::ok()
        },
        &[],
    )
    .await;
    let url = format!("http://allowed.test:{}/big", upstream.addr.port());
    let r = curl(&s, &[&url]).await;
    assert_ne!(r.code, 0, "the body was cut off: {}", r.stderr);
    assert!(
        r.body.len() <= SIZE_LIMIT + 4,
        "{} bytes got through",
        r.body.len()
    );
    let result = &results(&s, 1).await[0];
    assert_eq!(result["ok"], false);
    assert!(
        result["error"].as_str().unwrap().contains("size limit"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proxy_requests_get_clear_errors_and_reach_nobody() {
    let s = sidecar().await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    // An origin-form request: someone used the proxy as a web server.
    let resp = s
        .http
        .get(format!("{}/hello", proxy(&s)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_a_proxy_request");

    // CONNECT without a port.
    let mut stream = tokio::net::TcpStream::connect(s.running.egress_addr)
        .await
        .unwrap();
    stream
        .write_all(b"CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        .await
        .unwrap();
    let mut status = String::new();
    BufReader::new(&mut stream)
        .read_line(&mut status)
        .await
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");

    // A body over egress.max_request_body_bytes.
    let big = "y".repeat(9 * 1024 * 1024);
    let path = s.dir.path().join("big.txt");
    std::fs::write(&path, big).unwrap();
    let url = format!("http://allowed.test:{}/upload", upstream.addr.port());
    let r = curl(
        &s,
        &["--data-binary", &format!("@{}", path.display()), &url],
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);

    // A name nobody can resolve.
    let r = curl(&s, &["http://no-such-host.invalid/"]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "unresolvable_destination");
    assert_eq!(upstream.count(), 0);
}

/// An HTTPS server on 127.0.0.2 with a certificate for `hosts` from `ca`; answers
/// "secure ok" and records each request's method and path.
async fn tls_upstream(
    ca: &clawgate::tls::ca::CertificateAuthority,
    hosts: &[&str],
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (
        port,
        crate::common::serve_https_recording(listener, ca, hosts),
    )
}

struct Inspection {
    s: Sidecar,
    /// The clawgate CA (what clients trust to be inspected).
    clawgate_ca: PathBuf,
    /// The CA of the real upstream (trusted by clawgate through egress.extra_roots).
    upstream_ca: PathBuf,
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    untrusted_port: u16,
}

async fn inspection() -> Inspection {
    use clawgate::tls::ca::CertificateAuthority;
    let dir = tempfile::tempdir().unwrap().keep();
    let ca = CertificateAuthority::create("clawgate test CA", 1).unwrap();
    let clawgate_ca = dir.join("ca.pem");
    std::fs::write(&clawgate_ca, ca.cert_pem()).unwrap();
    std::fs::write(dir.join("ca.key"), ca.key_pem()).unwrap();
    let upstream_issuer = CertificateAuthority::create("upstream CA", 1).unwrap();
    let upstream_ca = dir.join("upstream-ca.pem");
    std::fs::write(&upstream_ca, upstream_issuer.cert_pem()).unwrap();
    let (port, seen) = tls_upstream(&upstream_issuer, &["secure.test", "passthrough.test"]).await;
    // An upstream whose certificate nobody trusts.
    let stranger = CertificateAuthority::create("unknown CA", 1).unwrap();
    let (untrusted_port, _) = tls_upstream(&stranger, &["untrusted.test"]).await;
    let (cert, key, roots) = (clawgate_ca.clone(), dir.join("ca.key"), upstream_ca.clone());
    let s = start_with(move |c, dir| {
        c.policy.dir = Some(test_bundle(dir));
        c.policy.watch = false;
        c.approval.hold_s = 1;
        let pin = |name: &str| (name.to_string(), vec!["127.0.0.2".parse().unwrap()]);
        c.egress.resolve = ["secure.test", "passthrough.test", "untrusted.test"]
            .into_iter()
            .map(pin)
            .collect();
        c.egress.tls_inspect = true;
        c.egress.ca_cert = Some(cert);
        c.egress.ca_key = Some(key);
        c.egress.extra_roots = vec![roots];
        c.egress.pass_through = vec!["passthrough.test".into()];
    })
    .await;
    Inspection {
        s,
        clawgate_ca,
        upstream_ca,
        port,
        seen,
        untrusted_port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspected_tunnels_decide_every_request_inside() {
    let t = inspection().await;
    let ca = t.clawgate_ca.display().to_string();
    let url = format!("https://secure.test:{}/inspected?page=2", t.port);
    // Trusting only the clawgate CA works: the tunnel is terminated with a minted leaf.
    let r = curl(&t.s, &["--cacert", &ca, &url]).await;
    assert_eq!(
        (r.code, r.status, r.body.as_str()),
        (0, 200, "secure ok"),
        "{}",
        r.stderr
    );
    // Without it the client refuses the inspection certificate.
    let r = curl(&t.s, &[&url]).await;
    // 60: curl could not verify the peer's certificate.
    assert_eq!(
        r.code, 60,
        "an untrusted inspection certificate must fail: {}",
        r.stderr
    );
    // A mutation inside the tunnel is its own action: held for approval, never sent.
    let r = curl(
        &t.s,
        &[
            "--cacert",
            &ca,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"drop":"all"}"#,
            &url,
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{} {}", r.body, r.stderr);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "approval_pending");
    assert_eq!(*t.seen.lock().unwrap(), vec!["GET /inspected".to_string()]);

    let http = decisions(&t.s, "http");
    assert_eq!(http.len(), 2, "{http:#?}");
    let get = &http[0]["action"]["http"];
    assert_eq!(get["scheme"], "https");
    assert_eq!(get["method"], "GET");
    assert_eq!(get["path"], "/inspected");
    assert_eq!(get["query"], "page=2");
    assert_eq!(get["host"], "secure.test");
    assert_eq!(http[1]["action"]["http"]["body"]["drop"], "all");
    assert_eq!(http[1]["decision"], "pending");
    let results = results(&t.s, 1).await;
    assert!(
        results
            .iter()
            .any(|r| r["decision_id"] == http[0]["decision_id"] && r["status"] == 200),
        "{results:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_authenticate_with_proxy_authorization_and_are_scoped() {
    let s = sidecar_with(identities).await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let url = format!("http://allowed.test:{}/who", upstream.addr.port());

    // No credential: 407 with a challenge, and nothing is decided.
    let r = curl(&s, &["-i", &url]).await;
    assert_eq!(r.status, 407, "{} {}", r.body, r.stderr);
    assert!(
        r.body
            .to_ascii_lowercase()
            .contains("proxy-authenticate: bearer"),
        "{}",
        r.body
    );
    // A wrong token is refused the same way.
    let r = curl(&s, &["-U", "openclaw-main:wrong", &url]).await;
    assert_eq!(r.status, 407, "{}", r.body);
    assert!(decisions(&s, "http").is_empty());
    assert_eq!(upstream.count(), 0);

    // Basic NAME:TOKEN (curl -U), plain and through a CONNECT tunnel.
    let r = curl(&s, &["-U", &format!("openclaw-main:{MAIN_TOKEN}"), &url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{}", r.stderr);
    let r = curl(
        &s,
        &["-p", "-U", &format!("openclaw-main:{MAIN_TOKEN}"), &url],
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{}", r.stderr);
    // Bearer works too.
    let bearer = format!("Proxy-Authorization: Bearer {ODD_TOKEN}");
    let r = curl(&s, &["-H", &bearer, &url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{}", r.stderr);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    // The proxy credential never reaches the destination.
    assert!(
        seen.iter()
            .all(|r| !r.headers.contains_key("proxy-authorization"))
    );
    let http = decisions(&s, "http");
    assert_eq!(http[0]["decision"], "allow");
    assert_eq!(http[0]["agent"]["authenticated_as"], "openclaw-main");
    assert_eq!(http[1]["agent"]["authenticated_as"], "odd");
    let connect = decisions(&s, "connect");
    assert_eq!(connect[0]["agent"]["authenticated_as"], "openclaw-main");

    // An identity whose egress scope leaves the host out: 403 naming the scope.
    let r = curl(&s, &["-U", &format!("narrow:{NARROW_TOKEN}"), &url]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "denied_by_policy");
    let reasons = body["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reasons.contains("identity narrow is not scoped for egress host \"allowed.test\"")
            && reasons.contains("scopes.egress_hosts: *.github.com"),
        "{reasons}"
    );
    let denied = decisions(&s, "http").pop().unwrap();
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["agent"]["authenticated_as"], "narrow");
    assert_eq!(upstream.count(), 3);
}

/// `openclaw proxy validate --json`: (exit code, report, stdout + stderr for messages).
async fn proxy_validate(
    config: &Value,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, Value, String) {
    let oc = crate::common::openclaw::openclaw();
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("openclaw.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut all = vec!["proxy", "validate", "--json", "--timeout-ms", "10000"];
    all.extend_from_slice(args);
    let (code, out, err) = oc.run_with_env(&path, home.path(), &all, env).await;
    let text = format!("exit {code}\n--- stdout\n{out}\n--- stderr\n{err}");
    let report = out
        .find('{')
        .and_then(|start| serde_json::from_str(&out[start..]).ok())
        .unwrap_or_else(|| panic!("no JSON report\n{text}"));
    (code, report, text)
}

fn check<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} check in {report:#}"))
}

/// Exit 0 and `ok: true`: the allowed check reached the upstream through clawgate, and the
/// built-in loopback canary was not reached. OpenClaw tunnels even `http://` through CONNECT,
/// so clawgate's 403 to the canary's CONNECT shows up as a transport error ("fetch failed"),
/// which the built-in canary counts as blocked; [`assert_canary_denied`] checks that it was
/// clawgate's policy that refused it.
fn assert_validated(code: i32, report: &Value, text: &str, allowed_url: &str) {
    assert_eq!((code, &report["ok"]), (0, &json!(true)), "{text}");
    let allowed = check(report, "allowed");
    assert_eq!(allowed["url"], allowed_url, "{text}");
    assert_eq!(
        (&allowed["ok"], &allowed["status"]),
        (&json!(true), &json!(200)),
        "{text}"
    );
    let denied = check(report, "denied");
    assert_eq!(denied["ok"], true, "{text}");
}

/// The canary of this report was denied by policy (for `who`), in the audit log.
fn assert_canary_denied(s: &Sidecar, report: &Value, who: Option<&str>) {
    let canary = check(report, "denied")["url"].as_str().unwrap().to_string();
    let port: u64 = canary
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let all = audit_entries(s.running.audit(), "decision");
    assert!(
        all.iter().any(|d| d["decision"] == "deny"
            && d["action"]["dest"]["port"] == port
            && d["action"]["dest"]["ips"] == json!(["127.0.0.1"])
            && d["agent"]["authenticated_as"].as_str() == who
            && d["reasons"][0]
                .as_str()
                .is_some_and(|r| r.starts_with("net.private_address"))),
        "{canary} {all:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_hosts_stay_opaque_and_untrusted_upstreams_are_refused() {
    let t = inspection().await;
    // The pass-through host shows its own certificate: only its real CA verifies it.
    let url = format!("https://passthrough.test:{}/opaque", t.port);
    let upstream_ca = t.upstream_ca.display().to_string();
    let r = curl(&t.s, &["--cacert", &upstream_ca, &url]).await;
    assert_eq!(
        (r.code, r.status, r.body.as_str()),
        (0, 200, "secure ok"),
        "{}",
        r.stderr
    );
    assert!(
        decisions(&t.s, "http").is_empty(),
        "pass-through requests are not inspected"
    );

    // An upstream certificate clawgate cannot verify: the inspected request fails with 502.
    let ca = t.clawgate_ca.display().to_string();
    let url = format!("https://untrusted.test:{}/", t.untrusted_port);
    let r = curl(&t.s, &["--cacert", &ca, &url]).await;
    assert_eq!(r.status, 502, "{} {}", r.body, r.stderr);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed TLS verification"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_proxy_validate_passes_against_the_egress_proxy() {
    let s = sidecar().await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let allowed_url = format!("http://allowed.test:{}/", upstream.addr.port());
    let (code, report, text) = proxy_validate(
        &json!({}),
        &["--proxy-url", &proxy(&s), "--allowed-url", &allowed_url],
        &[],
    )
    .await;
    assert_validated(code, &report, &text, &allowed_url);
    assert_eq!(upstream.count(), 1, "{text}");
    // Both checks were decided and recorded.
    let all: Vec<Value> = audit_entries(s.running.audit(), "decision");
    assert!(
        all.iter()
            .any(|d| d["decision"] == "allow" && d["action"]["dest"]["host"] == "allowed.test"),
        "{all:#?}"
    );
    assert_canary_denied(&s, &report, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_proxy_validate_with_identity_credentials() {
    let s = sidecar_with(identities).await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let allowed_url = format!("http://allowed.test:{}/", upstream.addr.port());
    let egress = s.running.egress_addr;

    // The fragment `clawgate openclaw-config` prints for this configuration: once with the
    // ${CLAWGATE_AGENT_TOKEN} placeholder OpenClaw fills in, once with the odd token written
    // in (percent-encoded in the proxy URL).
    let toml = s.dir.path().join("clawgate.toml");
    let mut text = format!("[listeners.egress]\naddr = \"{egress}\"\n");
    for (name, token) in [("openclaw-main", MAIN_TOKEN), ("odd", ODD_TOKEN)] {
        text.push_str(&format!(
            "[identities.{name}]\ntoken_sha256 = \"{}\"\n",
            TokenHash::hex_of(token)
        ));
    }
    std::fs::write(&toml, text).unwrap();
    let fragment = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::BIN)
            .args(["openclaw-config", "--config"])
            .arg(&toml)
            .args(args)
            .env("ODD_TOKEN", ODD_TOKEN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let placeholder = fragment(&["--identity", "openclaw-main"]);
    assert_eq!(
        placeholder["proxy"]["proxyUrl"],
        format!("http://openclaw-main:${{CLAWGATE_AGENT_TOKEN}}@{egress}")
    );
    let literal = fragment(&["--token-env", "ODD_TOKEN"]);
    assert_eq!(
        literal["proxy"]["proxyUrl"],
        format!("http://odd:a%2Fb%2Bc%3Dd%40e%3Af@{egress}")
    );
    // proxy validate reads only the proxy settings; the rest of the fragment stays out.
    let proxy_only = |f: &Value| json!({"proxy": f["proxy"]});

    let with_userinfo = format!("http://openclaw-main:{MAIN_TOKEN}@{egress}");
    let plain = proxy(&s);
    let empty = json!({});
    let (placeholder, literal) = (proxy_only(&placeholder), proxy_only(&literal));
    let url_args = ["--proxy-url", &with_userinfo, "--allowed-url", &allowed_url];
    let plain_args = ["--proxy-url", &plain, "--allowed-url", &allowed_url];
    let config_args = ["--allowed-url", allowed_url.as_str()];
    let token_env = [("CLAWGATE_AGENT_TOKEN", MAIN_TOKEN)];
    let (by_url, no_credential, by_placeholder, by_literal) = tokio::join!(
        proxy_validate(&empty, &url_args, &[]),
        proxy_validate(&empty, &plain_args, &[]),
        proxy_validate(&placeholder, &config_args, &token_env),
        proxy_validate(&literal, &config_args, &[]),
    );
    for ((code, report, text), who) in [
        (&by_url, "openclaw-main"),
        (&by_placeholder, "openclaw-main"),
        (&by_literal, "odd"),
    ] {
        assert_validated(*code, report, text, &allowed_url);
        assert_canary_denied(&s, report, Some(who));
        // The credential is redacted from OpenClaw's report.
        assert!(
            !text.contains(MAIN_TOKEN) && !text.contains("a%2Fb"),
            "{text}"
        );
    }
    // Without a credential the proxy answers every CONNECT with 407 (OpenClaw reports only
    // "fetch failed"): the allowed check fails, and nothing is decided for such a request.
    let (code, report, text) = no_credential;
    assert_eq!((code, &report["ok"]), (1, &json!(false)), "{text}");
    let allowed = check(&report, "allowed");
    assert_eq!(allowed["ok"], false, "{text}");
    let all = audit_entries(s.running.audit(), "decision");
    assert!(
        all.iter()
            .all(|d| d["agent"]["authenticated_as"].is_string()),
        "{all:#?}"
    );

    assert_eq!(upstream.count(), 3);
    let who: Vec<Value> = decisions(&s, "http")
        .into_iter()
        .chain(decisions(&s, "connect"))
        .filter(|d| d["decision"] == "allow")
        .map(|d| d["agent"]["authenticated_as"].clone())
        .collect();
    assert_eq!(
        who.iter().filter(|w| **w == "openclaw-main").count(),
        2,
        "{who:?}"
    );
    assert!(who.contains(&json!("odd")), "{who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_egress_listener_serves_tls_for_an_https_proxy_url() {
    use clawgate::tls::ca::CertificateAuthority;
    let certs = tempfile::tempdir().unwrap().keep();
    let ca = CertificateAuthority::create("proxy CA", 1).unwrap();
    let server = ca.issue_server(&["127.0.0.1".to_string()], 1).unwrap();
    std::fs::write(certs.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(certs.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(certs.join("server.key"), &server.key_pem).unwrap();
    let (cert, key) = (certs.join("server.pem"), certs.join("server.key"));
    let s = sidecar_with(move |c| {
        c.listeners.egress.tls = Some(clawgate::config::ListenerTls {
            cert,
            key,
            client_ca: None,
            require_client_cert: false,
        });
    })
    .await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let url = format!("http://allowed.test:{}/over-tls", upstream.addr.port());
    let proxy = format!("https://{}", s.running.egress_addr);
    let run = |extra: Vec<String>| {
        let (proxy, url) = (proxy.clone(), url.clone());
        async move {
            Command::new("curl")
                .args(["-sS", "--max-time", "20", "-x", &proxy])
                .args(extra)
                .arg(&url)
                .output()
                .await
                .expect("curl runs")
        }
    };
    // Trusting the proxy's CA: the request goes through TLS to the proxy and on upstream.
    let ca_path = certs.join("ca.pem").display().to_string();
    let out = run(vec!["--proxy-cacert".into(), ca_path]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    assert_eq!(upstream.requests()[0].path, "/over-tls");
    // Without trusting it, the client refuses the proxy.
    let out = run(Vec::new()).await;
    // 60: curl could not verify the proxy's certificate.
    assert_eq!(
        out.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn inspection_without_a_ca_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path());
    config.egress.tls_inspect = true;
    let err = match clawgate::app::start(config).await {
        Ok(_) => panic!("started without an inspection CA"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("egress.ca_cert"), "{err}");
}

/// Send `head` (a raw request, no body unless it carries one) to the egress proxy over a new
/// connection and read the answer: (status, body). The request should say `Connection: close`.
async fn raw_proxy(s: &Sidecar, head: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(s.running.egress_addr)
        .await
        .unwrap();
    exchange(stream, head).await
}

/// Write `request`, read until the peer closes, split the answer into status and body.
async fn exchange<IO>(mut stream: IO, request: &str) -> (u16, String)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer));
    // A TLS peer may close without close_notify; what arrived is what counts.
    let _ = read.await.expect("the proxy answered within 20 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The error code of a proxy error body.
fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_not_the_host_header_is_judged() {
    // Issue 15, finding 1: a POST to a production host with `Host: api.openai.com` (a trusted
    // API host) was judged as the trusted host and sent.
    let s = sidecar_with(|c| {
        identities(c);
        c.egress.resolve.insert(
            "api.prod.acme.example".into(),
            vec!["127.0.0.2".parse().unwrap()],
        );
    })
    .await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let port = upstream.addr.port();
    let auth = format!("Proxy-Authorization: Bearer {MAIN_TOKEN}\r\n");
    let post = |target: &str, hosts: &[&str], auth: &str| {
        let mut head = format!("POST {target} HTTP/1.1\r\n{auth}");
        for h in hosts {
            head.push_str(&format!("Host: {h}\r\n"));
        }
        head.push_str(
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        head
    };
    let prod = format!("http://api.prod.acme.example:{port}/deploy");
    let refused: Vec<(String, Vec<String>, &str)> = vec![
        // Another host, in any spelling, with or without a port.
        (prod.clone(), vec!["api.openai.com".into()], "host_mismatch"),
        (
            prod.clone(),
            vec!["API.OpenAI.com.".into()],
            "host_mismatch",
        ),
        (
            prod.clone(),
            vec![format!("api.openai.com:{port}")],
            "host_mismatch",
        ),
        // The right host on another port.
        (
            prod.clone(),
            vec!["api.prod.acme.example:1".into()],
            "host_mismatch",
        ),
        (
            prod.clone(),
            vec!["api.prod.acme.example".into()],
            "host_mismatch",
        ),
        // Two Host fields, one of them right.
        (
            prod.clone(),
            vec![
                format!("api.prod.acme.example:{port}"),
                "api.openai.com".into(),
            ],
            "duplicate_host",
        ),
        // Not a host at all.
        (prod.clone(), vec!["api.openai.com@x".into()], "bad_host"),
        // A URL whose userinfo looks like a host.
        (
            format!("http://api.openai.com@api.prod.acme.example:{port}/deploy"),
            vec![],
            "userinfo_in_url",
        ),
    ];
    for (target, hosts, code) in &refused {
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let (status, body) = raw_proxy(&s, &post(target, &hosts, &auth)).await;
        assert_eq!(status, 400, "{target} {hosts:?}: {body}");
        assert_eq!(error_code(&body), *code, "{target} {hosts:?}: {body}");
    }
    assert_eq!(upstream.count(), 0, "nothing refused reached the upstream");
    assert!(
        decisions(&s, "http").is_empty(),
        "refused before any decision"
    );

    // Without a Host field, and with the same host in another spelling, the production host
    // is what policy judges: held for approval, not sent.
    for hosts in [
        vec![],
        vec![format!("API.Prod.Acme.Example.:{port}")],
        vec![format!("api.prod.acme.example:{port}")],
    ] {
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let (status, body) = raw_proxy(&s, &post(&prod, &hosts, &auth)).await;
        assert_eq!(status, 403, "{hosts:?}: {body}");
        assert_eq!(error_code(&body), "approval_pending", "{hosts:?}: {body}");
    }
    let judged = decisions(&s, "http");
    assert_eq!(judged.len(), 3);
    for d in &judged {
        assert_eq!(d["action"]["http"]["host"], "api.prod.acme.example", "{d}");
        assert_eq!(d["decision"], "pending", "{d}");
    }
    assert_eq!(upstream.count(), 0);

    // An identity scoped to *.github.com cannot borrow a scoped name through Host.
    let narrow = format!("Proxy-Authorization: Bearer {NARROW_TOKEN}\r\n");
    let get = format!(
        "GET http://allowed.test:{port}/ HTTP/1.1\r\n{narrow}Host: api.github.com\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw_proxy(&s, &get).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "host_mismatch"),
        "{body}"
    );
    // The agreeing request is judged on the destination, outside the scope.
    let get = format!(
        "GET http://allowed.test:{port}/ HTTP/1.1\r\n{narrow}Host: allowed.test:{port}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw_proxy(&s, &get).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not scoped for egress host"), "{body}");

    // What is forwarded names the judged authority.
    let get = format!(
        "GET http://allowed.test:{port}/ok HTTP/1.1\r\n{auth}Host: ALLOWED.test:{port}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw_proxy(&s, &get).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("host"), format!("allowed.test:{port}"));
}

/// A TLS connection through an inspected CONNECT tunnel to `target`, trusting the clawgate CA.
async fn inspected_stream(
    t: &Inspection,
    target: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let tcp = connect_tunnel(&t.s, target).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(&t.clawgate_ca).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(clawgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = target.rsplit_once(':').unwrap().0.to_string();
    let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(server_name, tcp)
        .await
        .expect("TLS inside the tunnel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspected_requests_must_name_the_connect_target() {
    // Issue 15, finding 1, inside TLS inspection: the tunnel goes to secure.test, so a request
    // inside that names another host is refused rather than judged as that host.
    let t = inspection().await;
    let target = format!("secure.test:{}", t.port);
    let request = |line: &str, hosts: &[&str]| {
        let mut head = format!("{line} HTTP/1.1\r\n");
        for h in hosts {
            head.push_str(&format!("Host: {h}\r\n"));
        }
        head.push_str(
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        head
    };
    let other_port = format!("secure.test:{}", t.port + 1);
    let refused: Vec<(String, Vec<&str>, &str)> = vec![
        ("POST /x".into(), vec!["api.openai.com"], "host_mismatch"),
        ("POST /x".into(), vec!["API.OPENAI.COM."], "host_mismatch"),
        ("POST /x".into(), vec![other_port.as_str()], "host_mismatch"),
        ("POST /x".into(), vec![], "missing_host"),
        (
            "POST /x".into(),
            vec![target.as_str(), "api.openai.com"],
            "duplicate_host",
        ),
        (
            "POST https://api.openai.com/x".into(),
            vec![target.as_str()],
            "host_mismatch",
        ),
    ];
    for (line, hosts, code) in &refused {
        let stream = inspected_stream(&t, &target).await;
        let (status, body) = exchange(stream, &request(line, hosts)).await;
        assert_eq!(status, 400, "{line} {hosts:?}: {body}");
        assert_eq!(error_code(&body), *code, "{line} {hosts:?}: {body}");
    }
    assert!(
        t.seen.lock().unwrap().is_empty(),
        "nothing refused was sent"
    );
    assert!(
        decisions(&t.s, "http").is_empty(),
        "refused before any decision"
    );

    // The CONNECT target in another spelling is the same host; a read goes through.
    let stream = inspected_stream(&t, &target).await;
    let spelled = format!("SECURE.test.:{}", t.port);
    let get = format!("GET /fine HTTP/1.1\r\nHost: {spelled}\r\nConnection: close\r\n\r\n");
    let (status, body) = exchange(stream, &get).await;
    assert_eq!((status, body.as_str()), (200, "secure ok"));
    assert_eq!(*t.seen.lock().unwrap(), vec!["GET /fine".to_string()]);
    let http = decisions(&t.s, "http");
    assert_eq!(http[0]["action"]["http"]["host"], "secure.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_with_a_repeated_key_are_refused() {
    // Found while fixing issue 15, finding 4: policy reads the last of repeated keys in a JSON
    // body, the upstream gets the bytes, and a parser that keeps the first reads another request.
    let s = sidecar().await;
    let upstream = Receiver::start_on("127.0.0.2", Reply::ok(), &[]).await;
    let url = format!("http://allowed.test:{}/pay", upstream.addr.port());
    let json = "Content-Type: application/json";
    for body in [
        r#"{"amount": 1000000, "amount": 1}"#,
        r#"{"payment": {"to": "evil", "t\u006f": "shop"}}"#,
    ] {
        let r = curl(&s, &["-H", json, "-d", body, &url]).await;
        assert_eq!(r.status, 400, "{body}: {} {}", r.body, r.stderr);
        assert_eq!(
            error_code(&r.body),
            "repeated_json_key",
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(upstream.count(), 0);
    assert!(
        decisions(&s, "http").is_empty(),
        "refused before any decision"
    );
    // Without the repeat, or not JSON at all, the request is decided as usual (a mutation:
    // held for approval).
    for body in [r#"{"amount": 1}"#, "{not json"] {
        let r = curl(&s, &["-H", json, "-d", body, &url]).await;
        assert_eq!(r.status, 403, "{body}: {}", r.body);
        assert_eq!(
            error_code(&r.body),
            "approval_pending",
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(decisions(&s, "http").len(), 2);
}

/// An HTTP/1.1 upstream on 127.0.0.2 answering "ok" to everything; counts the connections it
/// accepted. `keep_alive: false` closes each connection after one answer, without saying so
/// (as an upstream timing out an idle connection does).
async fn counting_upstream(keep_alive: bool) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tcp.write_all(answer).await.is_err() || !keep_alive {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_reuses_upstream_connections_per_judged_destination() {
    use std::sync::atomic::Ordering;
    let s = sidecar().await;
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy(&s)).unwrap())
        .build()
        .unwrap();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let resp = client.get(&url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    // Sequential requests to one destination share one upstream connection; every one of
    // them is still judged and recorded.
    let (port, accepted) = counting_upstream(true).await;
    for i in 0..5 {
        let got = get(format!("http://allowed.test:{port}/r{i}")).await;
        assert_eq!(got, (200, "ok".to_string()));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
    let judged = decisions(&s, "http")
        .into_iter()
        .filter(|d| d["action"]["dest"]["port"] == port)
        .count();
    assert_eq!(judged, 5);
    results(&s, 5).await;

    // The same address under another name is another destination: not shared.
    let (port2, accepted2) = counting_upstream(true).await;
    let got = get(format!("http://127.0.0.2:{port2}/a")).await;
    assert_eq!(got.0, 200);
    let got = get(format!("http://allowed.test:{port2}/b")).await;
    assert_eq!(got.0, 200);
    assert_eq!(accepted2.load(Ordering::SeqCst), 2);

    // An upstream that closes each connection after one answer: every request still gets
    // its answer (on a new connection), none fails on a dead kept one.
    let (port3, accepted3) = counting_upstream(false).await;
    for i in 0..4 {
        let got = get(format!("http://allowed.test:{port3}/c{i}")).await;
        assert_eq!(got, (200, "ok".to_string()), "request {i}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted3.load(Ordering::SeqCst), 4);
}
