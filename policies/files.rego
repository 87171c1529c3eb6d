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
package clawgate

import rego.v1

file_paths := tool_file_paths | patch_file_paths | mcp_file_paths

# Windows separators become "/" so one pattern covers both.
normalized_paths contains replace(p, "\\", "/") if some p in file_paths

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

findings contains f if {
	some path in normalized_paths
	some p in path_patterns
	regex.match(p.pattern, path)
	f := credential_finding(p, sprintf("path '%s'", [path]))
}

findings contains f if {
	some cmd in command_strings
	some p in array.concat(path_patterns, command_patterns)
	regex.match(p.pattern, cmd)
	f := credential_finding(p, "command")
}

# Writing into system directories is outside any agent workspace. (exec's
# workdir is not a write target; its commands are judged by exec.rego.)
write_targets := tool_file_paths | patch_file_paths

writes_files if {
	tool_known
	tool_mutates
	object.get(tool_spec, "mutating", false) != "command"
}

findings contains f if {
	writes_files
	rule := data.clawgate.files.system_path_rule
	some raw in write_targets
	path := replace(raw, "\\", "/")
	some pattern in data.clawgate.files.system_path_patterns
	regex.match(pattern, path)
	f := finding(rule.id, rule.effect, rule.risk, sprintf("path '%s' %s", [path, rule.reason]))
}
