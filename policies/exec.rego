# Shell commands: exec (and bash), text typed into process/terminal sessions,
# and command-like arguments of MCP tools.
#
# Pattern rules live in data.clawgate.exec.rules as regexes (Rust regex syntax:
# no look-around, no back-references). Each rule has an id, risk, effect
# (string or per-environment map), a reason and "needles"; this file only applies
# them. A rule is only tried on a command whose lower-cased text contains one of
# its needles (see generated.rego), which keeps the common command cheap.
#
# These patterns are a tripwire, not a sandbox: a determined agent can hide a
# command from a regex (variables, base64, eval). The real line in production
# is the read-only classification below: anything that is not plainly a chain
# of read-only commands is a mutation and needs approval there.
package clawgate

import rego.v1

# Every command string of the call: tool command parameters and MCP command
# arguments.
command_strings := tool_command_strings | mcp_command_strings

exec_rules := x if {
	x := data.clawgate.exec.rules
} else := []

# Findings for one shell command string: the exec rules, the cloud metadata
# endpoints and the credential patterns (files.rego).
command_findings_one(cmd) := set() if {
	# The common case, written out: no needle of any exec rule, metadata
	# endpoint or credential pattern occurs. (`== false` rather than `not`, so
	# that a missing gate takes the full path below.)
	low := lower(cmd)
	g := data.clawgate.generated
	regex.match(g.exec_rules.gate, low) == false
	g.exec_rules.count == count(data.clawgate.exec.rules)
	regex.match(g.metadata.gate, low) == false
	regex.match(g.credential_commands.gate, low) == false
} else := (exec_rule_findings(cmd, low) | metadata_findings(low)) | credential_command_findings(cmd, low) if {
	low := lower(cmd)
}

exec_rule_findings(cmd, low) := {f |
	rules := exec_rules
	list_gates_current("exec_rules", rules, low)
	some i in entries_to_try("exec_rules", rules, low)
	rule := rules[i]
	regex.match(rule.pattern, cmd)
	f := finding(rule.id, rule.effect, rule.risk, rule.reason)
}

# Talking to the cloud metadata service from a shell is credential theft in
# one step (instance role keys). Host names and IPs come from data.network.
metadata_findings(low) := {f |
	m := metadata_gate
	regex.match(m.gate, low)
	some needle in m.needles
	contains(low, needle)
	f := finding("exec.cloud_metadata", "deny", "critical", sprintf("command contacts the cloud metadata endpoint %s", [needle]))
}

# Only dotted names: a bare word like "metadata" is far too common in commands.
metadata_needles contains h if {
	some h in data.clawgate.network.metadata_hosts
	contains(h, ".")
}

metadata_needles contains ip if {
	some c in data.clawgate.network.metadata_cidrs
	parts := split(c, "/")
	ip := parts[0]
}

# Findings about exec's own parameters. (input.action.params.x is params.x:
# both are undefined unless params is an object with that key.)
exec_param_findings(name) := fs if {
	name == "exec"
	fs := {f | f := elevated_finding} | {f | f := no_command_finding}
} else := set()

# elevated=true asks OpenClaw to leave the sandbox and run on the host.
elevated_finding := finding("exec.elevated", {"production": "require_approval", "default": "allow"}, "high", "exec requests elevated mode (runs outside the sandbox on the host)") if {
	input.action.params.elevated == true
}

# Nothing to inspect: hold it rather than guess. (Code Mode sends `code`,
# which counts as a command string and is handled above.)
no_command_finding := finding("exec.no_command", "require_approval", "high", "exec call without a command (or Code Mode code) string; clawgate cannot inspect it") if {
	not is_string(input.action.params.command)
	not is_string(input.action.params.code)
}

# --- read-only classification --------------------------------------------------
#
# A command is read-only when it is a chain (&&, ||, ;, |) of commands from
# exec.read_only_commands whose arguments contain no shell metacharacters
# (no redirection, substitution, backgrounding, quoting tricks with $ or `),
# and none of exec.read_only_disqualifiers matches (find -delete, sort -o, ...).
#
# read_only_regex is the pattern built from the list; the gate uses the same
# string precomputed in data.clawgate.generated.read_only.pattern.

read_only_segment := sprintf(`(?:%s)(?:[ \t]+[^;&|<>$()\x60\\\n\r]*)?`, [concat("|", data.clawgate.exec.read_only_commands)])

read_only_regex := sprintf(`^[ \t]*%s(?:[ \t]*(?:&&|\|\|?|;)[ \t]*%s)*[ \t]*;?[ \t]*$`, [read_only_segment, read_only_segment])

exec_read_only if {
	cmd := input.action.params.command
	is_string(cmd)
	regex.match(read_only_pattern, cmd)
	read_only_disqualifier_match(cmd) == false
}

read_only_pattern := p if {
	p := data.clawgate.generated.read_only.pattern
	is_string(p)
} else := read_only_regex

# A disqualifier is an entry of exec.read_only_disqualifiers: a pattern string,
# or {"pattern": ..., "needles": [...]}.
disqualifier_pattern(d) := d if is_string(d) else := d.pattern

read_only_disqualifier_match(cmd) := false if {
	# The common case: no needle of any disqualifier occurs.
	regex.match(data.clawgate.generated.read_only_disqualifiers.gate, lower(cmd)) == false
} else := count([1 |
	ds := data.clawgate.exec.read_only_disqualifiers
	some i in entries_to_try("read_only_disqualifiers", ds, lower(cmd))
	regex.match(disqualifier_pattern(ds[i]), cmd)
]) > 0
