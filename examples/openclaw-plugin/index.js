// clawgate for OpenClaw: asks the clawgate sidecar before every tool call and reports each
// result afterwards. Plain ESM, no build step and no dependencies (Node 22+ fetch and crypto).
//
// before_tool_call -> POST {sidecarUrl}/v1/check?wait={waitSeconds}
//   allow   -> the call runs
//   deny    -> {block: true, blockReason: the policy's reasons}
//   pending -> GET /v1/approvals/{id}/wait?timeout=... within what is left of waitSeconds,
//              then allow or block; still pending -> block, naming the approval id
//   anything else (unreachable, timeout, non-2xx, garbage) -> block (fail closed)
// after_tool_call  -> POST {sidecarUrl}/v1/results, fire-and-forget
//
// Settings (plugins.entries.clawgate.config): sidecarUrl, token, waitSeconds, requestTimeoutMs.
// token (the agent's [identities.NAME] token) goes on every request as Authorization: Bearer:
// the check, the approval wait and the result report all go through call().
// Keep plugins.entries.clawgate.hooks.timeouts.before_tool_call (ms) above waitSeconds, or
// OpenClaw gives up on the hook first (which also blocks the call, with a less useful reason).

import { createHash } from "node:crypto";

const PLUGIN_ID = "clawgate";
const DEFAULTS = { sidecarUrl: "http://127.0.0.1:9480", waitSeconds: 25, requestTimeoutMs: 5000 };
/** Decision ids of calls let through, by tool call id, for the result report. */
const MAX_TRACKED = 4096;

function settings(raw) {
  const cfg = raw && typeof raw === "object" ? raw : {};
  const num = (v, d) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : d);
  return {
    sidecarUrl: String(cfg.sidecarUrl || DEFAULTS.sidecarUrl).replace(/\/+$/, ""),
    token: typeof cfg.token === "string" && cfg.token !== "" ? cfg.token : undefined,
    waitSeconds: num(cfg.waitSeconds, DEFAULTS.waitSeconds),
    requestTimeoutMs: Math.max(100, num(cfg.requestTimeoutMs, DEFAULTS.requestTimeoutMs)),
  };
}

function failClosed(what) {
  return { block: true, blockReason: `clawgate: ${what}; the tool call was blocked (fail closed).` };
}

function reasonsOf(answer) {
  const r = Array.isArray(answer?.reasons) ? answer.reasons.filter((x) => typeof x === "string") : [];
  return r.length > 0 ? r.join("; ") : "no reason given";
}

/** The /v1/check body: the fields clawgate accepts (it rejects unknown ones). */
function checkBody(event, ctx) {
  const agent = { id: ctx?.agentId || "unknown" };
  if (ctx?.sessionKey) agent.session = String(ctx.sessionKey);
  const runId = event?.runId ?? ctx?.runId;
  if (runId) agent.run_id = String(runId);
  const toolCallId = event?.toolCallId ?? ctx?.toolCallId;
  if (toolCallId) agent.tool_call_id = String(toolCallId);
  const body = { tool: String(event?.toolName ?? ctx?.toolName ?? ""), params: event?.params ?? {}, agent };
  const req = ctx?.requester;
  if (req && typeof req === "object") {
    const requester = {};
    if (req.channel != null) requester.channel = String(req.channel);
    if (req.senderId != null) requester.sender_id = String(req.senderId);
    if (typeof req.senderIsOwner === "boolean") requester.sender_is_owner = req.senderIsOwner;
    if (Object.keys(requester).length > 0) body.requester = requester;
  }
  return body;
}

/** One request to the sidecar: the parsed JSON object, or throws an Error saying what failed. */
async function call(cfg, method, path, body, holdMs, abortSignal) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (cfg.token) headers.authorization = `Bearer ${cfg.token}`;
  const signals = [AbortSignal.timeout(holdMs + cfg.requestTimeoutMs)];
  if (abortSignal) signals.push(abortSignal);
  let resp;
  try {
    resp = await fetch(cfg.sidecarUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.any(signals),
    });
  } catch (e) {
    const why = e?.name === "TimeoutError" ? "timed out" : `is unreachable (${e?.cause?.code || e?.message || e})`;
    throw new Error(`the sidecar at ${cfg.sidecarUrl} ${why}`);
  }
  let text;
  try {
    text = await resp.text();
  } catch (e) {
    throw new Error(`reading the sidecar's answer failed (${e?.message || e})`);
  }
  if (!resp.ok) {
    let detail = text.slice(0, 300);
    try {
      const j = JSON.parse(text);
      detail = j?.error?.message || j?.message || detail;
    } catch {}
    throw new Error(`the sidecar answered HTTP ${resp.status} to ${method} ${path.split("?")[0]}: ${detail}`);
  }
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`the sidecar's answer is not JSON: ${JSON.stringify(text.slice(0, 100))}`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    throw new Error("the sidecar's answer is not a JSON object");
  }
  return json;
}

function register(api) {
  const cfg = settings(api.pluginConfig);
  const log = api.logger ?? console;
  const decisions = new Map();
  const remember = (toolCallId, decisionId) => {
    if (!toolCallId || !decisionId) return;
    if (decisions.size >= MAX_TRACKED) decisions.delete(decisions.keys().next().value);
    decisions.set(toolCallId, decisionId);
  };

  api.on("before_tool_call", async (event, ctx) => {
    const started = Date.now();
    const budgetMs = cfg.waitSeconds * 1000;
    const body = checkBody(event, ctx);
    if (!body.tool) return failClosed("the tool call has no tool name");
    let answer;
    try {
      answer = await call(cfg, "POST", `/v1/check?wait=${cfg.waitSeconds}`, body, budgetMs, ctx?.abortSignal);
    } catch (e) {
      return failClosed(e.message);
    }
    let decisionId = typeof answer.id === "string" ? answer.id : undefined;
    let decision = answer.decision;
    let reasons = reasonsOf(answer);
    const approvalId = typeof answer.approval_id === "string" ? answer.approval_id : undefined;

    while (decision === "pending" && approvalId) {
      const leftMs = budgetMs - (Date.now() - started);
      if (leftMs < 500) break;
      const timeout = Math.floor(leftMs / 1000);
      if (timeout < 1) break;
      try {
        const w = await call(
          cfg,
          "GET",
          `/v1/approvals/${encodeURIComponent(approvalId)}/wait?timeout=${timeout}`,
          undefined,
          timeout * 1000,
          ctx?.abortSignal,
        );
        decision = w.decision;
        reasons = reasonsOf(w);
        // A released approval is admitted and recorded as its own decision: report under it.
        if (typeof w.decision_id === "string") decisionId = w.decision_id;
      } catch (e) {
        return failClosed(`waiting for approval ${approvalId} failed: ${e.message}`);
      }
    }

    switch (decision) {
      case "allow":
        remember(body.agent.tool_call_id, decisionId);
        return undefined;
      case "deny":
        return {
          block: true,
          blockReason: `clawgate denied this tool call: ${reasons}${decisionId ? ` (decision ${decisionId})` : ""}`,
        };
      case "pending":
        if (!approvalId) return failClosed("the sidecar answered pending without an approval id");
        return {
          block: true,
          blockReason:
            `clawgate: this tool call is waiting for approval ${approvalId} (${reasons})` +
            `${answer.approval_expires_at ? `, which expires at ${answer.approval_expires_at}` : ""}. ` +
            "It was not run. Retry the identical call once it is approved.",
        };
      default:
        return failClosed(`the sidecar answered an unknown decision ${JSON.stringify(decision)}`);
    }
  });

  api.on("after_tool_call", (event, ctx) => {
    // Fire-and-forget: nothing here is awaited, so the agent is never delayed.
    try {
      const toolCallId = event?.toolCallId ?? ctx?.toolCallId;
      const decisionId = toolCallId ? decisions.get(toolCallId) : undefined;
      if (!decisionId) return;
      decisions.delete(toolCallId);
      const report = {
        decision_id: decisionId,
        ok: !event.error,
        duration_ms: Math.max(0, Math.round(Number(event.durationMs) || 0)),
      };
      if (event.result !== undefined) {
        let text;
        try {
          text = JSON.stringify(event.result);
        } catch {
          text = undefined;
        }
        if (typeof text === "string") {
          const bytes = Buffer.from(text, "utf8");
          report.result_sha256 = createHash("sha256").update(bytes).digest("hex");
          report.size = bytes.length;
        }
      }
      if (event.error) report.error = String(event.error).slice(0, 2000);
      const runId = event.runId ?? ctx?.runId;
      if (runId) report.run_id = String(runId);
      report.tool_call_id = String(toolCallId);
      call(cfg, "POST", "/v1/results", report, 0, undefined).catch((e) =>
        log.warn?.(`clawgate: result for decision ${decisionId} not recorded: ${e.message}`),
      );
    } catch (e) {
      log.warn?.(`clawgate: result report failed: ${e?.message || e}`);
    }
  });
}

export default {
  id: PLUGIN_ID,
  name: "clawgate",
  description: "Gates tool calls through the clawgate sidecar (policy, approvals, audit). Fails closed.",
  register,
};
