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
// Settings (plugins.entries.clawgate.config): sidecarUrl, token, waitSeconds, requestTimeoutMs,
// sidecarCaFile.
// token (the agent's [identities.NAME] token) goes on every request as Authorization: Bearer:
// the check, the approval wait and the result report all go through call().
// Keep plugins.entries.clawgate.hooks.timeouts.before_tool_call (ms) above waitSeconds, or
// OpenClaw gives up on the hook first (which also blocks the call, with a less useful reason).
//
// sidecarCaFile pins the sidecar: sidecarUrl must then be https and the listener's certificate
// must chain to that CA and no other (the system store is not consulted), so a process that
// binds the port while clawgate restarts gets no request, no token, and no say: every call
// fails closed until the real sidecar answers. A CA file that cannot be read, or an http
// sidecarUrl with it, blocks every call too.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";

const PLUGIN_ID = "clawgate";
const DEFAULTS = { sidecarUrl: "http://127.0.0.1:9480", waitSeconds: 25, requestTimeoutMs: 5000 };
/** Decision ids of calls let through, by tool call id, for the result report. */
const MAX_TRACKED = 4096;
/** The largest answer read from a pinned sidecar (clawgate's answers are a few KiB). */
const MAX_ANSWER_BYTES = 1 << 20;

function settings(raw) {
  const cfg = raw && typeof raw === "object" ? raw : {};
  const num = (v, d) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : d);
  return {
    sidecarUrl: String(cfg.sidecarUrl || DEFAULTS.sidecarUrl).replace(/\/+$/, ""),
    token: typeof cfg.token === "string" && cfg.token !== "" ? cfg.token : undefined,
    waitSeconds: num(cfg.waitSeconds, DEFAULTS.waitSeconds),
    requestTimeoutMs: Math.max(100, num(cfg.requestTimeoutMs, DEFAULTS.requestTimeoutMs)),
    sidecarCaFile: typeof cfg.sidecarCaFile === "string" && cfg.sidecarCaFile !== "" ? cfg.sidecarCaFile : undefined,
  };
}

/** The pinned CA ({ca}) or why every call fails closed ({error}); undefined when not pinned. */
function pinOf(cfg) {
  if (!cfg.sidecarCaFile) return undefined;
  if (!cfg.sidecarUrl.startsWith("https://")) {
    return { error: `sidecarCaFile is set but sidecarUrl ${cfg.sidecarUrl} is not https` };
  }
  try {
    return { ca: readFileSync(cfg.sidecarCaFile) };
  } catch (e) {
    return { error: `the sidecar CA file ${cfg.sidecarCaFile} cannot be read (${e?.code || e?.message || e})` };
  }
}

/** fetch's subset call() uses, over node:https trusting only the pinned CA. */
function pinnedFetch(url, { method, headers, body, signal }, ca) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ca, signal }, (res) => {
      const chunks = [];
      let size = 0;
      res.on("data", (chunk) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const status = res.statusCode ?? 0;
        resolve({ ok: status >= 200 && status < 300, status, text: async () => text });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
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
  if (cfg.pin?.error) throw new Error(cfg.pin.error);
  const init = {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.any(signals),
  };
  let resp;
  try {
    resp = cfg.pin ? await pinnedFetch(cfg.sidecarUrl + path, init, cfg.pin.ca) : await fetch(cfg.sidecarUrl + path, init);
  } catch (e) {
    const timedOut = e?.name === "TimeoutError" || e?.cause?.name === "TimeoutError";
    const why = timedOut ? "timed out" : `is unreachable (${e?.cause?.code || e?.code || e?.message || e})`;
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
  cfg.pin = pinOf(cfg);
  const log = api.logger ?? console;
  if (cfg.pin?.error) log.error?.(`clawgate: ${cfg.pin.error}; every tool call will be blocked`);
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
