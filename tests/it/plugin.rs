//! The OpenClaw plugin (`examples/openclaw-plugin`), loaded by Node as OpenClaw loads it
//! (`tests/plugin/harness.mjs`), against real sidecars over TLS: with `sidecarCaFile` it talks
//! only to a listener whose certificate comes from that CA, so a process holding the port
//! while clawgate restarts gets no request, no token and no say (threat model, finding 11).

use std::path::{Path, PathBuf};

use crate::common::mcp::root;
use crate::common::{Sidecar, TOY_POLICY, audit_entries, start_with, write_bundle};
use crate::tls::{make_certs, server_tls};
use serde_json::{Value, json};

/// A sidecar whose agent listener serves TLS from a CA of its own (in `certs/` of its dir),
/// and allows reads.
async fn tls_sidecar() -> (Sidecar, PathBuf) {
    let mut certs = PathBuf::new();
    let sidecar = start_with(|config, dir| {
        certs = make_certs(dir);
        config.listeners.agent.tls = Some(server_tls(&certs, false));
        config.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
    })
    .await;
    (sidecar, certs)
}

/// Run the plugin's before_tool_call once with `config`; (its answer, what it logged).
async fn before_tool_call(config: Value) -> (Value, Vec<String>) {
    before_tool_call_trusting(config, None).await
}

/// [`before_tool_call`] with Node trusting `extra_ca` besides the system store
/// (`NODE_EXTRA_CA_CERTS`), as an impostor with a publicly trusted certificate would be.
async fn before_tool_call_trusting(config: Value, extra_ca: Option<&str>) -> (Value, Vec<String>) {
    let node = &crate::common::openclaw::openclaw().node;
    let mut cmd = tokio::process::Command::new(node);
    if let Some(ca) = extra_ca {
        cmd.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let out = cmd
        .arg(root().join("tests/plugin/harness.mjs"))
        .arg(root().join("examples/openclaw-plugin/index.js"))
        .arg(config.to_string())
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "harness failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let logged = line["logged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (line["answer"].clone(), logged)
}

fn https_url(s: &Sidecar) -> String {
    format!("https://127.0.0.1:{}", s.running.agent_addr.port())
}

fn ca(certs: &Path) -> String {
    certs.join("ca.pem").display().to_string()
}

#[tokio::test]
async fn a_pinned_plugin_talks_only_to_the_sidecar_its_ca_vouches_for() {
    let (real, real_certs) = tls_sidecar().await;
    // The impostor: another listener on the agent's machine with a certificate of its own
    // that would allow everything.
    let (impostor, impostor_certs) = tls_sidecar().await;
    let token = "agent-secret-token";

    let (answer, logged) = before_tool_call(json!({
        "sidecarUrl": https_url(&real), "sidecarCaFile": ca(&real_certs), "token": token,
    }))
    .await;
    assert_eq!(
        answer,
        Value::Null,
        "the real sidecar's allow lets the call run: {logged:?}"
    );
    assert_eq!(audit_entries(real.running.audit(), "decision").len(), 1);

    // Node trusts the impostor's CA (as it would a public CA's certificate); the pin does not.
    let (answer, _) = before_tool_call_trusting(
        json!({"sidecarUrl": https_url(&impostor), "sidecarCaFile": ca(&real_certs), "token": token}),
        Some(&ca(&impostor_certs)),
    )
    .await;
    assert_eq!(answer["block"], true, "{answer}");
    let reason = answer["blockReason"].as_str().unwrap();
    assert!(
        reason.contains("is unreachable") && reason.contains("fail closed"),
        "{reason}"
    );
    assert!(
        audit_entries(impostor.running.audit(), "decision").is_empty(),
        "the impostor received a request (and the agent's token)"
    );

    // Unpinned, the same plugin hands the impostor the token and obeys its allow: the threat.
    let (answer, _) = before_tool_call_trusting(
        json!({"sidecarUrl": https_url(&impostor), "token": token}),
        Some(&ca(&impostor_certs)),
    )
    .await;
    assert_eq!(answer, Value::Null);
    assert_eq!(audit_entries(impostor.running.audit(), "decision").len(), 1);

    // Pinned but pointed at plain http, or at a CA file that is not there: nothing is sent.
    let plain = format!("http://127.0.0.1:{}", impostor.running.agent_addr.port());
    let (answer, logged) = before_tool_call(json!({
        "sidecarUrl": plain, "sidecarCaFile": ca(&real_certs), "token": token,
    }))
    .await;
    assert_eq!(answer["block"], true, "{answer}");
    assert!(
        answer["blockReason"]
            .as_str()
            .unwrap()
            .contains("is not https"),
        "{answer}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.contains("every tool call will be blocked")),
        "{logged:?}"
    );
    let (answer, _) = before_tool_call(json!({
        "sidecarUrl": https_url(&real), "sidecarCaFile": "/nonexistent/ca.pem", "token": token,
    }))
    .await;
    assert!(
        answer["blockReason"]
            .as_str()
            .unwrap()
            .contains("cannot be read (ENOENT)"),
        "{answer}"
    );
    // Nothing more reached either of them.
    assert_eq!(audit_entries(impostor.running.audit(), "decision").len(), 1);
    assert_eq!(audit_entries(real.running.audit(), "decision").len(), 1);
}
