# Shell commands: exec (and bash), text typed into process/terminal sessions,
# and command-like arguments of MCP tools.
#
# Pattern rules live in data.clawgate.exec.rules as regexes (Rust regex syntax:
# no look-around, no back-references). Each rule has an id, risk, effect
# (string or per-environment map) and a reason; this file only applies them.
#
# These patterns are a tripwire, not a sandbox: a determined agent can hide a
# command from a regex (variables, base64, eval). The real line in production
# is the read-only classification below: anything that is not plainly a chain
# of read-only commands is a mutation and needs approval there.
package clawgate

import rego.v1

command_strings := tool_command_strings | mcp_command_strings

exec_rules := x if {
	x := data.clawgate.exec.rules
} else := []

findings contains f if {
	some cmd in command_strings
	some rule in exec_rules
	regex.match(rule.pattern, cmd)
	f := finding(rule.id, rule.effect, rule.risk, rule.reason)
}

# Talking to the cloud metadata service from a shell is credential theft in
# one step (instance role keys). Host names and IPs come from data.network.
findings contains f if {
	some cmd in command_strings
	some needle in metadata_needles
	contains(lower(cmd), needle)
	f := finding("exec.cloud_metadata", "deny", "critical", sprintf("command contacts the cloud metadata endpoint %s", [needle]))
}

# Only dotted names: a bare word like "metadata" is far too common in commands.
metadata_needles contains h if {
	some h in data.clawgate.network.metadata_hosts
	contains(h, ".")
}

metadata_needles contains ip if {
	some c in data.clawgate.network.metadata_cidrs
	ip := split(c, "/")[0]
}

# elevated=true asks OpenClaw to leave the sandbox and run on the host.
findings contains f if {
	tool_name == "exec"
	params.elevated == true
	f := finding("exec.elevated", {"production": "require_approval", "default": "allow"}, "high", "exec requests elevated mode (runs outside the sandbox on the host)")
}

# Nothing to inspect: hold it rather than guess. (Code Mode sends `code`,
# which counts as a command string and is handled above.)
findings contains f if {
	tool_name == "exec"
	not is_string(params.command)
	not is_string(params.code)
	f := finding("exec.no_command", "require_approval", "high", "exec call without a command (or Code Mode code) string; clawgate cannot inspect it")
}

# --- read-only classification --------------------------------------------------
#
# A command is read-only when it is a chain (&&, ||, ;, |) of commands from
# exec.read_only_commands whose arguments contain no shell metacharacters
# (no redirection, substitution, backgrounding, quoting tricks with $ or `),
# and none of exec.read_only_disqualifiers matches (find -delete, sort -o, ...).

read_only_segment := sprintf(`(?:%s)(?:[ \t]+[^;&|<>$()\x60\\\n\r]*)?`, [concat("|", data.clawgate.exec.read_only_commands)])

read_only_regex := sprintf(`^[ \t]*%s(?:[ \t]*(?:&&|\|\|?|;)[ \t]*%s)*[ \t]*;?[ \t]*$`, [read_only_segment, read_only_segment])

exec_read_only if {
	cmd := params.command
	is_string(cmd)
	regex.match(read_only_regex, cmd)
	not read_only_disqualified(cmd)
}

read_only_disqualified(cmd) if {
	some p in data.clawgate.exec.read_only_disqualifiers
	regex.match(p, cmd)
}
