# clawgate default policy bundle: the combining layer.
#
# Every concern file (tools, exec, files, mcp, http, dns) adds "findings" to one set.
# A finding is {"rule", "effect", "risk", "reason"}. This file folds them into the
# single decision object the gate reads at data.clawgate.decision:
#   effect: any deny wins, else any require_approval, else allow
#   risk:   the highest risk of any finding (the base tier is itself a finding)
#   reasons: one per finding, most severe effect first
# Tunables (tiers, approvers, limits, patterns) live in data.json, not here.
#
# Never define a rule whose name is also a key of data.clawgate in data.json
# (settings, tiers, aliases, tools, exec, commands, paths, credentials, mcp,
# http, network, dns): rules and data share one namespace.
#
# Every rule judges input.facts, which clawgate's facts stage states before
# policy runs (parsed shell commands, normalised paths, WHATWG-parsed URLs); no
# rule scans raw command text.
#
# Performance: the gate's budget is tens of microseconds per decision (see
# "Performance" in docs/policy-guide.md). So:
#   * core dispatches on action.kind once; a call only evaluates the rules of its
#     own kind (tool_core, mcp_core, http_core, connect_core, dns_core);
#   * knowledge is looked up by key (a program name, a path prefix), not scanned.
package clawgate

import rego.v1

# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

risk_levels := ["low", "medium", "high", "critical"]

effects := {"allow", "deny", "require_approval"}

# Sort key so that reasons for the decisive effect come first.
effect_order := {"deny": 0, "require_approval": 1, "allow": 2}

effect_verb := {"allow": "allowed", "deny": "denied", "require_approval": "needs approval"}

# Index of each known risk label. An unknown risk label (a typo in data.json)
# counts as critical: fail closed.
risk_index := {"low": 0, "medium": 1, "high": 2, "critical": 3}

risk_rank(r) := object.get(risk_index, r, 3)

max_risk(a, b) := risk_levels[max({risk_rank(a), risk_rank(b)})]

# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------

# A missing environment label is treated like the configured default
# (production out of the box), so forgetting the label never loosens policy.
#
# Note: this bundle avoids `default` rules on purpose. regorus 0.14.1 loses
# default values (and rules of later-loaded files) when this multi-file package
# is evaluated from another package; `x := ... if { ... } else := fallback`
# behaves the same everywhere.
environment := e if {
	e := input.environment
	is_string(e)
	e != ""
} else := e if {
	e := data.clawgate.settings.default_environment
	is_string(e)
} else := "production"

production_environments := x if {
	x := data.clawgate.settings.production_environments
} else := ["production"]

is_production if environment in production_environments

# An effect in data.json is either a plain effect string or a map from
# environment label to effect, with "production" covering every label listed in
# settings.production_environments and "default" covering the rest.
# Anything unrecognisable resolves to require_approval (fail closed, not shut).
resolve_effect(spec) := spec if {
	spec in {"allow", "deny", "require_approval"}
} else := e if {
	e := spec[environment]
	e in {"allow", "deny", "require_approval"}
} else := e if {
	is_production
	e := spec.production
	e in {"allow", "deny", "require_approval"}
} else := e if {
	e := spec["default"]
	e in {"allow", "deny", "require_approval"}
} else := "require_approval"

# Build a finding; the reason says which rule fired and what it did here.
# (Tables are local literals: in regorus a rule reference costs more than
# building a small object.)
finding(rule, effect_spec, risk, text) := {
	"rule": rule,
	"effect": e,
	"risk": object.get(labels, risk, "critical"),
	"reason": sprintf("%s: %s (%s in %s)", [rule, text, verbs[e], environment]),
} if {
	e := resolve_effect(effect_spec)
	labels := {"low": "low", "medium": "medium", "high": "high", "critical": "critical"}
	verbs := {"allow": "allowed", "deny": "denied", "require_approval": "needs approval"}
}

# ---------------------------------------------------------------------------
# Findings: one entry rule per action kind
# ---------------------------------------------------------------------------

# Custom policy files add their own `findings contains f if { ... }` rules; the
# built-in findings all come through this one.
findings contains f if {
	some f in core.findings
}

# The built-in evaluation of the action's own kind, in one rule per kind:
#   findings      the built-in findings (a set, possibly empty)
#   rate_subject  what the rate limit counts: tool, MCP server/tool or host
#   limits        per-scope limits (tools.<name>.constraints, mcp.servers.<name>.constraints)
core := c if {
	input.action.kind == "tool"
	inner := dispatched_action
	c := dispatch_core(inner)
} else := c if {
	input.action.kind == "tool"
	c := tool_core
} else := c if {
	input.action.kind == "mcp"
	c := mcp_core
} else := c if {
	input.action.kind == "http"
	c := http_core
} else := c if {
	input.action.kind == "connect"
	c := connect_core
} else := c if {
	input.action.kind == "dns"
	c := dns_core
} else := {"findings": {input_finding}, "rate_subject": "unknown", "limits": {}}

known_kinds := {"tool", "mcp", "http", "connect", "dns"}

action_kind := k if {
	k := input.action.kind
	is_string(k)
}

input_finding := finding("input.unknown_kind", "deny", "high", sprintf("action.kind '%s' is not one of tool, mcp, http, connect, dns", [k])) if {
	k := action_kind
} else := finding("input.malformed", "deny", "high", "input has no action.kind; the request cannot be classified")

# params is always an object for the concern files, even when absent.
params := p if {
	p := input.action.params
	is_object(p)
} else := {}

# "unknown" keeps rate keys well-formed when the agent identity is missing.
agent_id := a if {
	a := input.agent.id
	is_string(a)
	a != ""
} else := "unknown"

# ---------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------

decision := d if {
	# The common case: one finding with known labels decides by itself.
	fs := findings
	count(fs) == 1
	some f in fs
	f.effect in {"allow", "deny", "require_approval"}
	f.risk in {"low", "medium", "high", "critical"}
	base := {
		"effect": f.effect,
		"risk": f.risk,
		"reasons": [f.reason],
		"constraints": constraints_for(f.risk, core),
	}
	d := with_approval(base, f.effect, f.risk)
} else := d if {
	fs := findings
	count(fs) > 0
	c := core

	# effect: any deny wins, else any require_approval, else allow (else deny:
	# a custom finding with an unknown effect). risk: the highest (an unknown
	# label counts as critical). reasons: decisive effect first.
	order := {"deny": 0, "require_approval": 1, "allow": 2}
	by_order := ["deny", "require_approval", "allow"]
	present := {order[f.effect] | some f in fs}
	decisive := array.concat([by_order[min(present)] | count(present) > 0], ["deny"])
	effect := decisive[0]
	ranks := {"low": 0, "medium": 1, "high": 2, "critical": 3}
	levels := ["low", "medium", "high", "critical"]
	risk := levels[max({object.get(ranks, f.risk, 3) | some f in fs})]
	base := {
		"effect": effect,
		"risk": risk,
		"reasons": [p[1] | some p in sort({[order[f.effect], f.reason] | some f in fs})],
		"constraints": constraints_for(risk, c),
	}
	d := with_approval(base, effect, risk)
} else := {
	# No rule matched at all (cannot happen with the built-in rules; kept as
	# the fail-closed floor).
	"effect": "deny",
	"risk": "high",
	"reasons": ["no policy rule matched this action; denied by default (fail closed)"],
	"constraints": constraints_for("high", core),
} if {
	count(findings) == 0
}

# approval is present only when the effect is require_approval.
with_approval(base, effect, risk) := object.union(base, {"approval": approval_for(risk)}) if {
	effect == "require_approval"
} else := base

# Approval parameters come from the tier of the final risk.
approval_for(risk) := {
	"approvers": a.approvers,
	"quorum": a.quorum,
	"timeout_s": a.timeout_s,
} if {
	a := data.clawgate.tiers[risk].approval
	is_array(a.approvers)
	is_number(a.quorum)
	is_number(a.timeout_s)
} else := a if {
	a := data.clawgate.settings.fallback_approval
	is_object(a)
} else := {"approvers": ["group:clawgate-admins"], "quorum": 1, "timeout_s": 300}

object_or_empty(x) := x if is_object(x) else := {}

constraints_for(risk, c) := {
	"timeout_ms": limits.timeout_ms,
	"max_response_bytes": limits.max_response_bytes,
	"rate": {"key": sprintf("agent:%s:%s", [agent, c.rate_subject]), "per_minute": limits.rate_per_minute},
} if {
	# Rate buckets belong to the authenticated identity when there is one (an agent cannot
	# get a fresh bucket by naming itself differently), else to agent_id (inline).
	agents := array.concat(
		[a | a := input.agent.authenticated_as; is_string(a); a != ""],
		array.concat([a | a := input.agent.id; is_string(a); a != ""], ["unknown"]),
	)
	agent := agents[0]

	# An optional object as a zero- or one-element array: union_n of it is the
	# object itself, or {} when it is missing or not an object.
	fallback := [x | x := data.clawgate.settings.fallback_limits; is_object(x)]
	tier := [x | x := data.clawgate.tiers[risk].constraints; is_object(x)]
	limits := object.union_n([{"timeout_ms": 30000, "max_response_bytes": 1048576, "rate_per_minute": 10}, object.union_n(fallback), object.union_n(tier), c.limits])
}
