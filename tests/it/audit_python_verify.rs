//! The stand-alone Python verifier (`scripts/verify_export.py`, also printed in
//! `docs/audit-format.md`) against a real export: it must accept what clawgate writes,
//! agree with the Rust verifier on the Merkle root, and name the seq of each tampering.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clawgate::action::Action;
use clawgate::audit::checkpoint::NoteVerifier;
use clawgate::audit::export::{ExportFormat, export, verify_export};
use clawgate::audit::verify::Problem;
use clawgate::audit::{AuditEvent, AuditReader};
use serde_json::{Value, json};

const EVENTS: u64 = 50;
const CHECKPOINT_EVERY: u64 = 7;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Entry contents chosen to exercise every corner of RFC 8785 the script implements.
fn event(i: u64) -> AuditEvent {
    let kinds = ["decision", "result", "policy", "lifecycle", "custom_kind"];
    let kind = kinds[(i % 5) as usize];
    let mut deep = json!({"bottom": "ok"});
    for level in 0..30 {
        deep = json!({"level": level, "next": deep, "list": [level, [level]]});
    }
    let fields = match i % 10 {
        0 => {
            json!({"n": i, "nested": {"b": [1, {"c": null, "a": true}], "a": {}, "z": [], "f": false}})
        }
        1 => json!({
            "n": i,
            "text": "h\u{e9}llo w\u{f6}rld \u{2014} \u{4e2d}\u{6587} \u{1f600} \u{10ffff} \u{fffd}",
            // UTF-16 order puts U+1F600 (D83D DE00) before U+E000; code point order does not.
            "keys": {"\u{e000}": 1, "\u{1f600}": 2, "\u{ff}": 3, "a": 4, "": 5, "\u{7f}": 6,
                     "\u{10000}": 7, "\u{ffff}": 8, "A": 9, "aa": 10, "\u{20ac}": 11},
        }),
        2 => json!({
            "n": i,
            "escapes": "quote \" backslash \\ slash / tab \t nl \n cr \r bs \u{8} ff \u{c}",
            "controls": "\u{0}\u{1}\u{1f}\u{7f}\u{80}\u{9f}\u{2028}\u{2029}\u{feff}",
            "keys": {"key\"with\\escapes\n\u{1}": "value", "\t": "tab"},
        }),
        3 => json!({
            "n": i,
            "big": u64::MAX,
            "small": i64::MIN,
            "beyond_2_53": 9_007_199_254_740_993u64,
            "at_2_53": 9_007_199_254_740_992u64,
            "below_2_53": 9_007_199_254_740_991u64,
            "neg": -1,
            "zero": 0,
        }),
        4 => json!({
            "n": i,
            "float": 1.5,
            "tiny": 1e-7,
            "huge": 1e300,
            "neg_zero": -0.0,
            "whole_float": 2.0,
            "in_list": [0.1, 3, {"x": -2.5}],
        }),
        5 => {
            let params = json!({"command": "ls -la", "password": "hunter2", "n": i});
            let action = Action::tool("exec", Some(params));
            json!({
                "n": i,
                "decision_id": format!("d-{i}"),
                "decision": "allow",
                "effect": "allow",
                "risk": "low",
                "reasons": ["listed files", "token ghp_0123456789abcdefghijklmnopqrstuvwxyz"],
                "policy_revision": "sha256:abc",
                "mode": "enforce",
                "environment": "production",
                "action_hash": action.canonical_hash(),
                "action": action,
                "agent": {"id": "main", "session": "agent:main:main"},
            })
        }
        6 => json!({
            "n": i,
            "decision_id": format!("d-{}", i - 1),
            "ok": true,
            "duration_ms": 12,
            "result_sha256": "00".repeat(32),
        }),
        7 => json!({"n": i, "deep": deep}),
        8 => json!({"n": i, "empty": "", "strings": ["", " ", "\u{0}", "a\u{0}b"]}),
        _ => json!({"n": i, "array": [null, true, false, 0, -0, "x", [], {}, [[[]]]]}),
    };
    AuditEvent::new(kind, fields)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_script(dir: &Path, name: &str, lines: &[String]) -> Run {
    let path = dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    let out = Command::new("python3")
        .arg(repo_file("scripts/verify_export.py"))
        .arg(&path)
        .output()
        .expect("python3 must be installed to run this test");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What the Rust verifier, with the pinned key, says about an export.
fn rust_problem(lines: &[String], pinned: &NoteVerifier) -> Problem {
    let text = lines.join("\n");
    verify_export(text.as_bytes(), pinned.clone(), |_| {}).expect_err("tampering is detected")
}

/// The script fails, naming `seq` and saying `what`.
fn assert_fails(dir: &Path, name: &str, lines: &[String], seq: u64, what: &str) {
    let run = run_script(dir, name, lines);
    assert_eq!(run.code, Some(1), "{name}: {}{}", run.stdout, run.stderr);
    let prefix = format!("FAILED at seq {seq}: ");
    assert!(
        run.stderr.starts_with(&prefix) && run.stderr.contains(what),
        "{name}: expected {prefix:?} and {what:?}, got {:?}",
        run.stderr
    );
}

fn seq_of(line: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(line).unwrap();
    v.get("entry").map(|e| e["seq"].as_u64().unwrap())
}

fn index_of_seq(lines: &[String], seq: u64) -> usize {
    lines.iter().position(|l| seq_of(l) == Some(seq)).unwrap()
}

#[tokio::test]
async fn python_script_verifies_a_real_export_and_names_each_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.redb");
    let log =
        crate::common::open_audit_log(dir.path(), CHECKPOINT_EVERY, Duration::from_secs(3600))
            .await;
    for i in 0..EVENTS {
        log.append(event(i)).await.unwrap();
    }
    log.checkpoint_now().await.unwrap();
    let verifier_key = log.verifier_key().to_string();
    log.close().await;
    drop(log);

    let total = EVENTS + 1; // the `key` entry comes first
    let mut buf = Vec::new();
    let reader = AuditReader::open(&db).unwrap();
    let written = export(&reader, ExportFormat::Jsonl, 0, &mut buf, None).unwrap();
    assert_eq!(written, total);
    let checkpoints = reader.checkpoints().unwrap();
    let sizes: Vec<u64> = checkpoints.iter().map(|(s, _)| *s).collect();
    assert_eq!(sizes, [7, 14, 21, 28, 35, 42, 49, 51]);

    // The Rust verifier, with the pinned key, is the reference.
    let pinned = NoteVerifier::parse(&verifier_key).unwrap();
    let summary = verify_export(buf.as_slice(), pinned.clone(), |_| {}).unwrap();
    assert_eq!(summary.entries, total);
    assert_eq!(summary.checkpoints, sizes.len() as u64);

    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len() as u64, total + sizes.len() as u64);

    // The intact export: same entry count, root and checkpoints as the Rust verifier.
    let run = run_script(dir.path(), "intact.jsonl", &lines);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "ok: {total} entries, root {}, {} checkpoints matched\n",
            summary.root,
            sizes.len()
        )
    );
    assert!(
        run.stderr.contains("signatures not checked"),
        "{}",
        run.stderr
    );

    // Redaction happened before storage, and the kept action hash is of the clean action.
    let decision: Value = serde_json::from_str(&lines[index_of_seq(&lines, 6)]).unwrap();
    let entry = &decision["entry"];
    assert_eq!(entry["action"]["params"]["password"], "[REDACTED]");
    assert_eq!(
        entry["redacted"],
        json!(["action.params.password", "reasons.1"])
    );
    let clean = Action::tool(
        "exec",
        Some(json!({"command": "ls -la", "password": "hunter2", "n": 5})),
    );
    assert_eq!(entry["action_hash"], clean.canonical_hash());

    // 1. A field of entry 10 changed, its hash left alone.
    let mut altered = lines.clone();
    let at = index_of_seq(&altered, 10);
    assert_eq!(altered[at].matches("\"n\":9").count(), 1, "{}", altered[at]);
    altered[at] = altered[at].replace("\"n\":9", "\"n\":99");
    assert_fails(dir.path(), "altered.jsonl", &altered, 10, "altered");
    assert_eq!(rust_problem(&altered, &pinned).seq, Some(10));

    // 2. Entry 20 deleted.
    let mut deleted = lines.clone();
    deleted.remove(index_of_seq(&deleted, 20));
    assert_fails(dir.path(), "deleted.jsonl", &deleted, 20, "deleted");
    assert_eq!(rust_problem(&deleted, &pinned).seq, Some(20));

    // 3. Entries 30 and 31 swapped.
    let mut swapped = lines.clone();
    let (a, b) = (index_of_seq(&swapped, 30), index_of_seq(&swapped, 31));
    swapped.swap(a, b);
    assert_fails(dir.path(), "swapped.jsonl", &swapped, 30, "swapped");
    assert_eq!(rust_problem(&swapped, &pinned).seq, Some(30));

    // 4. The tail below the last checkpoint cut off, the checkpoint lines kept.
    let last = *sizes.last().unwrap();
    let cut = last - 2;
    let kept: Vec<String> = lines
        .iter()
        .filter(|l| seq_of(l).is_none_or(|s| s < cut))
        .cloned()
        .collect();
    assert_fails(dir.path(), "truncated.jsonl", &kept, cut, "tail was cut");
    assert_eq!(rust_problem(&kept, &pinned).seq, Some(cut));

    // 4b. Cut at a line, checkpoints and all: only a checkpoint from elsewhere shows it.
    let cut_file = lines[..index_of_seq(&lines, cut)].to_vec();
    let run = run_script(dir.path(), "cut.jsonl", &cut_file);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with(&format!("ok: {cut} entries, ")));
    let latest = json!({"checkpoint": checkpoints.last().unwrap().1, "size": last}).to_string();
    let with_latest: Vec<String> = std::iter::once(latest).chain(cut_file).collect();
    assert_fails(
        dir.path(),
        "cut-latest.jsonl",
        &with_latest,
        cut,
        "tail was cut",
    );
    assert_eq!(rust_problem(&with_latest, &pinned).seq, Some(cut));

    // 5. A checkpoint whose root was replaced by another checkpoint's root.
    let mut forged = lines.clone();
    let root_of = |size: u64| {
        let note = &checkpoints.iter().find(|(s, _)| *s == size).unwrap().1;
        note.lines().nth(2).unwrap().to_string()
    };
    let at = forged
        .iter()
        .position(|l| l.starts_with("{\"checkpoint\"") && l.ends_with("\"size\":28}"))
        .unwrap();
    forged[at] = forged[at].replace(&root_of(28), &root_of(21));
    assert_fails(dir.path(), "forged.jsonl", &forged, 27, "Merkle root");
    // The Rust verifier already refuses the note itself: its signature no longer verifies.
    let problem = rust_problem(&forged, &pinned);
    assert!(
        problem.what.contains("not signed by the pinned key"),
        "{problem}"
    );

    // 6. Not an export line at all.
    let mut garbage = lines.clone();
    garbage.insert(index_of_seq(&garbage, 3), "{\"entry\": 1.5}".into());
    assert_fails(dir.path(), "garbage.jsonl", &garbage, 3, "line 4 is not");
    assert_eq!(rust_problem(&garbage, &pinned).seq, Some(3));
}

/// `docs/audit-format.md` prints the script verbatim; the two must not drift apart.
#[test]
fn doc_embeds_the_script_verbatim() {
    let doc = std::fs::read_to_string(repo_file("docs/audit-format.md")).unwrap();
    let script = std::fs::read_to_string(repo_file("scripts/verify_export.py")).unwrap();
    let start = doc
        .find("```python\n")
        .expect("docs/audit-format.md has a ```python block")
        + "```python\n".len();
    let len = doc[start..]
        .find("\n```\n")
        .expect("the python block is closed")
        + 1;
    assert_eq!(
        &doc[start..start + len],
        script,
        "the script block in docs/audit-format.md differs from scripts/verify_export.py"
    );
}
