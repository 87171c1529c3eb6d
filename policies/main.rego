# clawgate default policy bundle: the combining layer.
#
# Every concern file (tools, exec, files, mcp, http) adds "findings" to one set.
# A finding is {"rule", "effect", "risk", "reason"}. This file folds them into the
# single decision object the gate reads at data.clawgate.decision:
#   effect: any deny wins, else any require_approval, else allow
#   risk:   the highest risk of any finding (the base tier is itself a finding)
#   reasons: one per finding, most severe effect first
# Tunables (tiers, approvers, limits, patterns) live in data.json, not here.
#
# Never define a rule whose name is also a key of data.clawgate in data.json
# (settings, tiers, aliases, tools, exec, credentials, files, mcp, http, network):
# rules and data share one namespace.
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

# An unknown risk label (a typo in data.json) counts as critical: fail closed.
risk_rank(r) := i if {
	some i, name in risk_levels
	name == r
} else := 3

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
	is_string(spec)
	spec in effects
} else := e if {
	is_object(spec)
	e := spec[environment]
	e in effects
} else := e if {
	is_object(spec)
	is_production
	e := spec.production
	e in effects
} else := e if {
	is_object(spec)
	e := spec["default"]
	e in effects
} else := "require_approval"

# Build a finding; the reason says which rule fired and what it did here.
finding(rule, effect_spec, risk, text) := {
	"rule": rule,
	"effect": e,
	"risk": risk_levels[risk_rank(risk)],
	"reason": sprintf("%s: %s (%s in %s)", [rule, text, effect_verb[e], environment]),
} if {
	e := resolve_effect(effect_spec)
}

# ---------------------------------------------------------------------------
# Well-formedness: anything we cannot classify is denied with a reason.
# ---------------------------------------------------------------------------

known_kinds := {"tool", "mcp", "http", "connect"}

action_kind := k if {
	k := input.action.kind
	is_string(k)
}

findings contains f if {
	not action_kind
	f := finding("input.malformed", "deny", "high", "input has no action.kind; the request cannot be classified")
}

findings contains f if {
	action_kind
	not action_kind in known_kinds
	f := finding("input.unknown_kind", "deny", "high", sprintf("action.kind '%s' is not one of tool, mcp, http, connect", [action_kind]))
}

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

final_effect := "deny" if {
	some f in findings
	f.effect == "deny"
} else := "require_approval" if {
	some f in findings
	f.effect == "require_approval"
} else := "allow" if {
	some f in findings
	f.effect == "allow"
} else := "deny"

final_risk := risk_levels[max({risk_rank(f.risk) | some f in findings})] if {
	count(findings) > 0
} else := "high"

final_reasons := [r |
	some pair in sort({[effect_order[f.effect], f.reason] | some f in findings})
	r := pair[1]
] if {
	count(findings) > 0
} else := ["no policy rule matched this action; denied by default (fail closed)"]

# Approval parameters come from the tier of the final risk.
approval := {
	"approvers": a.approvers,
	"quorum": a.quorum,
	"timeout_s": a.timeout_s,
} if {
	a := data.clawgate.tiers[final_risk].approval
	is_array(a.approvers)
	is_number(a.quorum)
	is_number(a.timeout_s)
} else := a if {
	a := data.clawgate.settings.fallback_approval
	is_object(a)
} else := {"approvers": ["group:clawgate-admins"], "quorum": 1, "timeout_s": 300}

# Limits: hard-coded floor < settings.fallback_limits < tier < per-scope override
# (tools.<name>.constraints or mcp.servers.<name>.constraints).
builtin_limits := {"timeout_ms": 30000, "max_response_bytes": 1048576, "rate_per_minute": 10}

object_or_empty(x) := x if is_object(x) else := {}

settings_limits := x if {
	x := object_or_empty(data.clawgate.settings.fallback_limits)
} else := {}

tier_limits := x if {
	x := object_or_empty(data.clawgate.tiers[final_risk].constraints)
} else := {}

# Per-scope limits, defined in tools.rego (tool_limits) and mcp.rego (mcp_limits).
scope_limits := x if {
	x := tool_limits
} else := x if {
	x := mcp_limits
} else := {}

limits := object.union_n([builtin_limits, settings_limits, tier_limits, scope_limits])

# What the rate limit counts: the tool, the MCP server/tool, or the host.
rate_subject := x if {
	x := tool_rate_subject
} else := x if {
	x := mcp_rate_subject
} else := x if {
	x := http_rate_subject
} else := "unknown"

rate_key := sprintf("agent:%s:%s", [agent_id, rate_subject])

final_constraints := {
	"timeout_ms": limits.timeout_ms,
	"max_response_bytes": limits.max_response_bytes,
	"rate": {"key": rate_key, "per_minute": limits.rate_per_minute},
}

base_decision := {
	"effect": final_effect,
	"risk": final_risk,
	"reasons": final_reasons,
	"constraints": final_constraints,
}

decision := object.union(base_decision, {"approval": approval}) if {
	final_effect == "require_approval"
} else := base_decision
