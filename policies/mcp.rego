# MCP tool calls: action.kind == "mcp" (clawgate's /mcp/{server} front door), or
# an OpenClaw bundle-mcp tool named "<server>__<tool>" seen by the plugin hook.
#
# Classification, first match wins:
#   1. a per-tool override in mcp.servers.<server>.tools.<tool>
#   2. destructive name (delete_*, drop_*, *_remove, destroyX, ...) -> high, mutation
#   3. a verb that changes something, first or anywhere in the name
#      (create_snapshot, getOrCreate, search_replace)               -> medium, mutation
#   4. a name that reads secrets (get_secret, getApiKey, get_env), any read of a
#      secret store's server (vault, doppler, 1password), SQL reading password
#      hashes (pg_shadow, mysql.user), a getter asked for kind Secret -> critical, read
#   5. read-ish name whose SQL argument changes data                 -> medium, mutation
#      or whose query runs code on the server (MongoDB $where)      -> high, mutation
#   6. read-ish name (get_*, list_*, search_*, ..., pods_list)       -> low, read
#   7. anything else                                                 -> medium, mutation
# Mutations then follow the tier's mutation_effect, so destructive tools need
# approval in production and run freely in development unless overridden.
# mcp.servers.<server>.risk raises the floor for every tool of that server.
#
# Arguments are inspected too (top level only) through input.facts: path-like
# keys against the sensitive paths, command-like keys as shell commands, URL keys
# against the metadata and private-address rules; SQL keys against the SQL rules.
package clawgate

import rego.v1

mcp_call := {"server": s, "tool": t, "args": params} if {
	input.action.kind == "mcp"
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

# The private-address rule for a server's URL arguments: its own block_private_urls
# (browser servers such as playwright open loopback dev servers: "except_loopback"),
# else mcp.block_private_urls.
mcp_private_url_mode(mcp, server_spec) := private_url_mode(server_spec) if {
	"block_private_urls" in object.keys(server_spec)
} else := private_url_mode(mcp)

# Everything about an MCP call, in one rule (see core in main.rego); also used
# for bundle-mcp tools: the classification finding plus the argument checks.
# The helper rules below (mcp_class, mcp_risk, ...) say the same for tests and
# custom policies; the core computes it inline, since every rule costs ~10 us.
mcp_core := {"findings": fs, "rate_subject": sprintf("mcp:%s/%s", [server, tool]), "limits": limits} if {
	c := mcp_call
	server := c.server
	tool := c.tool
	mcp := object.union_n([x | x := data.clawgate.mcp; is_object(x)])
	server_spec := object.union_n([x | x := mcp.servers[server]; is_object(x)])
	overrides := [o | o := server_spec.tools[tool]; is_object(o)]
	label := sprintf("MCP %s/%s", [server, tool])
	class := mcp_classify(overrides, mcp, server, tool, c.args)
	class_spec := mcp_class_spec_of(class, overrides, mcp)
	class_fs := {f |
		risk := max_risk(object.get(class_spec, "risk", "high"), object.get(server_spec, "risk", "low"))
		text := mcp_text(class, overrides, class_spec, server, tool)
		f := mcp_class_finding(class, class_spec, risk, label, text)
	}

	# A tool that changes state writes the paths its arguments name (write_file ~/.bashrc,
	# move_file to /etc/cron.d): the persistence and system-directory rules apply to them.
	writes := object.get(class_spec, "mutating", true) != false

	# Arguments (top level): their paths, commands and URLs are in input.facts
	# (the facts stage reads mcp.path_argument_pattern, command_argument_keys and
	# url_argument_keys); SQL arguments are text rules.
	args := c.args
	sql_fs := {f |
		some key in object.get(mcp, "sql_argument_keys", [])
		some written in string_values(args[key])
		some text in {written, sql_uncommented(mcp, written)}
		some f in sql_findings(text)
	}
	outbound := {"outbound": object.get(server_spec, "local", false) != true}
	fs := ((class_fs | fact_findings(writes, mcp_private_url_mode(mcp, server_spec), label)) | sql_fs) | outbound_credential_findings(outbound, label)
	limits := object.union_n([x | x := server_spec.constraints; is_object(x)])
} else := {"findings": {finding("mcp.missing_tool", "deny", "high", "MCP call without a tool name")}, "rate_subject": "unknown", "limits": {}}

# Classification, first match wins (see the header).
mcp_classify(overrides, mcp, server, tool, args) := "override" if {
	count(overrides) > 0
} else := "destructive" if {
	some p in mcp.destructive_patterns
	regex.match(p, tool)
} else := "write" if {
	# A second verb that changes something (getOrCreate, search_replace, fetch_and_execute).
	some p in object.get(mcp, "mutating_patterns", [])
	regex.match(p, tool)
} else := "write" if {
	# Two operations joined (fetch_and_store, getAndLock, read_then_mark): the second must
	# be a read too.
	some p in object.get(mcp, "joined_verb_patterns", [])
	some m in regex.find_all_string_submatch_n(p, tool, -1)
	not lower(m[1]) in object.get(mcp, "read_verbs", [])
} else := "secret" if {
	some p in object.get(mcp, "secret_patterns", [])
	regex.match(p, tool)
} else := "secret_server" if {
	# Any read of a secret store's server (vault/read, doppler/get, onepassword/item_get).
	regex.match(object.get(mcp, "secret_server_pattern", "^$"), server)
} else := "secret_sql" if {
	# SQL that reads the database's own password hashes or credential mappings.
	some key in object.get(mcp, "sql_argument_keys", [])
	some text in string_values(args[key])
	regex.match(object.get(mcp, "sql_secret_pattern", "^$"), text)
} else := "secret_kind" if {
	# A generic getter asked for a secret kind (get_resource {kind: "Secret"}).
	some key in object.get(mcp, "secret_kind_argument_keys", [])
	some v in string_values(args[key])
	regex.match(mcp.secret_kind_pattern, v)
} else := "sql_write" if {
	some p in mcp.read_patterns
	regex.match(p, tool)
	some key in object.get(mcp, "sql_argument_keys", [])
	some text in string_values(args[key])
	looks_like_sql(mcp, text)
	not sql_read_only(mcp, text)
} else := "server_code" if {
	# A query that runs code on the database server (MongoDB's $where, $function,
	# $accumulator), at any depth of the arguments.
	some p in mcp.read_patterns
	regex.match(p, tool)
	keys := object.get(mcp, "server_code_keys", [])
	walk(args, [path, _])
	count(path) > 0
	path[count(path) - 1] in keys
} else := "read" if {
	some p in mcp.read_patterns
	regex.match(p, tool)
} else := "write"

# SQL that only reads: every statement starts as a read (SELECT, WITH, SHOW, EXPLAIN,
# ...) and no word of the text changes data or calls a function with side effects
# (mcp.sql_changes: UPDATE, INTO, COPY, pg_read_file(, ...), wherever it is: a word in
# a string literal makes a read a change (held), never the other way round.
sql_read_only(mcp, text) if {
	sql_read_only_as_written(mcp, text)
	sql_read_only_as_written(mcp, sql_uncommented(mcp, text))
}

sql_read_only_as_written(mcp, text) if {
	not regex.match(mcp.sql_changes, text)
	every statement in split(text, ";") {
		sql_reads(mcp, statement)
	}
}

# Text with a SQL shape anywhere in it (UPDATE … SET, INSERT … INTO, COPY … TO,
# SELECT … FROM, ...: mcp.sql_shape): a search tool's `query` is usually prose
# ("update the roadmap"), and then judged as a plain argument.
looks_like_sql(mcp, text) if regex.match(mcp.sql_shape, text)

looks_like_sql(mcp, text) if regex.match(mcp.sql_shape, sql_uncommented(mcp, text))

# The text with its comments taken out (mcp.sql_comment), MySQL's executable
# `/*!50000 … */` comments opened: `DELETE/**/FROM` and `/*!DELETE*/ FROM` are SQL. A
# comment marker inside a string literal is not one, so text is judged both as
# written and uncommented: SQL in either, a read only in both.
sql_uncommented(mcp, text) := regex.replace(text, mcp.sql_comment, " ")

sql_reads(_, statement) if trim_space(statement) == ""

sql_reads(mcp, statement) if regex.match(mcp.sql_read_statement, statement)

mcp_class_spec_of(class, overrides, mcp) := overrides[0] if {
	class == "override"
} else := object_or_empty(mcp.classes[class])

mcp_text(class, overrides, class_spec, server, tool) := sprintf("per-tool override mcp.servers.%s.tools.%s: %s", [server, tool, object.get(overrides[0], "reason", "configured in data.json")]) if {
	class == "override"
} else := sprintf("name %s", [object.get(class_spec, "label", class)])

# An override with an explicit effect decides by itself; otherwise the tier of
# the risk decides, as a read or a mutation. (Overrides and classes without
# "mutating" count as mutations: fail closed.)
mcp_class_finding(class, spec, risk, label, text) := finding("mcp.override", spec.effect, risk, sprintf("%s: %s", [label, text])) if {
	"effect" in object.keys(spec)
} else := finding("mcp.read", tier_effect(risk), risk, sprintf("%s is %s risk; %s", [label, risk, text])) if {
	object.get(spec, "mutating", true) == false
} else := finding(sprintf("mcp.%s", [class]), tier_mutation_effect(risk), risk, sprintf("%s changes state (%s risk); %s", [label, risk, text]))

mcp_server_spec := s if {
	s := data.clawgate.mcp.servers[mcp_call.server]
	is_object(s)
} else := {}

mcp_override := o if {
	o := mcp_server_spec.tools[mcp_call.tool]
	is_object(o)
}

mcp_class := mcp_classify([o | o := mcp_override], object.union_n([x | x := data.clawgate.mcp; is_object(x)]), mcp_call.server, mcp_call.tool, mcp_call.args)

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

# --- arguments ---------------------------------------------------------------

# A parameter value as a list of strings: itself, or the strings of an array.
string_values(v) := [v] if {
	is_string(v)
} else := [s | some s in v; is_string(s)] if {
	is_array(v)
} else := []

# SQL given as an argument: the exec SQL rules, on the text.
sql_findings(text) := {exec_rule_finding("exec.sql_drop", "SQL argument") |
	regex.match(exec_data.sql_drop, text)
} | {exec_rule_finding("exec.sql_delete_all", "SQL argument") |
	regex.match(exec_data.sql_delete_all, text)
}
