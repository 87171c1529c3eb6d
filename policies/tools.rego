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
# "action_risk" re-tiers single actions (message delete is high, list is low).
#
# This file also collects the parameter values other files inspect: file paths,
# command strings and URLs, named per tool by path_params, command_params,
# url_params and patch_params. Unknown tools use settings.unknown_tool for those,
# so a credential path is still caught on a tool nobody catalogued yet.
package clawgate

import rego.v1

is_tool_call if action_kind == "tool"

raw_tool_name := n if {
	is_tool_call
	n := input.action.tool
	is_string(n)
	n != ""
}

# OpenClaw accepts aliases (bash -> exec, cron -> automations, image -> view_image).
tool_name := c if {
	c := data.clawgate.aliases[lower(raw_tool_name)]
} else := lower(raw_tool_name)

tool_spec := s if {
	s := data.clawgate.tools[tool_name]
	is_object(s)
}

tool_known if tool_spec

# MCP tools exposed through OpenClaw's bundle-mcp arrive as "<server>__<tool>";
# those are classified by mcp.rego instead of being "unknown".
tool_is_mcp_bundle if {
	not tool_known
	contains(raw_tool_name, "__")
}

tool_action := a if {
	a := params.action
	is_string(a)
}

# The spec that names the parameters to inspect.
param_spec := tool_spec if {
	tool_known
} else := data.clawgate.settings.unknown_tool if {
	is_tool_call
}

tool_risk := r if {
	r := tool_spec.action_risk[tool_action]
	is_string(r)
} else := r if {
	r := tool_spec.risk
	is_string(r)
} else := "high"

tool_label := sprintf("%s action=%s", [tool_name, tool_action]) if {
	tool_action
} else := tool_name

# --- mutation classification ---------------------------------------------

tool_mutates if tool_spec.mutating == true

tool_mutates if {
	is_array(tool_spec.read_only_actions)
	not tool_action_read_only
}

tool_mutates if {
	tool_spec.mutating == "command"
	not exec_read_only
}

tool_action_read_only if tool_action in tool_spec.read_only_actions

# --- base findings ---------------------------------------------------------

tier_effect(risk) := e if {
	e := data.clawgate.tiers[risk].effect
} else := "require_approval"

tier_mutation_effect(risk) := e if {
	e := data.clawgate.tiers[risk].mutation_effect
} else := "require_approval"

findings contains f if {
	tool_known
	not tool_mutates
	f := finding("tool.base", tier_effect(tool_risk), tool_risk, sprintf("%s is %s risk (base tier)", [tool_label, tool_risk]))
}

findings contains f if {
	tool_known
	tool_mutates
	f := finding("tool.mutation", tier_mutation_effect(tool_risk), tool_risk, sprintf("%s %s (%s-risk mutation, see tiers.%s.mutation_effect)", [tool_label, mutation_text, tool_risk, tool_risk]))
}

mutation_text := "runs a command that is not plainly read-only (exec.read_only_commands)" if {
	tool_spec.mutating == "command"
} else := "changes state"

# Unknown tools: high risk and held for a human, never silently allowed.
findings contains f if {
	raw_tool_name
	not tool_known
	not tool_is_mcp_bundle
	spec := data.clawgate.settings.unknown_tool
	f := finding("tool.unknown", object.get(spec, "effect", "require_approval"), object.get(spec, "risk", "high"), sprintf("tool '%s' is not in the clawgate tool catalog; add it to data.json under clawgate.tools.%s with a risk tier", [raw_tool_name, raw_tool_name]))
}

findings contains f if {
	is_tool_call
	not raw_tool_name
	f := finding("tool.missing_name", "deny", "high", "action.kind is tool but action.tool is missing or empty")
}

# --- values other files inspect ----------------------------------------------

# A parameter value as a set of strings: a string, or the strings in an array.
as_strings(v) := {v} if {
	is_string(v)
} else := {s | some s in v; is_string(s)} if {
	is_array(v)
} else := set()

spec_strings(spec, field) := {s |
	some key in object.get(spec, field, [])
	some s in as_strings(object.get(params, key, null))
}

# Paths named directly (read.path, write.path, view_image.paths, ...).
tool_file_paths := spec_strings(param_spec, "path_params") if param_spec else := set()

# apply_patch carries its paths inside the patch text.
patch_file_paths contains p if {
	param_spec
	some text in spec_strings(param_spec, "patch_params")
	some line in split(text, "\n")
	some marker in ["*** Add File:", "*** Update File:", "*** Delete File:", "*** Move to:"]
	startswith(line, marker)
	p := trim_space(trim_prefix(line, marker))
	p != ""
}

# Strings that a shell will execute (exec.command, process write data, ...).
tool_command_strings := spec_strings(param_spec, "command_params") if param_spec else := set()

tool_url_strings := spec_strings(param_spec, "url_params") if param_spec else := set()

tool_blocks_private_urls if param_spec.block_private_urls == true

# --- limits and rate key ---------------------------------------------------

tool_limits := object_or_empty(tool_spec.constraints) if tool_known

tool_rate_subject := tool_name if {
	is_tool_call
	not tool_is_mcp_bundle
}
