# Credentials and protected paths, judged on input.facts.paths: every path of
# the call (tool path parameters, apply_patch targets, MCP path arguments, shell
# redirection targets and command arguments), normalised by the facts stage:
# `~` and $HOME expanded, relative paths joined to the working directory, `//`,
# `/./` and `..` resolved. Each path lists its wildcard-free ancestors in
# `prefixes` (also written with `~` under the home directory), so a sensitive
# location is an object lookup, not a pattern scan.
#
# data.clawgate.paths:
#   sensitive           locations (a file, or a directory and all below it)
#   sensitive_names     file names sensitive wherever they are (id_rsa, .env)
#   sensitive_segments  directory names sensitive in anyone's home (.ssh, .aws)
#   key_suffixes, key_name_pattern   private-key file names
#   system_dirs         where writes need approval
# plus clawgate's own files (input.facts.sidecar.paths).
#
# A path with wildcards (cat ~/.ss*/id_*) is judged by what it could match:
# glob.match of its wildcard prefixes against each sensitive location.
#
# Credentials are denied outright by default: an agent never needs the raw key
# material, and an approval prompt for "read id_rsa" invites a mis-click.
package clawgate

import rego.v1

paths_data := x if {
	x := data.clawgate.paths
} else := {}

credential_risk := x if {
	x := data.clawgate.credentials.risk
} else := "critical"

credential_effect := x if {
	x := data.clawgate.credentials.effect
} else := "deny"

# A finding for a sensitive entry ({"id", "reason"}, optionally "effect", "risk").
credential_finding(entry, where) := finding(
	entry.id,
	object.get(entry, "effect", credential_effect),
	object.get(entry, "risk", credential_risk),
	sprintf("%s touches %s; credentials stay out of agent reach", [where, entry.reason]),
)

# Findings for every path of the call; `tool_writes` says whether a tool's own
# path parameters are written (write, edit) rather than read.
path_findings(tool_writes) := set() if {
	count(object.get(facts, "paths", [])) == 0
} else := {f |
	some p in facts.paths
	some f in path_findings_one(p, tool_writes)
}

path_findings_one(p, tool_writes) := ((sensitive_path_findings(p) | sidecar_path_findings(p)) | system_path_findings(p, tool_writes)) | (rare_path_findings(p, tool_writes) | other_agent_path_findings(p))

# Another agent's files under OpenClaw's state directory (~/.openclaw/agents/<id>/…: its
# session transcripts, what it read; ~/.openclaw/workspace-<id>/…: its workspace and
# memory) reach that identity's data, as sessions_history of its sessions does: held in
# production (tool.cross_agent). A builtin test first: most paths are not there.
other_agent_path_findings(p) := set() if {
	not contains(p.path, "/.openclaw/agents/")
	not contains(p.path, "/.openclaw/workspace-")
} else := {finding("tool.cross_agent", {"production": "require_approval", "default": "allow"}, "high", sprintf("%s belongs to agent %s, not %s (another identity, with its own scope and what it read)", [path_label(p), other, requesting_agent])) |
	some i, s in p.segments
	s == ".openclaw"
	other := openclaw_agent_of(p.segments, i)
	other != requesting_agent
}

openclaw_agent_of(segments, i) := segments[i + 2] if segments[i + 1] == "agents"

openclaw_agent_of(segments, i) := trim_prefix(segments[i + 1], "workspace-") if startswith(segments[i + 1], "workspace-")

# Devices and persistence locations, behind cheap tests: most paths are neither, and
# every function call costs the interpreter.
rare_path_findings(p, tool_writes) := raw_disk_findings(p) if {
	startswith(p.path, "/dev/")
} else := persistence_findings(p, tool_writes) if {
	some a in p.prefixes
	paths_data.persistence[a]
} else := persistence_findings(p, tool_writes) if {
	some s in object.get(p, "segments", [])
	paths_data.persistence_segments[s]
} else := persistence_findings(p, tool_writes) if {
	paths_data.workspace_instruction_names[p.name]
} else := set()

# A change to what runs later, outside the call (paths.persistence: shell start-up
# files, autostart and systemd user units, crontabs, user bin directories, git's
# config, OpenClaw's plugins, hooks, skills and standing instructions; and
# paths.persistence_segments anywhere: a repository's .git/hooks and .git/config, husky
# hooks, direnv's .envrc, VS Code's tasks.json): held in every environment.
# Written means a redirection or a writing tool's path, or an argument of a command that
# is not read-only (cp x ~/.bashrc, sed -i … ~/.profile); `source ~/.bashrc` only reads.
persistence_findings(p, tool_writes) := {f |
	persistence_path(p)
	persistence_write(p, tool_writes)
	rule := paths_data.persistence_rule
	f := finding(rule.id, rule.effect, rule.risk, sprintf("%s %s", [path_label(p), rule.reason]))
}

persistence_path(p) if {
	some a in p.prefixes
	paths_data.persistence[a]
}

# paths.persistence_segments: a name anywhere in a path (.husky, .envrc), or a name and
# the one after it (.git/hooks, .vscode/tasks.json).
persistence_path(p) if {
	some i, s in object.get(p, "segments", [])
	next := paths_data.persistence_segments[s]
	persistence_segment_matches(next, p.segments, i)
}

# OpenClaw's standing instructions (paths.workspace_instruction_names: AGENTS.md, SOUL.md,
# BOOT.md, ...) at the root of any agent's workspace: ~/.openclaw/workspace-<agent> of a
# multi-agent setup, or the call's working directory (a workspace configured elsewhere).
persistence_path(p) if {
	paths_data.workspace_instruction_names[p.name]
	some i, s in p.segments
	s == ".openclaw"
	startswith(p.segments[i + 1], "workspace")
	p.segments[i + 2] == p.name
}

persistence_path(p) if {
	paths_data.workspace_instruction_names[p.name]
	p.path == concat("/", [facts.cwd, p.name])
}

persistence_segment_matches(next, _, _) if next == true

persistence_segment_matches(next, segments, i) if {
	is_array(next)
	segments[i + 1] in next
}

persistence_write(p, tool_writes) if path_written(p, tool_writes)

persistence_write(p, _) if {
	p.access == "argument"
	c := source_command(p)
	not command_read_only(c)
	not c.name in exec_data.runners_of_code
}

raw_disk_entry := {"id": "cred.raw_disk", "reason": "a disk read or written as a raw device (every file on it, whatever the path rules say)"}

# A disk read as a device (head -c … /dev/sda, hexdump /dev/nvme0n1) is every file on
# it, secrets included, past every path rule (exec.block_devices).
raw_disk_findings(p) := {credential_finding(raw_disk_entry, path_label(p)) |
	startswith(p.path, "/dev/")
	block_device(p.path)
	not names_device_only(p)
}

# A program that takes a device by name and reads its metadata, not its blocks
# (lsblk /dev/sda, blkid, df; exec.device_metadata_programs).
names_device_only(p) if source_command(p).name in exec_data.device_metadata_programs

# The command whose argument a path is (source "command N", or "command N (code)").
source_command(p) := fact_commands[to_number(parts[1])] if {
	parts := split(p.source, " ")
	parts[0] == "command"
}

path_label(p) := sprintf("path '%s'", [p.path]) if {
	p.path == p.raw
} else := sprintf("path '%s' (written '%s')", [p.path, p.raw])

sensitive_path_findings(p) := {credential_finding(e, path_label(p)) |
	some e in sensitive_entries(p)
}

sensitive_entries(p) := location_entries(p) | name_entries(p, stem) if {
	stem := backup_stem(p)
}

location_entries(p) := {e |
	some e in all_location_entries(p)
	not public_name(p, e)
}

all_location_entries(p) := {e |
	some a in p.prefixes
	e := paths_data.sensitive[a]
} | {e |
	some s in object.get(p, "segments", [])
	loc := paths_data.sensitive_segments[s]
	e := paths_data.sensitive[loc]
} | glob_entries(p)

# A location's files that are public by name (public_names: ~/.ssh/*.pub keys); a glob
# whose name ends so matches only such files.
public_name(p, e) if regex.match(e.public_names, p.name)

# A file is judged by its name, and by its name without backup suffixes
# (paths.backup_suffix, the stem): id_rsa.bak, .netrc~ and server.key.orig hold
# what the original holds. Name families are judged on the stem only
# (.env.sample.bak is a template's copy).
name_entries(p, stem) := {e |
	some n in {p.name, stem}
	e := paths_data.sensitive_names[n]
	name_applies(p, n)
} | key_file_entries({lower(p.name), lower(stem)}) | name_pattern_entries(lower(stem))

# Most names end in a letter other than a backup suffix's, so the regex runs only
# for names ending like one (`~`, a digit, or the suffixes' last letters).
backup_stem(p) := regex.replace(p.name, paths_data.backup_suffix, "") if {
	not p.glob
	regex.match(`[~0-9pdkgveyow]$`, p.name)
} else := p.name

# Names that are only sensitive under a directory (environ under /proc).
name_applies(_, n) if not paths_data.sensitive_name_under[n]

name_applies(p, n) if startswith(p.path, concat("", [paths_data.sensitive_name_under[n], "/"]))

key_entry := {"id": "cred.private_key", "reason": "a private key or keystore file"}

# Private-key names, among lower-case names.
key_file_entries(names) := {key_entry |
	some n in names
	strings.any_suffix_match(n, paths_data.key_suffixes)
} | {key_entry |
	some n in names
	# A cheap test first: only names with "key" in them are matched by pattern.
	contains(n, "key")
	regex.match(paths_data.key_name_pattern, n)
}

# Families of names that hold secrets (paths.sensitive_name_patterns): .env
# files of any stage (templates aside), kubeconfig files, cloud service-account
# keys; `n` is a lower-case stem.
name_pattern_entries(n) := {e |
	some e in paths_data.sensitive_name_patterns
	contains(n, e.hint)
	regex.match(e.pattern, n)
	not regex.match(object.get(e, "unless", "^$"), n)
}

# The names of paths.sensitive_names, once per evaluation.
sensitive_name_list := object.keys(paths_data.sensitive_names)

# A glob reaches a sensitive location when one of its wildcard prefixes matches
# the location (~/.ss* matches ~/.ssh), or when it names a sensitive file name.
glob_entries(p) := set() if {
	not p.glob
} else := {e |
	some g in p.glob_prefixes
	some form in glob_forms(g)
	head := literal_head(form)
	# Most glob heads start no location: a builtin says so without a loop over them.
	strings.any_prefix_match(sensitive_locations, head)
	some loc, e in paths_data.sensitive
	# A glob matches nothing that does not start with its text before the first
	# wildcard; the cheap test spares glob.match (which compiles the glob every call).
	startswith(loc, head)
	glob.match(form, ["/"], loc)
} | {e |
	regex.match(`[^*?\[\]]`, p.name)
	# All the files of a type (`*.json`, `*.txt`) is how everyday commands name a
	# directory's files: it is not read as reaching a credential file named anywhere
	# (application_default_credentials.json); where credentials live, the locations
	# above match it (~/.config/gcloud/*.json).
	not regex.match(`^\*\.[^*?\[\]/]+$`, p.name)
	head := literal_head(p.name)
	strings.any_prefix_match(sensitive_name_list, head)
	some name, e in paths_data.sensitive_names
	startswith(name, head)
	glob.match(p.name, [], name)
	name_applies_to_glob(p, name)
} | {e |
	some name, under in paths_data.sensitive_name_under
	e := paths_data.sensitive_names[name]
	glob.match(p.name, [], name)
	glob_under(p.path, under)
}

# A glob that can match a path under `under`: it starts with it, or its first segments
# match it (/pro?/self/environ).
glob_under(path, under) if startswith(path, concat("", [under, "/"]))

glob_under(path, under) if {
	not startswith(path, concat("", [under, "/"]))
	n := count(split(under, "/"))
	glob.match(concat("/", array.slice(split(path, "/"), 0, n)), ["/"], under)
}

name_applies_to_glob(_, name) if not paths_data.sensitive_name_under[name]

# A glob prefix as written (for the absolute locations of paths.sensitive) and, when its
# first segments can match the home directory, in its `~` form (for the `~` locations):
# /home/*/.ss* is also ~/.ss*. Locations are matched as written, not expanded per call.
glob_forms(g) := {g} | {t |
	n := count(split(home_dir, "/"))
	segs := split(g, "/")
	count(segs) > n
	glob.match(concat("/", array.slice(segs, 0, n)), ["/"], home_dir)
	t := concat("/", array.concat(["~"], array.slice(segs, n, count(segs))))
}

# The text of a glob before its first wildcard (all of it when it has none).
literal_head(g) := substring(g, 0, min(found)) if {
	found := [i | some ch in ["*", "?", "["]; i := indexof(g, ch); i >= 0]
	count(found) > 0
} else := g

# clawgate's own files: the admin token, the signing key, the audit log, policy.
sidecar_path_findings(p) := {credential_finding(paths_data.sidecar_rule, path_label(p)) |
	some a in p.prefixes
	a in facts.sidecar.paths
} | {credential_finding(paths_data.sidecar_rule, path_label(p)) |
	p.glob
	some s in facts.sidecar.paths
	some g in p.glob_prefixes
	glob.match(g, ["/"], s)
}

# Writing into system directories is outside any agent workspace: by a redirection, a
# writing tool's path, or an operand a command writes (cp x /etc/hosts, truncate -s0
# /etc/passwd, rm /var/log/syslog: exec.operand_writes).
system_path_findings(p, tool_writes) := {f |
	some a in p.prefixes
	a in paths_data.system_dirs
	system_path_written(p, tool_writes)
	not p.path in exec_data.write_ok
	rule := paths_data.system_path_rule
	f := finding(rule.id, rule.effect, rule.risk, sprintf("%s %s", [path_label(p), rule.reason]))
}

path_written(p, _) if p.access in {"write", "append", "read_write"}

system_path_written(p, tool_writes) if path_written(p, tool_writes)

system_path_written(p, _) if {
	p.access == "argument"
	c := source_command(p)
	exec_data.operand_writes[c.name]
	written_operand(c, p.raw)
}

# An operand the command writes (exec.operand_writes), when the command is not a read.
written_operand(c, raw) if {
	exec_data.operand_writes[c.name] == "all"
	raw in c.operands
	not command_read_only(c)
}

written_operand(c, raw) if {
	exec_data.operand_writes[c.name] == "last"
	raw == c.operands[count(c.operands) - 1]
	not command_read_only(c)
}

written_operand(c, raw) if {
	exec_data.operand_writes[c.name]
	some i, w in c.argv
	w in exec_data.target_directory_flags
	c.argv[i + 1] == raw
}

written_operand(c, raw) if {
	exec_data.operand_writes[c.name]
	some w in c.argv
	some flag in exec_data.target_directory_flags
	startswith(flag, "--")
	w == concat("=", [flag, raw])
}

path_written(p, true) if p.access == "param"
