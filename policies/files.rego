# Credentials and protected paths.
#
# The same credential patterns (data.clawgate.credentials.path_patterns) are
# applied to file paths (read/write/edit/apply_patch/view_image/pdf, MCP path
# arguments, exec workdir) and to shell command strings, so `read ~/.ssh/id_rsa`
# and `cat ~/.ssh/id_rsa` meet the same rule. command_patterns are shell-only
# (gh auth token, kubectl get secret -o yaml, ...).
#
# Credentials are denied outright by default: an agent never needs the raw key
# material, and an approval prompt for "read id_rsa" invites a mis-click.
# Each pattern may override risk/effect (cred.secret_env_var only asks).
#
# Like exec rules, each pattern has "needles": it is only tried on a path or
# command whose lower-cased text contains one of them (see generated.rego).
package clawgate

import rego.v1

# Every file path of the call (tool path parameters, apply_patch paths, MCP
# path-like arguments).
file_paths := (tool_file_paths | patch_file_paths) | mcp_file_paths

credential_risk := x if {
	x := data.clawgate.credentials.risk
} else := "critical"

credential_effect := x if {
	x := data.clawgate.credentials.effect
} else := "deny"

path_patterns := x if {
	x := data.clawgate.credentials.path_patterns
} else := []

command_patterns := x if {
	x := data.clawgate.credentials.command_patterns
} else := []

credential_finding(p, where) := finding(
	p.id,
	object.get(p, "effect", credential_effect),
	object.get(p, "risk", credential_risk),
	sprintf("%s touches %s; credentials stay out of agent reach", [where, p.reason]),
)

path_findings_one(raw, writes) := credential_path_findings(path) | system_path_findings(path, writes) if {
	path := replace(raw, "\\", "/")
}

credential_path_findings(path) := set() if {
	# The common case: no needle of any credential pattern occurs. (`== false`
	# rather than `not`, so that a missing gate takes the full path below.)
	regex.match(data.clawgate.generated.credential_paths.gate, lower(path)) == false
} else := {f |
	patterns := path_patterns
	some i in entries_to_try("credential_paths", patterns, lower(path))
	p := patterns[i]
	regex.match(p.pattern, path)
	f := credential_finding(p, sprintf("path '%s'", [path]))
}

# Shell commands meet the path patterns and the command patterns.
credential_command_findings(cmd, low) := {f |
	list_gate_open("credential_commands", low)
	patterns := array.concat(path_patterns, command_patterns)
	some i in entries_to_try("credential_commands", patterns, low)
	p := patterns[i]
	regex.match(p.pattern, cmd)
	f := credential_finding(p, "command")
}

# Writing into system directories is outside any agent workspace.
system_path_findings(path, writes) := {f |
	writes == true
	rule := data.clawgate.files.system_path_rule
	some pattern in data.clawgate.files.system_path_patterns
	regex.match(pattern, path)
	f := finding(rule.id, rule.effect, rule.risk, sprintf("path '%s' %s", [path, rule.reason]))
}
