# MCP tool calls: action.kind == "mcp" (clawgate's /mcp/{server} front door), or
# an OpenClaw bundle-mcp tool named "<server>__<tool>" seen by the plugin hook.
#
# Classification, first match wins:
#   1. a per-tool override in mcp.servers.<server>.tools.<tool>
#   2. destructive name (delete_*, drop_*, *_remove, destroyX, ...) -> high, mutation
#   3. read-ish name (get_*, list_*, search_*, ...)                  -> low, read
#   4. anything else                                                 -> medium, mutation
# Mutations then follow the tier's mutation_effect, so destructive tools need
# approval in production and run freely in development unless overridden.
# mcp.servers.<server>.risk raises the floor for every tool of that server.
#
# Arguments are inspected too (top level only): path-like keys against the
# credential patterns, command-like keys against the exec rules, URL keys
# against the metadata and private-address rules.
package clawgate

import rego.v1

mcp_call := {"server": s, "tool": t, "args": params} if {
	action_kind == "mcp"
	s := object.get(input.action, "server", "unknown")
	is_string(s)
	t := input.action.tool
	is_string(t)
	t != ""
}

mcp_call := {"server": s, "tool": t, "args": params} if {
	tool_is_mcp_bundle
	i := indexof(raw_tool_name, "__")
	s := substring(raw_tool_name, 0, i)
	t := substring(raw_tool_name, i + 2, -1)
}

findings contains f if {
	action_kind == "mcp"
	not mcp_call
	f := finding("mcp.missing_tool", "deny", "high", "MCP call without a tool name")
}

mcp_server_spec := s if {
	s := data.clawgate.mcp.servers[mcp_call.server]
	is_object(s)
} else := {}

mcp_override := o if {
	o := mcp_server_spec.tools[mcp_call.tool]
	is_object(o)
}

mcp_class := "override" if {
	mcp_override
} else := "destructive" if {
	some p in data.clawgate.mcp.destructive_patterns
	regex.match(p, mcp_call.tool)
} else := "read" if {
	some p in data.clawgate.mcp.read_patterns
	regex.match(p, mcp_call.tool)
} else := "write"

mcp_class_spec := o if {
	mcp_class == "override"
	o := mcp_override
} else := object_or_empty(data.clawgate.mcp.classes[mcp_class])

# Overrides and classes without "mutating" count as mutations (fail closed).
mcp_mutates if object.get(mcp_class_spec, "mutating", true) != false

mcp_risk := max_risk(object.get(mcp_class_spec, "risk", "high"), object.get(mcp_server_spec, "risk", "low"))

mcp_label := sprintf("MCP %s/%s", [mcp_call.server, mcp_call.tool])

mcp_class_text := t if {
	mcp_class == "override"
	t := sprintf("per-tool override mcp.servers.%s.tools.%s: %s", [mcp_call.server, mcp_call.tool, object.get(mcp_override, "reason", "configured in data.json")])
} else := sprintf("name %s", [object.get(mcp_class_spec, "label", mcp_class)])

# An override with an explicit effect decides by itself.
findings contains f if {
	mcp_call
	"effect" in object.keys(mcp_class_spec)
	f := finding("mcp.override", mcp_class_spec.effect, mcp_risk, sprintf("%s: %s", [mcp_label, mcp_class_text]))
}

findings contains f if {
	mcp_call
	not "effect" in object.keys(mcp_class_spec)
	not mcp_mutates
	f := finding("mcp.read", tier_effect(mcp_risk), mcp_risk, sprintf("%s is %s risk; %s", [mcp_label, mcp_risk, mcp_class_text]))
}

findings contains f if {
	mcp_call
	not "effect" in object.keys(mcp_class_spec)
	mcp_mutates
	f := finding(sprintf("mcp.%s", [mcp_class]), tier_mutation_effect(mcp_risk), mcp_risk, sprintf("%s changes state (%s risk); %s", [mcp_label, mcp_risk, mcp_class_text]))
}

# --- arguments ---------------------------------------------------------------

mcp_file_paths := {s |
	some key, v in mcp_call.args
	regex.match(data.clawgate.mcp.path_argument_pattern, key)
	some s in as_strings(v)
}

mcp_command_strings := {s |
	some key in data.clawgate.mcp.command_argument_keys
	some s in as_strings(object.get(mcp_call.args, key, null))
}

mcp_url_strings := {s |
	some key in data.clawgate.mcp.url_argument_keys
	some s in as_strings(object.get(mcp_call.args, key, null))
}

mcp_blocks_private_urls if data.clawgate.mcp.block_private_urls == true

# --- limits and rate key -----------------------------------------------------

mcp_limits := object_or_empty(mcp_server_spec.constraints) if mcp_call

mcp_rate_subject := sprintf("mcp:%s/%s", [mcp_call.server, mcp_call.tool]) if mcp_call
