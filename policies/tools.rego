# Built-in OpenClaw tools (action.kind == "tool"): base risk tier and mutations.
#
# Every tool in data.clawgate.tools has a risk tier. A call is either a read or a
# mutation; the tier says what each means per environment (tiers.<t>.effect and
# tiers.<t>.mutation_effect). That is how "mutations need approval in production,
# but not elsewhere" is expressed, without one rule per tool.
#
# A tool is a mutation when its catalog entry says so:
#   "mutating": true | false        always / never
#   "read_only_actions": [...]      params.action outside the list (or missing) = mutation
#   "mutating": "command"           exec: decided by the command (see exec.rego)
#   "save_params": [...]            a read given one of these (a file to save to) = mutation
#   "persistence_actions": [...]    actions held everywhere as persistence (cron add)
#   "agent_params", "session_params" parameters naming another agent, or its session
#                                   (`agent:<id>:…`): held in production
# "action_risk" re-tiers single actions (message delete is high, list is low).
#
# Which parameters are file paths, command strings, URLs and patches is named per
# tool by path_params, command_params, url_params and patch_params; clawgate's
# facts stage reads those names from this catalog and states the parameters'
# facts (input.facts), which exec.rego, files.rego and http.rego judge. Unknown
# tools use settings.unknown_tool, so a credential path is still caught on a tool
# nobody catalogued yet.
package clawgate

import rego.v1

is_tool_call if input.action.kind == "tool"

# The call as the rules see it: the raw name, the canonical name (OpenClaw
# accepts aliases: bash -> exec, cron -> automations, image -> view_image; names
# are case-insensitive), the catalog entry (null for an unknown tool) and
# params.action (null unless a string). Undefined without a tool name.
tool_call := resolve_tool(raw) if {
	input.action.kind == "tool"
	raw := input.action.tool
	is_string(raw)
	raw != ""
}

resolve_tool(raw) := {"raw": raw, "name": name, "spec": spec, "action": action} if {
	low := lower(raw)

	# First of: the alias target, the lower-cased name (likewise below).
	names := array.concat([c | c := data.clawgate.aliases[low]; is_string(c)], [low])
	name := names[0]
	specs := array.concat([s | s := data.clawgate.tools[name]; is_object(s)], [null])
	spec := specs[0]
	actions := array.concat([x | x := input.action.params.action; is_string(x)], [null])
	action := actions[0]
}

raw_tool_name := tool_call.raw

tool_name := tool_call.name

tool_spec := s if {
	s := tool_call.spec
	s != null
}

tool_known if tool_spec

# A dispatcher (tools.<name>.dispatches: OpenClaw's tool_call) runs the tool it
# names with the arguments it carries; it is judged as that call, whose facts the
# facts stage states in its place.
dispatched_action := a if {
	spec := tool_spec.dispatches
	names := [n | some k in spec.tool_params; n := params[k]; is_string(n); n != ""]
	count(names) > 0
	argss := array.concat([x | some k in spec.argument_params; x := params[k]; is_object(x)], [{}])
	a := {"kind": "tool", "tool": names[0], "params": argss[0]}
}

# The dispatched call's own evaluation; a dispatcher that names a dispatcher is
# refused (each level would hide the next).
dispatch_core(inner) := c if {
	not resolve_tool(inner.tool).spec.dispatches
	ic := tool_core with input.action as inner
	c := {"findings": ic.findings, "rate_subject": ic.rate_subject, "limits": ic.limits}
} else := {
	"findings": {finding("tool.nested_dispatch", "deny", "high", sprintf("%s dispatches to %s, another dispatcher: the call it finally makes cannot be judged", [tool_name, inner.tool]))},
	"rate_subject": tool_name,
	"limits": {},
}

# MCP tools exposed through OpenClaw's bundle-mcp arrive as "<server>__<tool>";
# those are classified by mcp.rego instead of being "unknown".
tool_is_mcp_bundle if {
	t := tool_call
	t.spec == null
	contains(t.raw, "__")
}

tool_action := a if {
	a := params.action
	is_string(a)
}

tool_risk := r if {
	r := tool_risk_of(tool_spec, tool_call.action)
} else := "high"

tool_mutates if tool_mutation(tool_spec, tool_call.action)

tool_label := tool_label_of(tool_name, tool_call.action)

# Risk: action_risk[action], else the tool's tier, else high.
tool_risk_of(spec, action) := r if {
	r := spec.action_risk[action]
	is_string(r)
} else := r if {
	r := spec.risk
	is_string(r)
} else := "high"

tool_label_of(name, action) := sprintf("%s action=%s", [name, action]) if {
	action != null
} else := name

# true when the call changes state (see the header), else false.
tool_mutation(spec, action) := true if {
	spec.mutating == true
} else := true if {
	is_array(spec.read_only_actions)
	not action in spec.read_only_actions
} else := true if {
	spec.mutating == "command"
	not exec_read_only
} else := true if {
	# A read that saves its result where a parameter says (browser screenshot/pdf with
	# a path, nodes screen_record to an outPath) writes that file.
	some k in object.get(spec, "save_params", [])
	is_string(input.action.params[k])
} else := true if {
	# A read that also sets something when a parameter is given (session_status with a
	# model: the session's model override).
	some k in object.get(spec, "change_params", [])
	input.action.params[k] != null
} else := false

# --- findings ----------------------------------------------------------------

tier_effect(risk) := e if {
	e := data.clawgate.tiers[risk].effect
} else := "require_approval"

tier_mutation_effect(risk) := e if {
	e := data.clawgate.tiers[risk].mutation_effect
} else := "require_approval"

# Everything about a tool call, in one rule (see core in main.rego). The common
# path is written out inline: in regorus every rule evaluated costs ~10 us and
# every function call a few.
tool_core := tool_core_for(tool_call) if {
	tool_call
} else := {
	"findings": {finding("tool.missing_name", "deny", "high", "action.kind is tool but action.tool is missing or empty")} | fact_findings(false, unknown_blocks_private, "tool url"),
	"rate_subject": "unknown",
	"limits": {},
}

tool_core_for(t) := {"findings": fs, "rate_subject": name, "limits": limits} if {
	# A catalogued tool: its base finding, and the checks of its parameters.
	spec := t.spec
	spec != null
	name := t.name
	action := t.action

	# Risk: action_risk[action], else the tool's tier, else high (tool_risk_of).
	risks := array.concat(
		array.concat([r | r := spec.action_risk[action]; is_string(r)], [r | r := spec.risk; is_string(r)]),
		["high"],
	)
	risk := risks[0]
	mutates := tool_mutation(spec, action)

	# The base finding: the tier's effect for a read, its mutation_effect for a mutation.
	labels := array.concat([sprintf("%s action=%s", [name, action]) | action != null], [name])
	label := labels[0]
	effect_field := {false: "effect", true: "mutation_effect"}
	tier_specs := array.concat([e | tier := data.clawgate.tiers[risk]; e := tier[effect_field[mutates]]], ["require_approval"])
	rule_ids := {false: "tool.base", true: "tool.mutation"}
	base := finding(rule_ids[mutates], tier_specs[0], risk, base_text(mutates, label, risk, spec))

	# Writes of file tools into system directories are checked too.
	writes := count([1 | mutates; object.get(spec, "mutating", false) != "command"]) > 0
	exec_fs := exec_param_findings(name)
	fs := (({mutation_finding(base, mutates, spec)} | fact_findings(writes, private_url_mode(spec), sprintf("%s url", [name]))) | exec_fs) | catalog_flag_findings(spec, action, mutates, label)
	limits := object.union_n([c | c := spec.constraints; is_object(c)])
} else := {"findings": fs, "rate_subject": c.rate_subject, "limits": c.limits} if {
	# A bundle-mcp tool: classified by mcp.rego; parameters also checked with
	# settings.unknown_tool.
	t.spec == null
	contains(t.raw, "__")
	c := mcp_core
	fs := c.findings | exec_param_findings(t.name)
} else := {"findings": fs, "rate_subject": t.name, "limits": {}} if {
	# Unknown tools: high risk and held for a human, never silently allowed.
	t.spec == null
	fs := (unknown_tool_findings(t) | fact_findings(false, unknown_blocks_private, sprintf("%s url", [t.name]))) | exec_param_findings(t.name)
}

base_text(mutates, label, risk, spec) := sprintf("%s %s (%s-risk mutation, see tiers.%s.mutation_effect)", [label, mutation_text(spec), risk, risk]) if {
	mutates == true
} else := sprintf("%s is %s risk (base tier)", [label, risk])

mutation_text(spec) := "runs a command that is not plainly read-only (data.clawgate.commands)" if {
	spec.mutating == "command"
} else := "changes state"

unknown_tool_findings(t) := {finding("tool.unknown", object.get(spec, "effect", "require_approval"), object.get(spec, "risk", "high"), sprintf("tool '%s' is not in the clawgate tool catalog; add it to data.json under clawgate.tools.%s with a risk tier", [t.raw, t.raw]))} if {
	spec := data.clawgate.settings.unknown_tool
} else := set()

# block_private_urls of a catalog entry: true, "except_loopback", or false (absent).
private_url_mode(spec) := spec.block_private_urls if {
	spec.block_private_urls in {true, "except_loopback"}
} else := false

unknown_blocks_private := true if {
	data.clawgate.settings.unknown_tool.block_private_urls == true
} else := false

# Findings from the facts of the call: its shell commands, paths and URLs.
fact_findings(tool_writes, block_private, where) := ((command_findings | path_findings(tool_writes)) | url_findings(block_private, where)) | unread_findings

# Arguments nested deeper, or more of them, than the facts stage reads (facts.truncated
# with no command to blame): a path five levels down is as much a path, so the call is
# held rather than judged on part of it.
unread_findings := {finding("args.unread", "require_approval", "high", "the call's arguments are nested deeper (or hold more values) than clawgate reads, so part of them is not judged")} if {
	facts.truncated == true
	count(object.get(facts, "scripts", [])) == 0
} else := set()

# The findings a tool's catalog flags ask for (outbound, governance), behind one test:
# most tools have neither, and every function call costs the interpreter.
catalog_flag_findings(spec, action, mutates, label) := set() if {
	not spec.outbound
	not spec.governance
	not spec.governance_actions
	not spec.persistence_actions
	not spec.agent_params
	not spec.session_params
} else := ((outbound_credential_findings(spec, label) | governance_findings(spec, action, mutates, label)) | persistence_action_findings(spec, action, label)) | cross_agent_findings(spec, label)

# A call that starts, talks to or reads a session of another agent (tools.<name>.
# agent_params: sessions_spawn's agentId; session_params: the sessionKey `agent:<id>:…`
# of sessions_send and sessions_history) has that agent, with its own capability scope,
# act for the requester or hands over what it read: held in production.
cross_agent_findings(spec, label) := {finding("tool.cross_agent", {"production": "require_approval", "default": "allow"}, "high", sprintf("%s reaches agent %s for %s (another identity, with its own scope and what it read)", [label, other, requester])) |
	some other in named_agents(spec)
	requester := requesting_agent
	other != requester
}

# Agent ids the call names: the value of an agent_params parameter, and the <id> of a
# session_params key written `agent:<id>:<rest>` (a bare key is a session of the caller's).
named_agents(spec) := {v | some k in object.get(spec, "agent_params", []); v := input.action.params[k]; is_string(v)} | {parts[1] |
	some k in object.get(spec, "session_params", [])
	v := input.action.params[k]
	is_string(v)
	parts := split(v, ":")
	count(parts) > 2
	parts[0] == "agent"
}

requesting_agent := a if {
	a := input.agent.authenticated_as
	is_string(a)
	a != ""
} else := agent_id

# An action that leaves something to run later, outside the call (tools.<name>.
# persistence_actions: a scheduled agent run added or changed): held in every
# environment, as a write to a shell start-up file is (paths.persistence_rule).
persistence_action_findings(spec, action, label) := {finding(rule.id, rule.effect, rule.risk, sprintf("%s schedules what runs later, outside this call (%s)", [label, rule.reason])) |
	action in object.get(spec, "persistence_actions", [])
	rule := paths_data.persistence_rule
}

# A tool that sends its arguments out of the host (tools.<name>.outbound: a message, a
# search query, text typed into a page or a desktop app, a prompt to a generator; MCP
# servers unless mcp.servers.<name>.local) must not carry a credential: the facts stage
# states the token shapes found in every string of the arguments (facts.param_credentials),
# and network.outbound_credential_shapes says which count.
outbound_credential_findings(spec, label) := {finding("tool.credential_outbound", "deny", "high", sprintf("%s carries a credential (%s) in its arguments and sends them out of the host; secrets stay out of agent messages, queries and prompts", [label, concat(", ", shapes)])) |
	found := object.get(facts, "param_credentials", [])
	count(found) > 0
	spec.outbound == true
	shapes := [s | some s in found; s in object.get(network_data, "outbound_credential_shapes", [])]
	count(shapes) > 0
}

# A call that changes OpenClaw's own configuration or switches plugins off
# (tools.<name>.governance_actions: gateway config.apply/patch/set, plugins
# uninstall/disable; tools.<name>.governance: every change the tool makes, the openclaw
# setup helper) can switch off the guard itself: denied like a write to
# ~/.openclaw/openclaw.json (cred.governance), whatever the environment. Installing or
# updating stays a critical or high mutation a person can approve.
governance_findings(spec, action, mutates, label) := {finding("cred.governance", credential_effect, "critical", sprintf("%s changes OpenClaw's own configuration or plugins (the guard among them); an agent must not reconfigure what gates it", [label])) |
	mutates == true
	governs(spec, action)
}

governs(spec, _) if spec.governance == true

governs(spec, action) if action in object.get(spec, "governance_actions", [])

# An exec mutation says which commands are not read-only.
mutation_finding(base, mutates, spec) := object.union(base, {"reason": sprintf("%s: %s", [base.reason, mutation_detail])}) if {
	mutates == true
	spec.mutating == "command"
} else := base
