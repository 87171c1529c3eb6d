//! Bundle reloads: a changed bundle swaps in atomically; a broken one is rejected and the old
//! one keeps serving.

use std::time::{Duration, Instant};

use crate::common::{TOY_POLICY, start_with, write_bundle};
use serde_json::json;

async fn wait_for_revision_change(s: &crate::common::Sidecar, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rev = s.status().await["policy"]["revision"]
            .as_str()
            .unwrap()
            .to_string();
        if rev != old {
            return rev;
        }
        assert!(Instant::now() < deadline, "bundle was not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn file_changes_reload_the_bundle_and_broken_bundles_are_rejected() {
    let s = start_with(|c, dir| {
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
    })
    .await;
    let policy_dir = s.dir.path().join("policy");
    let first = s.status().await["policy"]["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, before) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(before["decision"], "deny");

    let allowing = TOY_POLICY.replace(
        "input.action.tool == \"read\"",
        "input.action.tool in {\"read\", \"exec\"}",
    );
    std::fs::write(policy_dir.join("main.rego"), &allowing).unwrap();
    let second = wait_for_revision_change(&s, &first).await;
    let (_, after) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(after["decision"], "allow");
    assert_eq!(after["policy_revision"], second.as_str());

    // A syntax error: rejected, the previous bundle keeps serving.
    std::fs::write(
        policy_dir.join("main.rego"),
        "package clawgate\ndecision := {",
    )
    .unwrap();
    // A test file that does not load: rejected too.
    std::fs::write(
        policy_dir.join("extra_test.rego"),
        "package clawgate.extra_test\ntest_x if {",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.status().await["policy"]["revision"], second.as_str());
    let (_, still) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(still["decision"], "allow");
    assert_eq!(still["policy_revision"], second.as_str());

    // Fix the policy but keep the broken test file: still rejected.
    std::fs::write(policy_dir.join("main.rego"), TOY_POLICY).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.status().await["policy"]["revision"], second.as_str());

    // Fix the test file: the bundle (now with a test) is accepted.
    std::fs::write(
        policy_dir.join("extra_test.rego"),
        "package clawgate.extra_test\ntest_x if { true }\n",
    )
    .unwrap();
    let third = wait_for_revision_change(&s, &second).await;
    assert_ne!(third, first);
    let (_, back) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(back["decision"], "deny");
}

#[tokio::test]
async fn a_bundle_without_the_entrypoint_is_rejected_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path());
    config.policy.dir = Some(write_bundle(
        &dir.path().join("policy"),
        &[("main.rego", "package clawgate\nallow := true\n")],
    ));
    let err = clawgate::app::start(config).await.err().expect("rejected");
    assert!(err.to_string().contains("data.clawgate.decision"), "{err}");
}
