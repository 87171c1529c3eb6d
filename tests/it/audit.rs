//! The audit log end to end: decisions and results recorded durably through the real HTTP
//! API, redaction, verification of real redb files and exports, tamper detection, concurrent
//! writers, fail-closed behaviour and crash safety of the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{TOY_POLICY, check_body, start_with, write_bundle};
use clawgate::audit::checkpoint::NoteVerifier;
use clawgate::audit::store::{CHECKPOINTS, ENTRIES, META, split_entry};
use clawgate::audit::verify::verify_db;
use clawgate::audit::{AuditReader, merkle};
use redb::ReadableTable;
use serde_json::{Value, json};

use crate::common::BIN;

async fn toy(checkpoint_every: u64) -> crate::common::Sidecar {
    start_with(move |c, dir| {
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
        c.audit.checkpoint_every = checkpoint_every;
    })
    .await
}

fn db_path(s: &crate::common::Sidecar) -> PathBuf {
    s.running.config.audit_path()
}

fn verifier(s: &crate::common::Sidecar) -> NoteVerifier {
    NoteVerifier::parse(s.running.audit().verifier_key()).unwrap()
}

fn entries(reader: &AuditReader) -> Vec<Value> {
    let mut out = Vec::new();
    reader
        .for_each_entry(0, None, |_, _, json| {
            out.push(serde_json::from_slice(json).unwrap());
            Ok(true)
        })
        .unwrap();
    out
}

#[tokio::test]
async fn every_decision_is_recorded_before_the_answer_with_secrets_redacted() {
    let s = toy(1000).await;
    let params = json!({"command": "curl -H 'Authorization: Bearer abcdefghijklmnopqrstuv' https://x",
                        "token_note": "ghp_0123456789abcdefghijklmnopqrstuvwxyz"});
    let (_, d) = s.check("exec", params.clone()).await;
    let seq = d["audit_seq"]
        .as_u64()
        .expect("decision carries its audit seq");

    // Read it back from the live database, read-only, while the sidecar keeps writing.
    // The running sidecar's own reader: the file is its alone while it runs.
    let reader = s.running.audit().reader().unwrap();
    let entry = reader.entry(seq).unwrap().expect("entry is durable");
    assert_eq!(entry["kind"], "decision");
    assert_eq!(entry["decision_id"], d["id"]);
    assert_eq!(entry["decision"], "deny");
    assert_eq!(entry["policy_revision"], d["policy_revision"]);
    assert_eq!(entry["agent"]["run_id"], "run-1");
    assert_eq!(entry["requester"]["sender_id"], "U1");
    assert_eq!(entry["environment"], "production");
    // Redacted, but bound to the unredacted action by its hash.
    let command = entry["action"]["params"]["command"].as_str().unwrap();
    assert!(!command.contains("abcdefghijklmnop"), "{command}");
    assert!(command.contains("[REDACTED:bearer_token]"), "{command}");
    assert_eq!(
        entry["action"]["params"]["token_note"],
        "[REDACTED:github_token]"
    );
    assert_eq!(
        entry["redacted"],
        json!(["action.params.command", "action.params.token_note"])
    );
    let unredacted = clawgate::action::Action::tool("exec", Some(params));
    assert_eq!(entry["action_hash"], unredacted.canonical_hash());
    assert_eq!(entry["action_hash"], d["action_hash"]);

    // The first entries of a fresh log: key created, policy loaded, startup.
    let all = entries(&reader);
    let kinds: Vec<_> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..3], &["key", "policy", "lifecycle"]);
    assert_eq!(all[0]["event"], "created");
    assert_eq!(all[1]["event"], "loaded");
    assert_eq!(all[0]["prev"], "0".repeat(64));
}

#[tokio::test]
async fn results_are_recorded_and_a_run_reads_as_a_timeline() {
    let s = toy(1000).await;
    let (_, d) = s.check("read", json!({"path": "README.md"})).await;
    let report = json!({"decision_id": d["id"], "ok": true, "duration_ms": 12,
        "result_sha256": "ab".repeat(32), "size": 2048, "run_id": "run-1", "tool_call_id": "call-1"});
    let resp = s
        .http
        .post(s.agent("/v1/results"))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["recorded"], true);

    for (bad, code) in [
        (
            json!({"decision_id": d["id"], "ok": true, "duration_ms": 1, "result_sha256": "xyz"}),
            "invalid_request",
        ),
        (
            json!({"decision_id": "", "ok": true, "duration_ms": 1}),
            "invalid_request",
        ),
        (json!({"ok": true, "duration_ms": 1}), "invalid_request"),
    ] {
        let resp = s
            .http
            .post(s.agent("/v1/results"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
    }

    // The running sidecar's own reader: the file is its alone while it runs.
    let reader = s.running.audit().reader().unwrap();
    let timeline = clawgate::audit::export::timeline(&reader, "run-1").unwrap();
    let kinds: Vec<_> = timeline
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["decision", "result"]);
    assert_eq!(timeline[1]["result_sha256"], "ab".repeat(32));
    let table = clawgate::audit::export::render_timeline(&timeline);
    assert!(table.contains("allow (allow, low)"), "{table}");
    assert!(table.contains("12 ms"), "{table}");
}

#[tokio::test]
async fn concurrent_writers_produce_a_gap_free_verified_chain() {
    let s = toy(50).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let http = s.http.clone();
        let url = s.agent("/v1/check");
        tasks.spawn(async move {
            let d: Value =
                crate::common::post_json(&http, &url, &check_body("read", json!({"i": i}))).await;
            d["audit_seq"].as_u64().unwrap()
        });
    }
    let mut seqs = Vec::new();
    while let Some(seq) = tasks.join_next().await {
        seqs.push(seq.unwrap());
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 400, "every decision has its own entry");
    // Group commit batched them: far fewer write transactions than entries.
    let health = s.running.audit().health().clone();
    assert!(health.batches() < 400, "batches: {}", health.batches());

    let v = verifier(&s);
    let db = db_path(&s);
    s.running.shutdown(Duration::from_secs(5)).await;
    let summary = verify_db(&db, v, |_, _| {}).unwrap().expect("log verifies");
    assert!(summary.entries >= 404, "{summary:?}");
    assert_eq!(
        summary.checkpoint_size, summary.entries,
        "final checkpoint covers all"
    );
    // One per 50 entries at most, signed at the end of the batch that crosses the mark.
    assert!(summary.checkpoints >= 2, "{summary:?}");
    // Gap-free: entries are exactly 0..n.
    let reader = AuditReader::open(&db).unwrap();
    let mut expected = 0;
    reader
        .for_each_entry(0, None, |k, _, json| {
            let e: Value = serde_json::from_slice(json).unwrap();
            assert_eq!((k, e["seq"].as_u64().unwrap()), (expected, expected));
            expected += 1;
            Ok(true)
        })
        .unwrap();
}

#[tokio::test]
async fn an_audit_log_that_cannot_be_written_denies_and_fails_readiness() {
    let s = toy(1000).await;
    let (_, before) = s.check("read", json!({})).await;
    assert_eq!(before["decision"], "allow");
    // Closing the log makes every append fail, as a dead disk would.
    s.running.audit().close().await;
    let (code, after) = s.check("read", json!({})).await;
    assert_eq!(code, 200);
    assert_eq!(after["decision"], "deny", "{after}");
    assert!(
        after["reasons"]
            .to_string()
            .contains("audit log could not record"),
        "{after}"
    );
    assert!(after.get("audit_seq").is_none());
    let ready = s.http.get(s.admin("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["audit_writable"], false);
    // Results cannot be recorded either, and say so.
    let resp = s
        .http
        .post(s.agent("/v1/results"))
        .json(&json!({"decision_id": before["id"], "ok": true, "duration_ms": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}

/// A finished log (sidecar shut down) to tamper with, plus its pinned verifier key.
async fn finished_log() -> (tempfile::TempDir, PathBuf, NoteVerifier) {
    let s = toy(10).await;
    for i in 0..40 {
        s.check(if i % 3 == 0 { "exec" } else { "read" }, json!({"i": i}))
            .await;
    }
    let v = verifier(&s);
    let db = db_path(&s);
    let keep = tempfile::tempdir().unwrap();
    s.running.shutdown(Duration::from_secs(5)).await;
    let copy = keep.path().join("audit.redb");
    std::fs::copy(&db, &copy).unwrap();
    drop(s.dir);
    (keep, copy, v)
}

fn tamper(db: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .open(db)
        .unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

fn get_entry(txn: &redb::WriteTransaction, seq: u64) -> (merkle::Hash, Value) {
    let table = txn.open_table(ENTRIES).unwrap();
    let raw = table.get(seq).unwrap().unwrap().value().to_vec();
    let (hash, json) = split_entry(&raw).unwrap();
    (hash, serde_json::from_slice(json).unwrap())
}

fn put_entry(txn: &redb::WriteTransaction, seq: u64, hash: &merkle::Hash, entry: &Value) {
    let mut value = hash.to_vec();
    value.extend(serde_json_canonicalizer::to_vec(entry).unwrap());
    txn.open_table(ENTRIES)
        .unwrap()
        .insert(seq, value.as_slice())
        .unwrap();
}

fn problem_of(db: &Path, v: NoteVerifier) -> clawgate::audit::verify::Problem {
    verify_db(db, v, |_, _| {})
        .unwrap()
        .expect_err("tampering must be detected")
}

#[tokio::test]
async fn tampering_is_detected_and_names_the_first_bad_seq() {
    let (_keep, db, v) = finished_log().await;
    let pristine = std::fs::read(&db).unwrap();
    assert!(verify_db(&db, v.clone(), |_, _| {}).unwrap().is_ok());
    let reset = || std::fs::write(&db, &pristine).unwrap();

    // A changed field, hash left as recorded.
    tamper(&db, |txn| {
        let (hash, mut e) = get_entry(txn, 12);
        e["decision"] = json!("allow");
        put_entry(txn, 12, &hash, &e);
    });
    let p = problem_of(&db, v.clone());
    assert_eq!(p.seq, Some(12), "{p}");
    assert!(p.what.contains("altered"), "{p}");
    reset();

    // A changed field with its hash recomputed: the next prev link breaks.
    tamper(&db, |txn| {
        let (_, mut e) = get_entry(txn, 12);
        e["decision"] = json!("allow");
        let hash = merkle::leaf_hash(&serde_json_canonicalizer::to_vec(&e).unwrap());
        put_entry(txn, 12, &hash, &e);
    });
    let p = problem_of(&db, v.clone());
    assert_eq!(p.seq, Some(13), "{p}");
    assert!(p.what.contains("chain is broken"), "{p}");
    reset();

    // A deleted entry.
    tamper(&db, |txn| {
        txn.open_table(ENTRIES).unwrap().remove(20).unwrap();
    });
    let p = problem_of(&db, v.clone());
    assert_eq!(p.seq, Some(20), "{p}");
    assert!(p.what.contains("missing"), "{p}");
    reset();

    // Two swapped entries.
    tamper(&db, |txn| {
        let (h5, e5) = get_entry(txn, 5);
        let (h6, e6) = get_entry(txn, 6);
        put_entry(txn, 5, &h6, &e6);
        put_entry(txn, 6, &h5, &e5);
    });
    let p = problem_of(&db, v.clone());
    assert_eq!(p.seq, Some(5), "{p}");
    assert!(p.what.contains("moved or swapped"), "{p}");
    reset();

    // A truncated tail, with the head and checkpoints rewritten to match what is left:
    // the final signed checkpoint still covers the removed entries.
    let total = AuditReader::open(&db).unwrap().head().unwrap().size;
    tamper(&db, |txn| {
        let mut entries = txn.open_table(ENTRIES).unwrap();
        for seq in total - 5..total {
            entries.remove(seq).unwrap();
        }
        let mut meta = txn.open_table(META).unwrap();
        let mut head: Value =
            serde_json::from_slice(meta.get("head").unwrap().unwrap().value()).unwrap();
        head["size"] = json!(total - 5);
        meta.insert("head", serde_json::to_vec(&head).unwrap().as_slice())
            .unwrap();
    });
    let p = problem_of(&db, v.clone());
    assert_eq!(p.seq, Some(total - 5), "{p}");
    assert!(p.what.contains("truncated"), "{p}");
    reset();

    // A truncated tail where the head was left alone.
    tamper(&db, |txn| {
        txn.open_table(ENTRIES).unwrap().remove(total - 1).unwrap();
        let mut cps = txn.open_table(CHECKPOINTS).unwrap();
        cps.remove(total).unwrap();
    });
    let p = problem_of(&db, v.clone());
    assert_eq!(p.seq, Some(total - 1), "{p}");
    assert!(p.what.contains("removed from the tail"), "{p}");
    reset();

    // A checkpoint re-signed with another key (same origin).
    tamper(&db, |txn| {
        let mut cps = txn.open_table(CHECKPOINTS).unwrap();
        let (size, note) = {
            let first = cps.first().unwrap().unwrap();
            (first.0.value(), first.1.value().to_string())
        };
        let body = note.split("\n\n").next().unwrap().to_string() + "\n";
        let origin = body.lines().next().unwrap();
        let other = clawgate::audit::checkpoint::NoteSigner::generate(origin).unwrap();
        let forged = other.sign_text(&body).unwrap();
        cps.insert(size, forged.as_str()).unwrap();
    });
    let p = problem_of(&db, v.clone());
    assert!(p.what.contains("not signed by the pinned key"), "{p}");
    reset();
    assert!(verify_db(&db, v, |_, _| {}).unwrap().is_ok());
}

#[tokio::test]
async fn the_cli_verifies_files_and_running_sidecars_and_exports_for_the_python_verifier() {
    let mut sc = crate::common::BinarySidecar::configure("[audit]\ncheckpoint_every = 7\n");
    sc.start().await;
    let data = sc.data.clone();
    let dir = &sc.dir;
    let http = reqwest::Client::new();
    for i in 0..30 {
        http.post(sc.agent_url("/v1/check"))
            .json(&check_body("read", json!({"path": format!("f{i}")})))
            .send()
            .await
            .unwrap();
    }
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let key_file = data.join("audit-signing.key");
    let (code, pubkey) = run(&["audit", "pubkey", "--key", key_file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let pubkey = pubkey.trim().to_string();
    assert!(pubkey.starts_with("clawgate/"), "{pubkey}");

    // The running sidecar, verified on this side against the pinned key.
    let url = sc.admin_url("");
    let token_file = data.join("admin.token");
    let token_file = token_file.to_str().unwrap();
    // The export is an admin endpoint: without the token it is refused.
    let no_token = dir.path().join("no.token");
    let (code, _) = run(&[
        "audit",
        "verify",
        "--url",
        &url,
        "--pubkey",
        &pubkey,
        "--token-file",
        no_token.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let (code, out) = run(&[
        "audit",
        "verify",
        "--url",
        &url,
        "--pubkey",
        &pubkey,
        "--token-file",
        token_file,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    let other =
        clawgate::audit::checkpoint::NoteSigner::generate(pubkey.split('+').next().unwrap())
            .unwrap()
            .verifier_key();
    let (code, out) = run(&[
        "audit",
        "verify",
        "--url",
        &url,
        "--pubkey",
        &other,
        "--token-file",
        token_file,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED"), "{out}");

    // The live database file is the running sidecar's alone (one-phase commits need an
    // exclusive writer): reading it is refused with a pointer to --url, and changes nothing.
    let db = data.join("audit.redb");
    let out = Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--db",
            db.to_str().unwrap(),
            "--pubkey",
            &pubkey,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("open in another process") && stderr.contains("--url"),
        "{stderr}"
    );

    // Export and check it with the stand-alone Python verifier.
    let export = dir.path().join("export.jsonl");
    let (code, _) = run(&[
        "audit",
        "export",
        "--url",
        &url,
        "--token-file",
        token_file,
        "-o",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let py = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/verify_export.py"
        ))
        .arg(&export)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");

    // OCSF export: one API Activity event per entry.
    let (code, ocsf) = run(&[
        "audit",
        "export",
        "--url",
        &url,
        "--token-file",
        token_file,
        "--format",
        "ocsf",
    ]);
    assert_eq!(code, 0);
    let first_decision = ocsf
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["unmapped"]["kind"] == "decision")
        .unwrap();
    assert_eq!(first_decision["class_uid"], 6003);
    assert_eq!(first_decision["disposition"], "Allowed");
    assert_eq!(first_decision["api"]["operation"], "read");

    // Timeline of the run through the admin listener, as a table and as JSON; a run the log
    // does not have exits 1; the endpoint wants the token.
    let live = ["--url", url.as_str(), "--token-file", token_file];
    let (code, table) = run(&[&["audit", "timeline", "run-1"][..], &live].concat());
    assert_eq!(code, 0);
    assert_eq!(table.lines().count(), 31, "{table}");
    let (code, json_out) = run(&[&["audit", "timeline", "run-1", "--json"][..], &live].concat());
    assert_eq!(code, 0);
    let entries: Vec<Value> = serde_json::from_str(&json_out).unwrap();
    assert_eq!(entries.len(), 30);
    assert!(entries.iter().all(|e| e["agent"]["run_id"] == "run-1"));
    let (code, _) = run(&[&["audit", "timeline", "no such run"][..], &live].concat());
    assert_eq!(code, 1);
    let anonymous = http
        .get(sc.admin_url("/v1/audit/timeline?run=run-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Once the sidecar has stopped, the file is anyone's to read.
    sc.signal("TERM");
    let (code, out) = run(&[
        "audit",
        "verify",
        "--db",
        db.to_str().unwrap(),
        "--pubkey",
        &pubkey,
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, table) = run(&["audit", "timeline", "run-1", "--db", db.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(table.lines().count(), 31, "{table}");
}

#[tokio::test]
async fn kill_9_under_load_loses_no_answered_decision() {
    let mut sc = crate::common::BinarySidecar::configure("[audit]\ncheckpoint_every = 25\n");
    sc.start().await;
    let data = sc.data.clone();
    let http = reqwest::Client::new();
    // 16 clients send checks as fast as they can; kill -9 after a while.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..16 {
        let http = http.clone();
        let answered = answered.clone();
        let url = sc.agent_url("/v1/check");
        clients.spawn(async move {
            for i in 0..10_000 {
                let resp = http
                    .post(&url)
                    .json(&check_body("read", json!({"c": c, "i": i})))
                    .send()
                    .await;
                let Ok(resp) = resp else { return };
                let Ok(d) = resp.json::<Value>().await else {
                    return;
                };
                if let Some(seq) = d["audit_seq"].as_u64() {
                    answered
                        .lock()
                        .unwrap()
                        .push((seq, d["id"].as_str().unwrap().to_string()));
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sc.signal("KILL");
    while clients.join_next().await.is_some() {}
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 50, "load ran: {}", answered.len());

    // Restart: the log reopens and continues; then stop and verify everything.
    sc.start().await;
    let d: Value = crate::common::post_json(
        &http,
        &sc.agent_url("/v1/check"),
        &check_body("read", json!({"after": "restart"})),
    )
    .await;
    assert_eq!(d["decision"], "allow", "{d}");
    sc.signal("TERM");

    let db = data.join("audit.redb");
    let key = std::fs::read_to_string(data.join("audit-signing.key")).unwrap();
    let v = clawgate::audit::checkpoint::NoteSigner::from_private_key(key.trim())
        .unwrap()
        .verifier();
    let summary = verify_db(&db, v, |_, _| {})
        .unwrap()
        .expect("log verifies after kill -9");
    let reader = AuditReader::open(&db).unwrap();
    for (seq, id) in &answered {
        let e = reader
            .entry(*seq)
            .unwrap()
            .expect("answered decision is in the log");
        assert_eq!(e["decision_id"], id.as_str());
    }
    assert!(summary.entries > answered.len() as u64);
    // The restart recorded a loaded key and continued the same chain.
    let all = entries(&reader);
    assert_eq!(all.iter().filter(|e| e["kind"] == "key").count(), 2);
}

// Multi-threaded: the CLI runs as a blocking child process while this runtime serves its
// admin requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_bodies_are_fetched_by_hash_and_tail_follows_new_entries() {
    use clawgate::audit::AuditEvent;
    use sha2::Digest;
    let s = toy(100).await;
    let log = s.running.audit().clone();
    let body = b"{\"result\": \"forwarded response body\"}".to_vec();
    let hash = hex::encode(sha2::Sha256::digest(&body));
    let mut event = AuditEvent::new(
        "result",
        json!({"decision_id": "d1", "ok": true, "duration_ms": 3, "result_sha256": hash, "size": body.len()}),
    );
    event.blob = Some((hash.clone(), body.clone()));
    log.append(event).await.unwrap();

    // While the sidecar runs, through its admin listener.
    let token_file = s.running.config.admin_token_path();
    let admin = s.admin("");
    let live = [
        "--url",
        admin.as_str(),
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    let blob = |hash: &str, source: &[&str]| {
        Command::new(BIN)
            .args(["audit", "blob", hash])
            .args(source)
            .output()
            .unwrap()
    };
    let out = blob(&hash, &live);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, body);
    let missing = blob(&"0".repeat(64), &live);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    // Not a hash: refused by the endpoint with a reason, not looked up.
    let bad = blob("../../etc/passwd", &live);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("64 lowercase hex"),
        "{bad:?}"
    );
    let anonymous = s
        .http
        .get(s.admin(&format!("/v1/audit/blob?sha256={hash}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // `audit tail` prints entries written after it started, and none from before. When it
    // has started is not observable from here, so entries keep coming until it prints one.
    let before = log.reader().unwrap().head().unwrap().size;
    let mut tail = Command::new(BIN)
        .args(["audit", "tail"])
        .args(live)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if line.map(|l| lines.send(l)).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let line = loop {
        log.append(AuditEvent::new("lifecycle", json!({"event": "tail-test"})))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(line) = printed.try_recv() {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit tail printed nothing in 20 s"
        );
    };
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["event"], "tail-test", "{entry}");
    assert!(entry["seq"].as_u64().unwrap() >= before, "{entry}");
    // It keeps following: the next entries arrive in order, none skipped.
    let seq = entry["seq"].as_u64().unwrap();
    for _ in 0..3 {
        log.append(AuditEvent::new("lifecycle", json!({"event": "more"})))
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let line = printed
            .recv_timeout(Duration::from_secs(10))
            .expect("tail keeps following");
        let e: Value = serde_json::from_str(&line).unwrap();
        seqs.push(e["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, (seq + 1..seq + 4).collect::<Vec<_>>());
    let _ = tail.kill();
    let _ = tail.wait();

    // After shutdown, straight from the file.
    let db = db_path(&s);
    s.running.shutdown(Duration::from_secs(5)).await;
    let out = blob(&hash, &["--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, body);
}

#[tokio::test]
async fn entries_are_checkpointed_on_time_when_the_count_is_not_reached() {
    use clawgate::audit::AuditEvent;
    let dir = tempfile::tempdir().unwrap();
    // checkpoint_every is never reached here: only the interval can sign.
    let log = crate::common::open_audit_log(dir.path(), 1_000_000, Duration::from_secs(1)).await;
    let receipt = log
        .append(AuditEvent::new(
            "result",
            json!({"decision_id": "d1", "ok": true}),
        ))
        .await
        .unwrap();
    let reader = log.reader().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let covered = loop {
        let checkpoints = reader.checkpoints().unwrap();
        if let Some((size, note)) = checkpoints.last().filter(|(size, _)| *size > receipt.seq) {
            break (*size, note.clone());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint covers seq {} after 15 s with a 1 s interval: {checkpoints:?}",
            receipt.seq
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let verifier = NoteVerifier::parse(log.verifier_key()).unwrap();
    let body = clawgate::audit::checkpoint::open_note(&covered.1, &verifier).unwrap();
    let checkpoint = clawgate::audit::checkpoint::Checkpoint::parse_body(body).unwrap();
    assert_eq!(checkpoint.size, covered.0, "{body}");
    log.close().await;
}

#[tokio::test]
async fn a_group_of_entries_is_one_commit_and_stands_or_falls_together() {
    use clawgate::audit::AuditEvent;
    let dir = tempfile::tempdir().unwrap();
    let log = crate::common::open_audit_log(dir.path(), 100, Duration::from_secs(60)).await;
    let batches = log.health().batches();
    let size = log.health().size();
    let receipts = log
        .append_all(vec![
            AuditEvent::new("approval", json!({"event": "answer", "n": 1})),
            AuditEvent::new("approval", json!({"event": "resolved", "n": 2})),
            AuditEvent::new("approval", json!({"event": "consumed", "n": 3})),
        ])
        .await
        .unwrap();
    let seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![size, size + 1, size + 2]);
    assert_eq!(
        log.health().batches(),
        batches + 1,
        "one commit for the group"
    );

    // One bad member refuses the whole group before anything is queued.
    let err = log
        .append_all(vec![
            AuditEvent::new("approval", json!({"event": "answer"})),
            AuditEvent::new("approval", json!({"seq": 1})),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("seq"), "{err}");
    assert_eq!(
        log.health().size(),
        size + 3,
        "nothing of the refused group was written"
    );
    let reader = log.reader().unwrap();
    let kinds: Vec<Value> = (size..size + 3)
        .map(|s| reader.entry(s).unwrap().unwrap()["event"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![json!("answer"), json!("resolved"), json!("consumed")]
    );
    log.close().await;
}

/// The chain head is stored with checkpoints and every 1,024 entries, not with every commit, so
/// after a crash it can be behind the last entry. Such a file (here: a real log whose stored
/// head and checkpoints are put back to an earlier point, which is what a crash leaves) still
/// verifies, and opening it brings the head up to the last entry and continues the chain.
/// A head that names an entry that is not there, or one with another hash, is still refused.
#[tokio::test]
async fn a_head_behind_the_last_entry_is_caught_up_on_open() {
    use clawgate::audit::AuditEvent;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.redb");
    let log = crate::common::open_audit_log(dir.path(), 1000, Duration::from_secs(60)).await;
    for n in 0..3 {
        log.append(AuditEvent::new("test", json!({"n": n})))
            .await
            .unwrap();
    }
    log.close().await;
    let early = AuditReader::open(&db).unwrap().head().unwrap();
    assert_eq!(early.size, 4, "the key entry and three");
    // The file as the current layout leaves it after a clean close: the head is exact. This is
    // also every file written before the head was stored less often (each commit wrote it).
    let log = crate::common::open_audit_log(dir.path(), 1000, Duration::from_secs(60)).await;
    for n in 3..10 {
        log.append(AuditEvent::new("test", json!({"n": n})).with_run(Some("run-a")))
            .await
            .unwrap();
    }
    let verifier = NoteVerifier::parse(log.verifier_key()).unwrap();
    log.close().await;
    let full = AuditReader::open(&db).unwrap().head().unwrap();
    assert_eq!(full.size, 12);

    let tamper = |head: &Value, keep_checkpoints_to: u64| {
        let file = redb::Database::create(&db).unwrap();
        let txn = file.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("head", serde_json::to_vec(head).unwrap().as_slice())
                .unwrap();
            let mut cps = txn.open_table(CHECKPOINTS).unwrap();
            cps.retain(|size, _| size <= keep_checkpoints_to).unwrap();
        }
        txn.commit().unwrap();
    };
    // What a crash leaves: the head and checkpoints of size 4, entries up to 11.
    tamper(&serde_json::to_value(&early).unwrap(), early.size);
    let summary = verify_db(&db, verifier.clone(), |_, _| {})
        .unwrap()
        .unwrap();
    assert_eq!(summary.entries, 12);
    assert_eq!(AuditReader::open(&db).unwrap().head().unwrap().size, 4);

    // Opening catches the head up to entry 11 (hash and Merkle frontier as the clean close
    // stored them) and the chain continues from there.
    let log = crate::common::open_audit_log(dir.path(), 1000, Duration::from_secs(60)).await;
    let head = log.reader().unwrap().head().unwrap();
    assert_eq!(head.size, 12);
    assert_eq!(head.last_hash, full.last_hash);
    assert_eq!(head.frontier, full.frontier);
    let receipt = log
        .append(AuditEvent::new("test", json!({"n": 10})))
        .await
        .unwrap();
    assert_eq!(receipt.seq, 13, "after the loaded key entry");
    assert_eq!(
        log.reader().unwrap().run_seqs("run-a").unwrap(),
        (5..12).collect::<Vec<_>>()
    );
    log.close().await;
    let summary = verify_db(&db, verifier.clone(), |_, _| {})
        .unwrap()
        .unwrap();
    assert_eq!(summary.entries, 14);

    // A head beyond the last entry, or naming another hash, is refused on open.
    let good = AuditReader::open(&db).unwrap().head().unwrap();
    let mut beyond = serde_json::to_value(&good).unwrap();
    beyond["size"] = json!(good.size + 1);
    tamper(&beyond, u64::MAX);
    let err = clawgate::audit::AuditLog::open(
        crate::common::audit_options(dir.path(), 1000, Duration::from_secs(60)),
        clawgate::audit::redact::Redactor::new(&[], &[], &[]).unwrap(),
    )
    .await
    .err()
    .expect("a head beyond the entries is refused");
    assert!(err.to_string().contains("is missing"), "{err}");
    let mut other = serde_json::to_value(&good).unwrap();
    other["last_hash"] = json!("ab".repeat(32));
    tamper(&other, u64::MAX);
    let err = clawgate::audit::AuditLog::open(
        crate::common::audit_options(dir.path(), 1000, Duration::from_secs(60)),
        clawgate::audit::redact::Redactor::new(&[], &[], &[]).unwrap(),
    )
    .await
    .err()
    .expect("a head naming another hash is refused");
    assert!(err.to_string().contains("another hash"), "{err}");
}

/// On a multi-thread runtime an append that is the only one under way commits on its own
/// thread, and concurrent ones go through the writer thread's group commit. Mixed, every entry
/// lands exactly once, a group stays together, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_and_concurrent_appends_make_one_chain() {
    use clawgate::audit::AuditEvent;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let log =
        Arc::new(crate::common::open_audit_log(dir.path(), 50, Duration::from_secs(60)).await);
    // One at a time: one commit per append.
    let before = log.health().batches();
    for n in 0..20 {
        let receipt = log
            .append(AuditEvent::new("test", json!({"n": n})))
            .await
            .unwrap();
        assert_eq!(receipt.seq, 1 + n, "after the key entry");
    }
    assert_eq!(log.health().batches() - before, 20);
    // Eight at a time, single entries and groups of two.
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..25u64 {
                if n % 5 == 0 {
                    let receipts = log
                        .append_all(vec![
                            AuditEvent::new("test", json!({"task": task, "n": n, "part": 1})),
                            AuditEvent::new("test", json!({"task": task, "n": n, "part": 2})),
                        ])
                        .await
                        .unwrap();
                    assert_eq!(
                        receipts[1].seq,
                        receipts[0].seq + 1,
                        "a group is one commit"
                    );
                    seqs.extend(receipts.iter().map(|r| r.seq));
                } else {
                    seqs.push(
                        log.append(AuditEvent::new("test", json!({"task": task, "n": n})))
                            .await
                            .unwrap()
                            .seq,
                    );
                }
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (21..21 + 8 * 30).collect::<Vec<_>>());
    let verifier = NoteVerifier::parse(log.verifier_key()).unwrap();
    log.close().await;
    let err = log
        .append(AuditEvent::new("test", json!({"late": true})))
        .await
        .expect_err("closed");
    assert_eq!(err, clawgate::audit::AuditError::Closed);
    let summary = verify_db(&dir.path().join("audit.redb"), verifier, |_, _| {})
        .unwrap()
        .unwrap();
    assert_eq!(summary.entries, 21 + 8 * 30);
}

/// A crash after the journal's sync and before redb got the entries: every acknowledged entry
/// (single appends, a two-entry `append_all`, run index rows, a checkpoint signed in the
/// frozen stretch) is replayed on the next open, and by an offline reader, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_journaled_but_not_in_redb_are_replayed_after_a_crash() {
    use clawgate::audit::AuditEvent;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = crate::common::audit_options(dir.path(), 25, Duration::from_secs(60));
    // A small ring, so that the appends before the crash wrap around it several times.
    opts.journal_bytes = 64 << 10;
    let redactor = || clawgate::audit::redact::Redactor::new(&[], &[], &[]).unwrap();
    let log = clawgate::audit::AuditLog::open(opts.clone(), redactor())
        .await
        .unwrap();
    for n in 0..150 {
        log.append(AuditEvent::new(
            "test",
            json!({"n": n, "pad": "x".repeat(600)}),
        ))
        .await
        .unwrap();
    }
    let verifier = NoteVerifier::parse(log.verifier_key()).unwrap();
    // A durable redb commit empties the ring, so the frozen stretch fits in it (the writer
    // would otherwise wait for redb, which a frozen log never gives it).
    log.checkpoint_now().await.unwrap();
    log.freeze_redb_for_tests();
    let mut receipts = Vec::new();
    for n in 0..30 {
        receipts.push(
            log.append(AuditEvent::new("test", json!({"n": n})).with_run(Some("run-z")))
                .await
                .unwrap(),
        );
    }
    receipts.extend(
        log.append_all(vec![
            AuditEvent::new("test", json!({"step": "answer"})),
            AuditEvent::new("test", json!({"step": "resolved"})),
        ])
        .await
        .unwrap(),
    );
    // What a kill -9 leaves: the files as they are now.
    let crashed = tempfile::tempdir().unwrap();
    for name in ["audit.redb", "audit.journal", "audit-signing.key"] {
        std::fs::copy(dir.path().join(name), crashed.path().join(name)).unwrap();
    }
    let offline = tempfile::tempdir().unwrap();
    for name in ["audit.redb", "audit.journal"] {
        std::fs::copy(dir.path().join(name), offline.path().join(name)).unwrap();
    }
    drop(log);

    let last = receipts.last().unwrap().seq;
    // An offline reader replays first.
    let db = offline.path().join("audit.redb");
    let summary = verify_db(&db, verifier.clone(), |_, _| {})
        .unwrap()
        .expect("the replayed log verifies");
    assert_eq!(summary.entries, last + 1);

    // So does the sidecar, and the chain goes on.
    let mut opts = opts;
    opts.path = crashed.path().join("audit.redb");
    opts.key_path = crashed.path().join("audit-signing.key");
    let log = clawgate::audit::AuditLog::open(opts, redactor())
        .await
        .unwrap();
    let reader = log.reader().unwrap();
    for r in &receipts {
        let mut found = None;
        reader
            .for_each_entry(r.seq, Some(r.seq + 1), |_, hash, _| {
                found = hash.map(hex::encode);
                Ok(false)
            })
            .unwrap();
        assert_eq!(found.as_deref(), Some(r.hash.as_str()), "seq {}", r.seq);
    }
    assert_eq!(
        reader.run_seqs("run-z").unwrap(),
        receipts[..30].iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    assert!(
        reader
            .checkpoints()
            .unwrap()
            .iter()
            .any(|(size, _)| *size > receipts[0].seq && *size <= last + 1),
        "the checkpoint signed while redb was frozen was replayed"
    );
    let next = log
        .append(AuditEvent::new("test", json!({"after": true})))
        .await
        .unwrap();
    assert_eq!(next.seq, last + 2, "after the loaded key entry");
    drop(reader);
    log.close().await;
    let db = crashed.path().join("audit.redb");
    let summary = verify_db(&db, verifier, |_, _| {}).unwrap().unwrap();
    assert_eq!(summary.entries, last + 3);
}

/// A journal whose record of an entry redb holds says another hash is refused, not replayed
/// over the log.
#[tokio::test]
async fn a_journal_that_contradicts_the_log_is_refused() {
    use clawgate::audit::AuditEvent;
    let dir = tempfile::tempdir().unwrap();
    let log = crate::common::open_audit_log(dir.path(), 1000, Duration::from_secs(60)).await;
    for n in 0..5 {
        log.append(AuditEvent::new("test", json!({"n": n})))
            .await
            .unwrap();
    }
    log.close().await;
    // Replay would start at the journal's first record again (as after a crash right after
    // the first open), and entry 3 in redb no longer has the hash its record carries.
    let db = dir.path().join("audit.redb");
    {
        let file = redb::Database::create(&db).unwrap();
        let txn = file.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("journal", br#"{"pos":0,"seq":0,"clean":false}"#.as_slice())
                .unwrap();
            let mut entries = txn
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("entries"))
                .unwrap();
            let mut value = entries.get(3).unwrap().unwrap().value().to_vec();
            value[..32].fill(0xee);
            entries.insert(3, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = AuditReader::open(&db).err().expect("refused");
    assert!(err.to_string().contains("refusing to replay"), "{err}");
    assert!(err.to_string().contains("entry 3"), "{err}");
    let opts = crate::common::audit_options(dir.path(), 1000, Duration::from_secs(60));
    let redactor = clawgate::audit::redact::Redactor::new(&[], &[], &[]).unwrap();
    let err = clawgate::audit::AuditLog::open(opts, redactor)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("refusing to replay"), "{err}");
}
