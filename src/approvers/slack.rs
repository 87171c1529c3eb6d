//! Slack: the Block Kit message announcing an approval (with Approve and Deny buttons) and
//! the one replacing it once resolved, Slack's request signing (`X-Slack-Signature`) for
//! interactivity callbacks, and reading the button click out of such a callback.
//!
//! A `response_url` from a button click is a reply handle: the approval rules keep it as
//! opaque data and hand it back when the approval resolves.

use std::io;

use hmac::Mac;
use serde_json::{Value, json};

use super::signature::{SignatureError, check_skew, mac};
use crate::gate::approval::{ApprovalStatus, ApprovalView, Vote};

/// Slack's limit on the text of a section, a context element or the top-level fallback we
/// send (their documented limit is 3000 characters; counted here in UTF-16 units, which is
/// never fewer).
pub const SLACK_TEXT_MAX: usize = 3000;
/// Slack's limit on a header's plain text.
pub const SLACK_HEADER_MAX: usize = 150;
/// Slack's limit on one section field.
pub const SLACK_FIELD_MAX: usize = 2000;
/// `block_id` of the buttons; the interactivity handler looks for it.
pub const ACTIONS_BLOCK_ID: &str = "clawgate_approval";
/// Longest name (agent, approver, channel) shown; ids are far shorter.
const NAME_MAX: usize = 200;
/// Longest single reason shown, so one long reason does not push out all others.
const REASON_MAX: usize = 500;
/// Slack's signature of a request: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn slack_signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut m = mac(signing_secret.as_bytes());
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    format!("v0={}", hex::encode(m.finalize().into_bytes()))
}

/// Verify `X-Slack-Signature` against `X-Slack-Request-Timestamp` and the raw body.
pub fn verify_slack(
    signing_secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: i64,
) -> Result<(), SignatureError> {
    check_skew(timestamp, now_unix)?;
    let tag = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed("X-Slack-Signature"))?;
    let mut m = mac(signing_secret.as_bytes());
    m.update(b"v0:");
    m.update(timestamp.trim().as_bytes());
    m.update(b":");
    m.update(body);
    m.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

/// The Slack message announcing an approval request, with Approve and Deny buttons whose
/// `value` is the approval id.
pub fn slack_request_message(view: &ApprovalView) -> Value {
    let subject = view.subject();
    let mut blocks = vec![
        header(&format!("Approval needed: {subject}")),
        json!({"type": "section", "fields": summary_fields(view, &subject)}),
    ];
    if !view.reasons.is_empty() {
        let bullets: Vec<String> = view
            .reasons
            .iter()
            .map(|r| format!("• {}", esc_truncate(r, REASON_MAX)))
            .collect();
        blocks.push(section(&join_bounded(
            "*Reasons*\n",
            &bullets,
            "\n",
            SLACK_TEXT_MAX,
        )));
    }
    blocks.push(section(&arguments_text(view)));
    if let Some(runs) = programs_text(view) {
        blocks.push(section(&runs));
    }
    let approvers: Vec<String> = view.approvers.iter().map(|a| mention(a)).collect();
    let context = join_bounded(
        &format!(
            "Approval `{}` · policy `{}` · quorum {} of ",
            esc(&view.id),
            esc(short(&view.policy_revision)),
            view.quorum
        ),
        &approvers,
        ", ",
        SLACK_TEXT_MAX,
    );
    blocks.push(json!({"type": "context", "elements": [mrkdwn(&context)]}));
    blocks.push(json!({
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [
            button("approve", "Approve", "primary", &view.id),
            button("deny", "Deny", "danger", &view.id),
        ],
    }));
    let text = esc_truncate(
        &format!(
            "Approval needed: {subject} (risk {}, agent {})",
            view.risk.as_str(),
            view.agent_id
        ),
        SLACK_TEXT_MAX,
    );
    // Unfurling a link from the arguments would fetch it from Slack's side.
    json!({"text": text, "blocks": blocks, "unfurl_links": false, "unfurl_media": false})
}

/// `block_id` prefix of the buttons in a batched message. A click there answers its approval
/// but leaves the message as it is (it carries other approvals' buttons too).
pub const BATCH_BLOCK_PREFIX: &str = "clawgate_batch_";
/// Approvals listed with buttons in one batched message (Slack allows 50 blocks).
const BATCH_SHOWN: usize = 20;

/// Several new approvals in one message (a burst past `notify.batch_after`): a line and an
/// Approve / Deny pair per approval; the arguments are left to `clawgate approvals show ID`.
pub fn slack_batch_message(views: &[ApprovalView]) -> Value {
    let n = views.len();
    let mut blocks = vec![
        header(&format!("{n} approvals needed")),
        section(&format!(
            "{n} approval requests arrived in a burst and are listed together. \
             Read each one's arguments with `clawgate approvals show ID` before approving it."
        )),
    ];
    for (i, view) in views.iter().take(BATCH_SHOWN).enumerate() {
        let line = format!(
            "*{}* · agent {} · risk {} · expires {}\nApproval `{}`",
            esc_truncate(&view.subject(), SLACK_FIELD_MAX / 2),
            esc_truncate(&view.agent_id, NAME_MAX),
            view.risk.as_str(),
            esc_truncate(&view.expires_at, NAME_MAX),
            esc(&view.id),
        );
        blocks.push(section(&line));
        blocks.push(json!({
            "type": "actions",
            "block_id": format!("{BATCH_BLOCK_PREFIX}{i}"),
            "elements": [
                button("approve", "Approve", "primary", &view.id),
                button("deny", "Deny", "danger", &view.id),
            ],
        }));
    }
    if n > BATCH_SHOWN {
        let more = format!("… and {} more: `clawgate approvals list`", n - BATCH_SHOWN);
        blocks.push(json!({"type": "context", "elements": [mrkdwn(&more)]}));
    }
    json!({"text": format!("{n} approvals needed"), "blocks": blocks,
        "unfurl_links": false, "unfurl_media": false})
}

/// The message that replaces the request in Slack once it resolved: the outcome, who decided
/// (as Slack mentions where the approver is a Slack user id), and no buttons.
pub fn slack_resolved_message(view: &ApprovalView) -> Value {
    let subject = view.subject();
    let deciders: Vec<String> = view.decided_by.iter().map(|a| mention(a)).collect();
    let (title, lead) = match view.status {
        ApprovalStatus::Approved => ("Approved", "*Approved* by "),
        ApprovalStatus::Denied => ("Denied", "*Denied* by "),
        ApprovalStatus::Expired => ("Expired", "*Expired* without a decision"),
        ApprovalStatus::Pending => ("Pending", "*Pending*"),
    };
    let mut outcome = if view.status == ApprovalStatus::Expired || deciders.is_empty() {
        lead.to_string()
    } else {
        join_bounded(lead, &deciders, ", ", SLACK_TEXT_MAX / 2)
    };
    if let Some(at) = &view.resolved_at {
        outcome.push_str(&format!(" at {}", esc(at)));
    }
    let reasons: Vec<String> = view
        .answers
        .iter()
        .filter(|a| view.decided_by.contains(&a.approver))
        .filter_map(|a| {
            let reason = a.reason.as_deref()?.trim();
            (!reason.is_empty()).then(|| {
                format!(
                    "> {}: {}",
                    mention(&a.approver),
                    esc_truncate(reason, REASON_MAX)
                )
            })
        })
        .collect();
    let outcome = join_bounded(&format!("{outcome}\n"), &reasons, "\n", SLACK_TEXT_MAX);
    let context = esc_truncate(
        &format!(
            "Approval `{}` · policy `{}`",
            view.id,
            short(&view.policy_revision)
        ),
        SLACK_TEXT_MAX,
    );
    let blocks = vec![
        header(&format!("{title}: {subject}")),
        section(outcome.trim_end()),
        json!({"type": "section", "fields": summary_fields(view, &subject)}),
        json!({"type": "context", "elements": [mrkdwn(&context)]}),
    ];
    let text = esc_truncate(&format!("{title}: {subject}"), SLACK_TEXT_MAX);
    json!({"replace_original": true, "text": text, "blocks": blocks})
}

fn summary_fields(view: &ApprovalView, subject: &str) -> Vec<Value> {
    let requester = match &view.requester {
        Some(r) => {
            let who = r.sender_id.as_deref().map(mention);
            let via = r.channel.as_deref().map(|c| esc_truncate(c, NAME_MAX));
            match (who, via) {
                (Some(w), Some(c)) => format!("{w} via {c}"),
                (Some(w), None) => w,
                (None, Some(c)) => format!("via {c}"),
                (None, None) => "unknown".into(),
            }
        }
        None => "unknown".into(),
    };
    let label = match view.action.get("kind").and_then(Value::as_str) {
        Some("http") | Some("connect") => "Destination",
        Some("mcp") => "MCP tool",
        _ => "Tool",
    };
    vec![
        field("Agent", &esc_truncate(&view.agent_id, NAME_MAX)),
        field("Requester", &requester),
        field(label, &esc_truncate(subject, SLACK_FIELD_MAX / 2)),
        field("Risk", view.risk.as_str()),
        field("Expires", &esc_truncate(&view.expires_at, NAME_MAX)),
    ]
}

/// The redacted arguments as pretty JSON in a code block, cut to fit one section. The label
/// says which values were redacted and, when the arguments do not fit, that they were cut and
/// where to read them whole.
fn arguments_text(view: &ApprovalView) -> String {
    let action = &view.action;
    let part = match action.get("kind").and_then(Value::as_str) {
        Some("http") => action.get("http"),
        Some("connect") => action.get("dest"),
        _ => action.get("params"),
    };
    const SUFFIX: &str = "\n```";
    let json = match part {
        None | Some(Value::Null) => return "*Arguments*: none".into(),
        // Only as much as can be shown is rendered: arguments may be megabytes.
        Some(v) => capped_pretty(v, SLACK_TEXT_MAX * 4),
    };
    // A literal ``` inside would end the code block early.
    let json = json.replace("```", "`\u{200b}`\u{200b}`");
    let mut notes = Vec::new();
    if !view.shown.redacted.is_empty() {
        let paths: Vec<String> = view
            .shown
            .redacted
            .iter()
            .map(|p| format!("`{}`", esc_truncate(p, NAME_MAX)))
            .collect();
        notes.push(join_bounded("redacted: ", &paths, ", ", SLACK_TEXT_MAX / 8));
    }
    // Whether the whole text fits, with the longest label it could get.
    let cut_note = format!("cut to fit: `clawgate approvals show {}`", esc(&view.id));
    let label = |notes: &[String]| match notes {
        [] => "*Arguments*\n```\n".to_string(),
        notes => format!("*Arguments* ({})\n```\n", notes.join("; ")),
    };
    let mut with_cut = notes.clone();
    with_cut.push(cut_note);
    let escaped = esc(&json);
    let fits = units(&label(&with_cut)) + units(&escaped) + units(SUFFIX) <= SLACK_TEXT_MAX
        && !json.ends_with('…');
    let prefix = if fits {
        label(&notes)
    } else {
        label(&with_cut)
    };
    let budget = SLACK_TEXT_MAX - units(&prefix) - units(SUFFIX);
    format!("{prefix}{}{SUFFIX}", esc_truncate(&json, budget))
}

/// The programs a shell command runs, nested ones included, from the facts stage.
fn programs_text(view: &ApprovalView) -> Option<String> {
    let shown = &view.shown;
    if shown.programs.is_empty() {
        return None;
    }
    let names: Vec<String> = shown
        .programs
        .iter()
        .map(|p| format!("`{}`", esc_truncate(p, NAME_MAX)))
        .collect();
    let tail = if shown.programs_incomplete {
        " (the parse stopped at a limit: it may run more)"
    } else {
        ""
    };
    Some(join_bounded("*Runs* ", &names, ", ", SLACK_TEXT_MAX - units(tail)) + tail)
}

fn capped_pretty(v: &Value, cap: usize) -> String {
    struct Capped(Vec<u8>, usize);
    impl io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let room = self.1.saturating_sub(self.0.len());
            if room == 0 {
                return Err(io::Error::other("full"));
            }
            let n = room.min(b.len());
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = Capped(Vec::new(), cap);
    // Running out of room is the expected way to stop; what was written is kept.
    let _ = serde_json::to_writer_pretty(&mut w, v);
    let full = w.0.len() >= cap;
    let mut s = String::from_utf8_lossy(&w.0).into_owned();
    if full {
        s.push('…');
    }
    s
}

fn header(text: &str) -> Value {
    // Plain text is shown literally by Slack, so it needs no escaping.
    let text = truncate_units(text, SLACK_HEADER_MAX);
    json!({"type": "header", "text": {"type": "plain_text", "text": text, "emoji": false}})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": mrkdwn(text)})
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// `value` is escaped and already bounded well below the field limit by the caller.
fn field(label: &str, value: &str) -> Value {
    mrkdwn(&format!("*{label}*\n{value}"))
}

fn button(action_id: &str, label: &str, style: &str, id: &str) -> Value {
    json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": id,
    })
}

/// A Slack user id (`U…`/`W…`) as a mention; anything else as escaped text.
fn mention(id: &str) -> String {
    let slack_user = id.len() >= 3
        && id.len() <= 32
        && matches!(id.as_bytes()[0], b'U' | b'W')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if slack_user {
        format!("<@{id}>")
    } else {
        esc_truncate(id, NAME_MAX)
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// Slack's mrkdwn escaping: without it, text from the agent could ping `<!channel>` or
/// render a disguised link.
fn esc(s: &str) -> String {
    esc_truncate(s, usize::MAX)
}

/// Escape and keep at most `max` UTF-16 units, ending in `…` when cut. Never cuts an
/// escape sequence in half.
fn esc_truncate(s: &str, max: usize) -> String {
    fn piece(c: char) -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            _ => None,
        }
    }
    let width = |c: char| piece(c).map_or(c.len_utf16(), str::len);
    let whole: usize = s.chars().map(width).sum();
    // When it does not all fit, one unit is kept for the ellipsis.
    let limit = if whole <= max {
        usize::MAX
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + width(c) > limit {
            out.push('…');
            return out;
        }
        used += width(c);
        match piece(c) {
            Some(p) => out.push_str(p),
            None => out.push(c),
        }
    }
    out
}

/// Truncate already-safe text to `max` UTF-16 units.
fn truncate_units(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() + 1 > max {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// `prefix` then whole `items` joined by `sep` while they fit in `max` units; `…` marks any
/// left out. Items are never cut, so no mention or escape is broken.
fn join_bounded(prefix: &str, items: &[String], sep: &str, max: usize) -> String {
    let mut out = truncate_units(prefix, max.saturating_sub(1));
    let mut used = units(&out);
    for (n, item) in items.iter().enumerate() {
        let sep = if n == 0 { "" } else { sep };
        let need = units(sep) + units(item);
        // Room for "…" is kept unless this is the last item.
        let reserve = usize::from(n + 1 < items.len());
        if used + need + reserve > max {
            out.push('…');
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
        used += need;
    }
    out
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// An approve or deny click, read from Slack's interactivity request.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockAction {
    pub user_id: String,
    pub vote: Vote,
    pub approval_id: String,
    /// Where to replace the message once the approval resolves (a reply handle); none for a
    /// click in a batched message, which stays as it is.
    pub response_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {
    #[error("payload is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Invalid(&'static str),
}

impl BlockAction {
    /// Read the click out of Slack's form-encoded `payload` (a `block_actions` payload whose
    /// first action is our approve or deny button, carrying the approval id).
    pub fn parse(body: &[u8]) -> Result<BlockAction, InteractionError> {
        let bad = InteractionError::Invalid;
        let payload = form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or(bad("the form has no payload field"))?;
        let payload: Value = serde_json::from_str(&payload)
            .map_err(|e| InteractionError::MalformedJson(e.to_string()))?;
        if payload["type"] != "block_actions" {
            return Err(bad(
                "only block_actions payloads (button clicks) are handled",
            ));
        }
        // A non-empty string, or the error that names it.
        let text = |v: &Value, missing| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or(bad(missing))
        };
        let user_id = text(&payload["user"]["id"], "payload.user.id is missing")?;
        let action = payload["actions"]
            .as_array()
            .and_then(|a| a.first())
            .ok_or(bad("payload.actions is empty"))?;
        let vote = match action["action_id"].as_str() {
            Some("approve") => Vote::Approve,
            Some("deny") => Vote::Deny,
            _ => return Err(bad("payload.actions[0].action_id must be approve or deny")),
        };
        let approval_id = text(
            &action["value"],
            "payload.actions[0].value (the approval id) is missing",
        )?;
        let batched = action["block_id"]
            .as_str()
            .is_some_and(|b| b.starts_with(BATCH_BLOCK_PREFIX));
        let response_url = payload["response_url"]
            .as_str()
            .filter(|u| !batched && (u.starts_with("https://") || u.starts_with("http://")))
            .map(str::to_string);
        Ok(BlockAction {
            user_id,
            vote,
            approval_id,
            response_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvers::fixtures::view;
    use crate::gate::approval::model::{Answer, Channel, Vote};

    fn head(s: &str) -> String {
        s.chars().take(80).collect()
    }

    fn tail(s: &str) -> String {
        let n = s.chars().count().saturating_sub(40);
        s.chars().skip(n).collect()
    }

    fn block<'a>(msg: &'a Value, ty: &str) -> &'a Value {
        msg["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == ty)
            .unwrap_or_else(|| panic!("no {ty} block in {msg:#}"))
    }

    /// Every text in the message, with the limit that applies to it.
    fn texts(msg: &Value) -> Vec<(String, usize)> {
        let mut out = vec![(msg["text"].as_str().unwrap().to_string(), SLACK_TEXT_MAX)];
        for b in msg["blocks"].as_array().unwrap() {
            match b["type"].as_str().unwrap() {
                "header" => {
                    out.push((b["text"]["text"].as_str().unwrap().into(), SLACK_HEADER_MAX))
                }
                "section" => {
                    if let Some(t) = b["text"]["text"].as_str() {
                        out.push((t.into(), SLACK_TEXT_MAX));
                    }
                    for f in b["fields"].as_array().into_iter().flatten() {
                        out.push((f["text"].as_str().unwrap().into(), SLACK_FIELD_MAX));
                    }
                }
                "context" => {
                    for e in b["elements"].as_array().unwrap() {
                        out.push((e["text"].as_str().unwrap().into(), SLACK_TEXT_MAX));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn request_message_has_buttons_carrying_the_id() {
        let v = view();
        let msg = slack_request_message(&v);
        assert_eq!(
            block(&msg, "header")["text"]["text"],
            "Approval needed: tool exec"
        );
        let actions = block(&msg, "actions");
        assert_eq!(actions["block_id"], ACTIONS_BLOCK_ID);
        let buttons = actions["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["action_id"], "approve");
        assert_eq!(buttons[0]["style"], "primary");
        assert_eq!(buttons[1]["action_id"], "deny");
        assert_eq!(buttons[1]["style"], "danger");
        for b in buttons {
            assert_eq!(b["value"], v.id.as_str());
        }
        let all: String = texts(&msg).into_iter().map(|(t, _)| t + "\n").collect();
        for want in [
            "*Agent*\nmain",
            "*Requester*\n<@U0REQ> via slack",
            "*Tool*\ntool exec",
            "*Risk*\nhigh",
            "*Expires*\n2026-01-01T00:05:00.000Z",
            "• exec is dangerous\n• touches &lt;files&gt; &amp; more",
            "\"command\": \"rm -rf /tmp/x\"",
            "[REDACTED:github_token]",
            "quorum 1 of group:sre, <@U0APPROVER>",
            "policy `0123456789ab`",
            &v.id,
        ] {
            assert!(all.contains(want), "{want:?} missing from {all}");
        }
        assert!(
            !all.contains("0123456789abcdef0123"),
            "revision is shortened"
        );
    }

    #[test]
    fn huge_arguments_stay_within_slack_limits() {
        let mut v = view();
        v.action = json!({"kind": "mcp", "server": "fs", "tool": "write".repeat(100),
            "params": {"content": "<&>😀".repeat(10_000), "more": "x".repeat(100_000)}});
        v.reasons = (0..500).map(|i| format!("reason {i} ").repeat(5)).collect();
        v.approvers = (0..500).map(|i| format!("U{i:08}")).collect();
        v.agent_id = "a".repeat(5000);
        for msg in [slack_request_message(&v), slack_resolved_message(&v)] {
            for (text, max) in texts(&msg) {
                assert!(
                    units(&text) <= max,
                    "{} > {max}: {}",
                    units(&text),
                    head(&text)
                );
            }
        }
        let msg = slack_request_message(&v);
        let args = msg["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .find(|t| t.starts_with("*Arguments*"))
            .unwrap();
        assert!(args.ends_with("…\n```"), "{}", tail(args));
        // Cut between escapes, never inside one.
        let body = args.trim_end_matches("…\n```");
        assert!(
            body.ends_with(';') || body.ends_with('😀'),
            "{}",
            tail(body)
        );
        let ctx = block(&msg, "context")["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(ctx.ends_with('…') && ctx.contains("<@U00000000>"), "{ctx}");
    }

    #[test]
    fn http_and_connect_show_the_destination() {
        let mut v = view();
        v.action = json!({"kind": "http", "http": {"method": "POST", "scheme": "https",
            "host": "api.example.com", "port": 443, "path": "/v1/x", "query": "",
            "headers": {"authorization": "[REDACTED:bearer_token]"}}});
        let msg = slack_request_message(&v);
        let all: String = texts(&msg).into_iter().map(|(t, _)| t + "\n").collect();
        assert!(
            all.contains("*Destination*\nPOST https://api.example.com/v1/x"),
            "{all}"
        );
        assert!(all.contains("\"host\": \"api.example.com\""), "{all}");
        v.action = json!({"kind": "connect", "dest": {"host": "db.internal", "port": 5432}});
        let all: String = texts(&slack_request_message(&v))
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert!(
            all.contains("CONNECT db.internal:5432") && all.contains("\"port\": 5432"),
            "{all}"
        );
    }

    #[test]
    fn agent_text_cannot_ping_or_break_out_of_the_code_block() {
        let mut v = view();
        v.agent_id = "<!channel>".into();
        v.action = json!({"kind": "tool", "tool": "x", "params": {"s": "```<!here>```"}});
        let msg = slack_request_message(&v);
        let all: String = texts(&msg).into_iter().map(|(t, _)| t).collect();
        assert!(
            !all.contains("<!channel>") && !all.contains("<!here>"),
            "{all}"
        );
        let args = msg["blocks"][3]["text"]["text"].as_str().unwrap();
        assert_eq!(args.matches("```").count(), 2, "{args}");
    }

    #[test]
    fn resolved_message_names_the_deciders_as_mentions() {
        let mut v = view();
        v.status = ApprovalStatus::Approved;
        v.resolved_at = Some("2026-01-01T00:01:00.000Z".into());
        v.decided_by = vec!["U123".into(), "alice@ops".into()];
        v.answers = vec![Answer {
            approver: "U123".into(),
            vote: Vote::Approve,
            channel: Channel::Slack,
            at: "2026-01-01T00:01:00.000Z".into(),
            reason: Some("looks fine <ok>".into()),
            credential: Some("slack:U123".into()),
        }];
        let msg = slack_resolved_message(&v);
        assert_eq!(msg["replace_original"], true);
        assert!(
            msg["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] != "actions")
        );
        assert_eq!(block(&msg, "header")["text"]["text"], "Approved: tool exec");
        let outcome = msg["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(
            outcome,
            "*Approved* by <@U123>, alice@ops at 2026-01-01T00:01:00.000Z\n> <@U123>: looks fine &lt;ok&gt;"
        );

        v.status = ApprovalStatus::Denied;
        v.decided_by = vec!["W42".into()];
        let msg = slack_resolved_message(&v);
        assert!(
            msg["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Denied* by <@W42>")
        );

        v.status = ApprovalStatus::Expired;
        v.decided_by = vec![];
        let msg = slack_resolved_message(&v);
        assert_eq!(msg["text"], "Expired: tool exec");
        assert!(
            msg["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Expired* without a decision")
        );
    }

    #[test]
    fn truncation_helpers_respect_limits() {
        assert_eq!(esc_truncate("a<b", 10), "a&lt;b");
        assert_eq!(esc_truncate("a<bcdef", 5), "a…");
        assert_eq!(esc_truncate("abc", 3), "abc");
        assert_eq!(truncate_units("😀😀😀", 4), "😀…");
        let items: Vec<String> = vec!["aa".into(), "bb".into(), "cc".into()];
        assert_eq!(join_bounded("x: ", &items, ", ", 100), "x: aa, bb, cc");
        assert_eq!(join_bounded("x: ", &items, ", ", 10), "x: aa, bb…");
        assert_eq!(mention("U123"), "<@U123>");
        assert_eq!(mention("u123"), "u123");
        assert_eq!(mention("U<1>"), "U&lt;1&gt;");
    }

    // The example in Slack's "Verifying requests from Slack" guide.
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slack_reference_example_verifies() {
        assert_eq!(
            slack_signature(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes()),
            SLACK_SIG
        );
        let now = 1531420618 + 10;
        verify_slack(
            SLACK_SECRET,
            SLACK_TS,
            SLACK_BODY.as_bytes(),
            SLACK_SIG,
            now,
        )
        .unwrap();
    }

    #[test]
    fn slack_rejects_changed_body_stale_time_and_garbage() {
        let now = 1531420618;
        let body = SLACK_BODY.replace("roadrunner", "coyote");
        assert_eq!(
            verify_slack(SLACK_SECRET, SLACK_TS, body.as_bytes(), SLACK_SIG, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_slack(
                SLACK_SECRET,
                SLACK_TS,
                SLACK_BODY.as_bytes(),
                SLACK_SIG,
                now + 301
            ),
            Err(SignatureError::Stale(301))
        );
        assert!(matches!(
            verify_slack(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes(), "v0=zz", now),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify_slack(SLACK_SECRET, "soon", SLACK_BODY.as_bytes(), SLACK_SIG, now),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn a_batched_message_lists_each_approval_with_its_buttons_within_slacks_limits() {
        let views: Vec<ApprovalView> = (0..30)
            .map(|n| ApprovalView {
                id: format!("approval-{n}"),
                ..view()
            })
            .collect();
        let msg = slack_batch_message(&views);
        let blocks = msg["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{} blocks", blocks.len());
        let actions: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "actions").collect();
        assert_eq!(actions.len(), BATCH_SHOWN);
        assert_eq!(actions[3]["elements"][0]["value"], "approval-3");
        assert!(msg.to_string().contains("and 10 more"), "{msg:#}");
        for (text, max) in texts(&msg) {
            assert!(units(&text) <= max, "{text}");
        }
        // A click there answers its approval and leaves the message (no reply handle).
        let click = |block_id: &str| {
            let payload = json!({"type": "block_actions", "user": {"id": "U1"},
                "response_url": "https://hooks.slack.com/actions/x",
                "actions": [{"action_id": "approve", "block_id": block_id, "value": "approval-3"}]});
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .finish();
            BlockAction::parse(body.as_bytes()).unwrap()
        };
        let batched = click(actions[3]["block_id"].as_str().unwrap());
        assert_eq!(batched.approval_id, "approval-3");
        assert_eq!(batched.response_url, None);
        assert!(click(ACTIONS_BLOCK_ID).response_url.is_some());
    }

    #[test]
    fn the_message_says_what_was_redacted_or_cut_and_what_runs() {
        let mut v = view();
        v.shown.redacted = vec!["params.token".into()];
        v.shown.programs = vec!["sh".into(), "curl".into(), "<b>".into()];
        let msg = slack_request_message(&v);
        let args = texts(&msg)
            .into_iter()
            .map(|(t, _)| t)
            .find(|t| t.starts_with("*Arguments*"))
            .unwrap();
        assert!(
            args.starts_with("*Arguments* (redacted: `params.token`)\n"),
            "{args}"
        );
        assert!(!args.contains("cut to fit"), "{args}");
        let runs = msg.to_string();
        assert!(runs.contains("*Runs* `sh`, `curl`, `&lt;b&gt;`"), "{msg:#}");
        assert!(!runs.contains("may run more"), "{msg:#}");

        v.shown.programs_incomplete = true;
        v.action["params"]["command"] = json!("y".repeat(10_000));
        let msg = slack_request_message(&v);
        let args = texts(&msg)
            .into_iter()
            .find(|(t, _)| t.starts_with("*Arguments*"))
            .unwrap();
        assert!(units(&args.0) <= args.1, "{}", units(&args.0));
        let cut = format!(
            "*Arguments* (redacted: `params.token`; cut to fit: `clawgate approvals show {}`)",
            v.id
        );
        assert!(args.0.starts_with(&cut), "{}", head(&args.0));
        assert!(msg.to_string().contains("may run more"), "{msg:#}");
    }
}
