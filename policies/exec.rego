# Shell commands, judged on their facts: exec/bash commands, text typed into
# process/terminal sessions and command-like MCP arguments are parsed by
# clawgate's facts stage (a real shell grammar) into input.facts.commands. Each
# command has its program name, argv after quote removal, flags, operands,
# normalised paths, redirections, wrappers and nesting (see "Facts" in
# docs/policy-guide.md). Nothing here reads raw command text, except where a
# rule is really about text inside an argument (SQL given to psql -c, a sed
# script, a chmod mode).
#
# Two kinds of judgment:
#   * read-only classification (data.clawgate.commands): a call is read-only
#     when every command it runs, nested ones included, is a known read-only
#     program used without a flag or form that makes it write or run something;
#   * rules (data.clawgate.exec.rules): destructive and dangerous commands,
#     dispatched by program name through exec_kind below.
package clawgate

import rego.v1

# The facts of the call; an empty skeleton when the input has none (a policy
# evaluated without the facts stage sees no commands, paths or URLs).
facts := f if {
	f := input.facts
	is_object(f)
} else := {"home": "", "cwd": "", "scripts": [], "commands": [], "paths": [], "urls": [], "truncated": false, "sidecar": {"paths": [], "ports": []}}

fact_commands := object.get(facts, "commands", [])

exec_data := x if {
	x := data.clawgate.exec
} else := {}

command_specs := x if {
	x := data.clawgate.commands
} else := {}

# A finding of one of data.clawgate.exec.rules, with a detail appended.
exec_rule_finding(id, detail) := finding(id, rule.effect, rule.risk, sprintf("%s (%s)", [rule.reason, detail])) if {
	rule := exec_data.rules[id]
} else := finding(id, "deny", "high", sprintf("rule %s is missing from data.clawgate.exec.rules (%s)", [id, detail]))

# --- read-only classification ------------------------------------------------------

# Every command of the call is read-only, and everything parsed.
exec_read_only if {
	count(facts.scripts) > 0
	not facts.truncated
	not unparsed_script
	every c in fact_commands {
		command_read_only(c)
	}
}

unparsed_script if {
	some s in facts.scripts
	s.parse_error
}

unparsed_script if {
	some s in facts.scripts
	s.truncated == true
}

# A bare assignment (`X=1`) runs nothing by itself, unless it redirects into a
# file (`>~/.bashrc` truncates it) or changes how later programs run (PATH, ...).
command_read_only(c) if {
	c.name == ""
	not redirect_writes(c)
	not unsafe_assignment(c)
	not evaluates_subscript(c)
}

command_read_only(c) if {
	c.name != ""
	spec := command_specs[c.name]
	runs_as_named(c)
	not sets_code_variable(c)
	command_spec_read_only(c, spec)
	not reads_unknown_file(c)
}

# A program that prints what its files hold, given a file name only known at run time
# (exec.content_readers: `cat $F` with F set by an earlier call or the environment,
# `cat $(cat list.txt)`, `while read f; do cat "$f"; done < list`): the name can be any
# file, a credential among them. Names from a command that lists files or prints a name
# (exec.name_sources, exec.name_listers: `wc -l $(git ls-files)`, `cat $(pwd)/x`) are
# judged by what lists them; a pattern operand (`grep "$Q" f`) names no file.
reads_unknown_file(c) if {
	some d in c.dynamic
	d.index > 0
	"variable" in d.kinds
	c.name in exec_data.content_readers
	not pattern_word(c, d.index)
	not names_listed(d)
}

# A variable holding what a name source printed (`for f in $(git ls-files)`, `git
# ls-files | while read f`): judged by that command, as `cat $(git ls-files)` is.
names_listed(d) if name_source(fact_commands[d.names_from])

reads_unknown_file(c) if {
	some d in c.dynamic
	d.index > 0
	"command_substitution" in d.kinds
	c.name in exec_data.content_readers
	not pattern_word(c, d.index)
	some s in fact_commands
	s.parent == c.id
	s.via == "substitution"
	object.get(s, "pipe_index", 0) == 0
	not name_source(s)
}

# The word at index i is the pattern or program of grep, sed, awk, jq, ...: its program
# text, or, when the facts could not read the argv (a pattern known only at run time), the
# first operand unless -e/-f give the program.
pattern_word(c, i) if c.argv[i] in object.get(c, "program_text", [])

pattern_word(c, i) if {
	command_specs[c.name].pattern_operand
	not program_given_by_flag(c)
	count(c.operands) > 0
	c.argv[i] == c.operands[0]
}

program_given_by_flag(c) if flag_in(c, ["-e", "--regexp", "-f", "--file", "--from-file", "--expression", "--source"])

program_given_by_flag(c) if short_in(c, {}, ["e", "f"])

name_source(s) if lists_names(s)

name_source(s) if s.name in exec_data.name_sources.always

name_source(s) if {
	s.name == "git"
	subcommand_of(s) in exec_data.name_sources.git
}

# Asking a program for its version runs nothing else (`cargo --version`,
# `java -version`), whether or not the program is listed.
command_read_only(c) if {
	c.name != ""
	count(c.argv) == 2
	version_flag(c.name, c.argv[1])
	runs_as_named(c)
}

version_flag(_, flag) if flag in exec_data.version_flags

# A program's own short form (npm -v; -v is verbose elsewhere): exec.version_flags_of.
version_flag(name, flag) if flag in object.get(exec_data.version_flags_of, name, [])

# The program its name says runs, and nothing around it writes a file or
# changes what it runs.
runs_as_named(c) if {
	not program_dynamic(c)
	not program_elsewhere(c)
	not redirect_writes(c)
	not unsafe_assignment(c)
	not evaluates_subscript(c)
}

# Quoted text holding a command in an array subscript (`test -v 'a[$(id)]'`,
# `printf -v 'a[$(id)]'`, `x='a[$(id)]'; echo $((x))`): bash runs it when it evaluates
# the name or the arithmetic, hidden from a reader of the line. Its commands are judged
# too; the form itself is never plainly read-only, whatever it runs.
evaluates_subscript(c) if c.evaluated_subscripts

# A program named by a path outside the system's directories (./ls, bin/cat,
# /tmp/x/grep, ~/bin/rg) runs whatever file is there, not the program its name
# says (exec.system_program_path).
program_elsewhere(c) if {
	contains(c.program, "/")
	not regex.match(exec_data.system_program_path, c.program)
}

# Builtins that set variables by name (read PATH, printf -v PATH, mapfile):
# a name in environment.runs_code changes what later commands run, as PATH=…
# does.
sets_code_variable(c) if {
	spec := exec_data.variable_setters[c.name]
	spec.operands == true
	some w in c.operands
	code_assignment(w)
}

sets_code_variable(c) if {
	spec := exec_data.variable_setters[c.name]
	some i, w in c.argv
	w == spec.flag
	code_assignment(c.argv[i + 1])
}

sets_code_variable(c) if {
	spec := exec_data.variable_setters[c.name]
	some w in c.argv
	startswith(w, spec.flag)
	w != spec.flag
	code_assignment(substring(w, count(spec.flag), -1))
}

# NAME=value before a program (or given to its env/sudo wrapper): anything but a
# safe name can make a read-only program run code (PAGER, LD_PRELOAD, ...). A command
# line given to such a variable is also parsed and judged (GIT_PAGER='rm -rf ~' is
# exec.rm_root), but the program it makes run is not the one named, so it stays a
# mutation whatever the line says.
unsafe_assignment(c) if {
	c.name != ""
	some a in c.assignments
	not safe_assignment(a)
	not plain_pager(c, a)
}

# A pager variable set to a plain pager (`PAGER=cat git log`, `GIT_PAGER='less -R'`:
# exec.environment.pagers, each of the commands parsed from the value read-only) only
# shows the output: what agents set to keep git and man from waiting on a terminal.
plain_pager(c, a) if {
	a in object.get(exec_data.environment, "pager_variables", [])
	plain_pagers([n | some n in fact_commands; n.parent == c.id; n.via == "variable"])
}

# The same pager given in the call's env (exec's `env: {GIT_PAGER: "cat"}`): the commands
# parsed from that value.
plain_pager(c, a) if {
	a in object.get(exec_data.environment, "pager_variables", [])
	source := concat(".", ["params.env", a])
	plain_pagers([n | some n in fact_commands; facts.scripts[n.script].source == source])
}

# Commands parsed from a pager variable's value, each a plain pager that is read-only.
plain_pagers(pagers) if {
	count(pagers) > 0
	every n in pagers {
		n.name in exec_data.environment.pagers
		command_read_only(n)
	}
}

shown_name(c) := c.name if c.name != "" else := "an assignment"

# A bare assignment: only names that are exported already reach later programs.
unsafe_assignment(c) if {
	c.name == ""
	some a in c.assignments
	code_assignment(a)
}

safe_assignment(a) if a in exec_data.environment.safe

safe_assignment(a) if {
	some p in exec_data.environment.safe_prefixes
	startswith(a, p)
}

code_assignment(a) if a in exec_data.environment.runs_code

code_assignment(a) if {
	some p in exec_data.environment.runs_code_prefixes
	startswith(a, p)
}

program_dynamic(c) if {
	some d in c.dynamic
	d.index == 0
}

redirect_writes(c) if {
	some r in c.redirects
	r.mode in {"write", "append", "read_write"}
	not r.target in exec_data.write_ok
}

# Programs with subcommands (git, kubectl, docker, ...): the program's own
# flags, then the subcommand's spec.
command_spec_read_only(c, spec) if {
	not spec.subcommands
	spec_read_only(c, spec, c.operands)
}

command_spec_read_only(c, spec) if {
	spec.subcommands
	i := subcommand_index(c, spec)
	sub := spec.subcommands[c.argv[i]]
	not flag_in(c, object.get(spec, "runs", []))
	not flag_in(c, object.get(spec, "writes", []))
	program_flag_values_allowed(c, spec)
	subcommand_read_only(c, sub, i)
}

# The program's own options whose values must match a pattern (git -c: display keys only).
program_flag_values_allowed(_, spec) if not spec.flag_values

program_flag_values_allowed(c, spec) if {
	spec.flag_values
	not bad_flag_value(c, spec)
}

# The subcommand's spec decides; a subcommand with its own subcommands (git stash list,
# gh pr view, gcloud compute instances list) hands over to the spec the next word that is
# not an option names, two levels below the program at most. (Written as one else
# chain: the subcommand is found once, and most have no subcommands of their own.)
subcommand_read_only(c, sub, i) if {
	spec_read_only(c, sub, [w | some j, w in c.argv; j > i; not startswith(w, "-")])
} else if {
	sub.subcommands
	j := next_word_index(c, i)
	sub2 := sub.subcommands[c.argv[j]]
	spec_read_only(c, sub2, [w | some k, w in c.argv; k > j; not startswith(w, "-")])
} else if {
	sub.subcommands
	j := next_word_index(c, i)
	sub2 := sub.subcommands[c.argv[j]]
	sub2.subcommands
	k := next_word_index(c, j)
	sub3 := sub2.subcommands[c.argv[k]]
	spec_read_only(c, sub3, [w | some m, w in c.argv; m > k; not startswith(w, "-")])
}

next_word_index(c, i) := js[0] if {
	js := [j | some j, w in c.argv; j > i; not startswith(w, "-")]
}

# The index in argv of the subcommand: the first word that is not an option nor
# the value of one of the program's value_flags.
subcommand_index(c, _) := 1 if {
	not startswith(c.argv[1], "-")
} else := i if {
	vf := object.get(object.get(command_specs, c.name, {}), "value_flags", [])
	idx := [j | some j, w in c.argv; j > 0; not startswith(w, "-"); not c.argv[j - 1] in vf]
	i := idx[0]
}

spec_of(c) := command_specs[c.name]

subcommand_of(c) := c.argv[subcommand_index(c, {})]

# A spec that says only read_only (cat, ls, head, ...: most of them) has no option,
# operand or code condition to check but inline code; the full check is the else.
spec_read_only(c, spec, operands) if {
	spec.read_only == true
	plain_spec(spec)
	not c.code
} else if {
	spec.read_only == true
	not flag_in(c, object.get(spec, "writes", []))
	not flag_in(c, object.get(spec, "runs", []))
	not short_in(c, spec, object.get(spec, "short_writes", []))
	not short_in(c, spec, object.get(spec, "short_runs", []))
	not runs_unjudged(c, spec)
	not unknown_words_with_danger(c, spec)
	requires_met(c, spec)
	operands_allowed(c, spec, operands)
	needs_met(c, spec)
	code_allowed(c, spec)
	not unsafe_operand(c, spec)
	program_text_allowed(c, spec)
	shape_allowed(c, spec, operands)
}

# needs_listed_input (xargs): the words it hands its command come from stdin, so they
# must come from a command that lists file names the rules saw the scope of
# (exec.name_listers: find, fd, ls, echo's judged words, grep -l, git ls-files): from a
# file (xargs cat < list.txt) or another program's output (git log | xargs cat) they
# can name any path.
listed_input(_, spec) if not spec.needs_listed_input

listed_input(c, spec) if {
	spec.needs_listed_input
	not stdin_redirected(c)
	some p in fact_commands
	p.pipeline == c.pipeline
	p.pipe_index == c.pipe_index - 1
	p.via != "wrapper"
	lists_names(p)
}

# A command that only prints the words it is given (xargs echo, xargs -I{} printf …)
# opens nothing they name, wherever they come from (exec.words_only).
listed_input(c, spec) if {
	spec.needs_listed_input
	facts.commands[c.runs].name in object.get(exec_data, "words_only", [])
}

stdin_redirected(c) if {
	some r in c.redirects
	r.fd == 0
}

lists_names(p) if p.name in exec_data.name_listers.always

lists_names(p) if {
	flags := exec_data.name_listers.with_flags[p.name]
	some f in p.flags
	f in flags
}

lists_names(p) if {
	flags := exec_data.name_listers.with_flags[p.name]
	some l in p.short
	concat("", ["-", l]) in flags
}

lists_names(p) if {
	p.name == "git"
	subcommand_of(p) in exec_data.name_listers.git
}

plain_spec(spec) if {
	every k in object.keys(spec) {
		k in {"read_only", "note"}
	}
}

# The whitelist keys (only_flags, flag_values, operand_pattern, min_operands,
# public_urls) and needs_listed_input: most specs have none, and one test skips them all.
shape_allowed(c, spec, operands) if {
	not spec.only_flags
	not spec.flag_values
	not spec.operand_pattern
	not spec.min_operands
	not spec.public_urls
	not spec.needs_listed_input
} else if {
	only_listed_flags(c, spec)
	not bad_flag_value(c, spec)
	operands_shaped(c, spec, operands)
	urls_public(c, spec)
	listed_input(c, spec)
}

# A program read-only only with the options it lists (curl, wget: most of their
# options send, write or read files): every long option in only_flags, every
# letter of a short cluster in only_short ("--" ends the options).
only_listed_flags(_, spec) if not spec.only_flags

only_listed_flags(c, spec) if {
	spec.only_flags
	every f in c.flags {
		listed_flag(f, spec)
	}
}

listed_flag(f, _) if f == "--"

# A single-dash option allowed only as a word of its own (curl's -o, whose value
# flag_values then checks; inside a cluster, -sSo, the value would go unchecked).
listed_flag(f, spec) if f in object.get(spec, "only_words", [])

listed_flag(f, spec) if {
	startswith(f, "--")
	f in spec.only_flags
}

listed_flag(f, spec) if {
	not startswith(f, "--")
	every l in split(substring(f, 1, -1), "") {
		l in object.get(spec, "only_short", [])
	}
}

# flag_values: an option whose value must match a pattern (curl -H is a header
# unless it starts with @, which reads a file), given as the next word or after =.
bad_flag_value(c, spec) if {
	some i, w in c.argv
	pattern := spec.flag_values[w]
	not regex.match(pattern, word_after(c, i))
}

word_after(c, i) := c.argv[i + 1] if {
	count(c.argv) > i + 1
} else := ""

bad_flag_value(c, spec) if {
	some w in c.argv
	startswith(w, "--")
	parts := split(w, "=")
	count(parts) > 1
	pattern := spec.flag_values[parts[0]]
	not regex.match(pattern, substring(w, count(parts[0]) + 1, -1))
}

# operand_pattern: every operand has this shape (curl's are http(s) URLs); min_operands:
# at least that many (printenv without a name prints every variable).
operands_shaped(c, spec, operands) if {
	not spec.operand_pattern
	not spec.min_operands
}

operands_shaped(c, spec, operands) if {
	not spec.operand_pattern
	spec.min_operands
	count(real_operands(c, spec, operands)) >= spec.min_operands
}

operands_shaped(c, spec, operands) if {
	spec.operand_pattern
	words := real_operands(c, spec, operands)
	count(words) >= object.get(spec, "min_operands", 0)
	every o in words {
		regex.match(spec.operand_pattern, o)
	}
}

# public_urls: every URL the command names goes to a public destination (a read of
# a private or internal address is not a plain read: admin APIs answer GETs).
urls_public(_, spec) if not spec.public_urls

urls_public(c, spec) if {
	spec.public_urls
	source := sprintf("command %d", [c.id])
	every u in object.get(facts, "urls", []) {
		public_url_of(u, source)
	}
}

public_url_of(u, source) if u.source != source

public_url_of(u, source) if {
	u.source == source
	count(destination_findings({"host": u.host, "ips": {ip | some ip in array.concat(u.ips, object.get(u, "name_ips", []))}, "block_private": true, "where": "url"})) == 0
}

# A flag that runs another command (find -exec, fd -x) is fine when the facts
# stage unwrapped that command, which is then judged on its own; not otherwise.
runs_unjudged(c, spec) if {
	not c.runs
	flag_in(c, object.get(spec, "runs_judged", []))
}

runs_unjudged(c, spec) if {
	not c.runs
	short_in(c, spec, object.get(spec, "short_runs_judged", []))
}

# A flag of the list, exactly, or a long option abbreviated the way getopt_long
# accepts (`--out` for `--output`, `--in` for sed's `--in-place`, `--se` for date's
# `--set`: any unambiguous prefix, one letter up; an ambiguous one fails, so a prefix
# of a listed flag is taken as that flag).
flag_in(c, list) if {
	some f in c.flags
	f in list
}

flag_in(c, list) if {
	some f in c.flags
	startswith(f, "--")
	count(f) > 2
	some l in list
	startswith(l, f)
}

# A letter of a single-dash cluster (`-uo` holds `o`); for programs that take a
# dashless first argument (tar tf), its letters too.
short_in(c, _, letters) if {
	some l in c.short
	l in letters
}

short_in(c, spec, letters) if {
	spec.bundled == true
	first := c.argv[1]
	not startswith(first, "-")
	some l in letters
	contains(first, l)
}

# A word whose value is only known at run time (a variable, a substitution) can
# turn into a dangerous flag, so a program that has any is not read-only then.
unknown_words_with_danger(c, spec) if {
	spec_has_danger(spec)
	some d in c.dynamic
	d.index > 0
	some k in d.kinds
	k in {"variable", "command_substitution", "arithmetic", "process_substitution", "unparsed"}
}

spec_has_danger(spec) if count(object.get(spec, "writes", [])) > 0

spec_has_danger(spec) if count(object.get(spec, "runs", [])) > 0

spec_has_danger(spec) if count(object.get(spec, "short_writes", [])) > 0

spec_has_danger(spec) if count(object.get(spec, "short_runs", [])) > 0

spec_has_danger(spec) if spec.unsafe_operand

spec_has_danger(spec) if spec.safe_program

spec_has_danger(spec) if spec.runs_judged

spec_has_danger(spec) if spec.only_flags

spec_has_danger(spec) if spec.operand_pattern

requires_met(c, spec) if {
	not spec.requires
	not spec.short_requires
}

requires_met(c, spec) if flag_in(c, object.get(spec, "requires", []))

requires_met(c, spec) if short_in(c, spec, object.get(spec, "short_requires", []))

# Operands that are not the value of one of the spec's value_flags.
real_operands(c, spec, operands) := operands if {
	not spec.value_flags
} else := [w |
	some j, w in c.argv
	j > 0
	w in operands
	not startswith(w, "-")
	not c.argv[j - 1] in spec.value_flags
]

operands_allowed(c, spec, operands) if {
	not spec.max_operands
	not spec.operand_prefix
}

operands_allowed(c, spec, operands) if {
	spec.max_operands
	not spec.operand_prefix
	count(real_operands(c, spec, operands)) <= spec.max_operands
}

# operands_with: flags that make the operands patterns to list, not names to create
# (git tag --list 'v*', git branch --list 'feat/*').
operands_allowed(c, spec, _) if {
	spec.max_operands
	not spec.operand_prefix
	flag_in(c, object.get(spec, "operands_with", []))
}

operands_allowed(c, spec, operands) if {
	not spec.max_operands
	spec.operand_prefix
	every o in real_operands(c, spec, operands) {
		startswith(o, spec.operand_prefix)
	}
}

needs_met(c, spec) if {
	not spec.needs_command
	not spec.needs_script
}

needs_met(c, spec) if {
	spec.needs_command == true
	c.runs
}

# A shell or eval that runs inline code clawgate parsed (that code's commands are
# judged on their own).
needs_met(c, spec) if {
	spec.needs_script == true
	s := facts.scripts[c.runs_script]
	not s.parse_error
	not s.truncated
}

# Inline interpreter code is code execution; an awk program is read-only when it
# neither calls commands nor writes files.
code_allowed(c, spec) if not c.code

code_allowed(c, spec) if {
	spec.code == true
	c.code.language == "awk"
	c.code.text != ""
	count(object.get(c.code, "effects", [])) == 0
}

# A program whose script language can write, read files or run commands (sed's
# w, r, e) is read-only only when the facts stage read its program text
# (commands.<name>.pattern_operand) and every piece of it is in safe_program.
program_text_allowed(_, spec) if not spec.safe_program

program_text_allowed(c, spec) if {
	spec.safe_program
	count(c.program_text) > 0
	every t in c.program_text {
		regex.match(spec.safe_program, t)
	}
}

unsafe_operand(c, spec) if {
	some i, w in c.argv
	i > 0
	regex.match(spec.unsafe_operand, w)
}

# Why a command is not read-only, for the mutation reason.
not_read_only_why(c) := sprintf("%s has a program name only known at run time", [c.program]) if {
	program_dynamic(c)
} else := sprintf("%s redirects output into a file", [shown_name(c)]) if {
	redirect_writes(c)
} else := sprintf("%s runs with %s set, which can make it run other code", [shown_name(c), concat(", ", c.assignments)]) if {
	unsafe_assignment(c)
} else := sprintf("%s runs the file %s, not the system's %s (exec.system_program_path)", [c.name, c.program, c.name]) if {
	program_elsewhere(c)
} else := sprintf("%s holds a command in a quoted array subscript (%s), which bash runs when it evaluates it", [shown_name(c), concat(", ", c.evaluated_subscripts)]) if {
	evaluates_subscript(c)
} else := sprintf("%s reads a file whose name is only known at run time (a variable or a command's output), which can be any file", [c.name]) if {
	reads_unknown_file(c)
} else := sprintf("%s sets a variable that changes what later commands run", [c.name]) if {
	sets_code_variable(c)
} else := sprintf("%s is not a known read-only program (data.clawgate.commands)", [c.name]) if {
	not command_specs[c.name]
} else := sprintf("%s runs inline %s code", [c.name, c.code.language]) if {
	c.code
} else := sprintf("%s %s is not a read-only use", [c.name, subcommand_of(c)]) if {
	spec_of(c).subcommands
} else := sprintf("%s is used with an option or form that writes or runs something", [c.name])

mutation_detail := concat("; ", sort({not_read_only_why(c) | some c in fact_commands; not command_read_only(c)})) if {
	not unparsed_script
	not facts.truncated
} else := "the command could not be fully parsed"

# --- rules -----------------------------------------------------------------------------

# Findings about the commands of the call: parse problems, then the rules of each
# command's kind (exec.kinds maps a program name to the rules that concern it).
command_findings := set() if {
	# Most calls carry no command at all: skip every command rule at once.
	count(object.get(facts, "scripts", [])) == 0
} else := ((parse_findings | kind_findings) | (secret_findings | download_findings)) | ((((device_findings | metadata_command_findings) | recursive_read_findings) | (constructed_text_findings | fork_bomb_findings)) | ((persistence_command_findings | remote_control_findings) | guard_stop_findings))

# Stopping or removing the guard itself (exec.guard: a kill of clawgate by name or by a
# pgrep/pidof of it, systemctl stop|disable, docker stop|rm, kubectl delete of it): the
# agent must not switch off what gates it (cred.governance), whatever the environment.
guard_stop_findings contains finding("cred.governance", credential_effect, "critical", sprintf("%s stops or removes clawgate, the guard itself; an agent must not switch off what gates it", [concat(" ", array.slice(c.argv, 0, 4))])) if {
	some c in fact_commands
	verbs := exec_data.guard.stoppers[c.name]
	stopping_form(c, verbs)
	not "-0" in c.argv
	names_guard(c)
}

stopping_form(_, verbs) if count(verbs) == 0

stopping_form(c, verbs) if {
	some o in c.operands
	o in verbs
}

names_guard(c) if operand_names_guard(c)

names_guard(c) if {
	some s in fact_commands
	s.parent == c.id
	s.via == "substitution"
	operand_names_guard(s)
}

operand_names_guard(c) if {
	some o in c.operands
	some g in exec_data.guard.names
	contains(lower(o), g)
}

# A shell handed to the network (exec.remote_control): netcat's -e/-c/--exec, socat's
# EXEC:/SYSTEM: address, a shell in a pipeline with a network program (`sh -i 2>&1 | nc h
# p`): a remote party then types commands clawgate never sees. Tunnels that expose this
# host or route around the egress proxy (ssh -R/-D/-w, ngrok, cloudflared tunnel, ...)
# are exec.tunnel, held in every environment.
remote_control_findings := {f |
	some c in fact_commands
	kind := exec_data.remote_control.index[c.name]
	some f in remote_control_of(kind, c, exec_data.remote_control)
} | code_shell_findings

# One function per kind of program (exec.remote_control.index), so that the common
# command costs one object lookup.
remote_control_of(kind, c, rc) := {exec_rule_finding("exec.remote_shell", sprintf("%s %s", [c.name, concat(" ", array.slice(c.argv, 1, 4))])) |
	kind == "netcat"
	netcat_exec(c, rc)
} | {exec_rule_finding("exec.remote_shell", sprintf("socat %s", [w])) |
	kind == "socat"
	some w in c.operands
	regex.match(`(?i)^(exec|system):`, w)
} | {exec_rule_finding("exec.remote_shell", sprintf("%s piped with %s", [sh.name, c.name])) |
	kind in {"netcat", "socat", "network"}
	c.pipeline != null
	some sh in fact_commands
	sh.pipeline == c.pipeline
	sh.name in exec_data.shells
	not sh.runs_script
} | {exec_rule_finding("exec.tunnel", sprintf("%s %s", [c.name, concat(" ", array.slice(c.argv, 1, 3))])) |
	tunnel(kind, c, rc)
}

# Inline code (python -c, perl -e, ruby -e, php -r, node -e), one pass over the commands.
code_shell_findings := {f |
	some c in fact_commands
	text := c.code.text
	some f in code_text_findings(c, text)
}

# Code that opens a socket and hands it a shell or a process (socket plus dup2,
# pty.spawn, a shell path), and code that deletes a protected directory tree
# (shutil.rmtree('/home/dev'), FileUtils.rm_rf('/'), fs.rmSync(home, {recursive}):
# exec.code_tree_delete, the pattern; the directory is a path the facts read from the
# code) as `rm -rf` of it would.
code_text_findings(c, text) := {exec_rule_finding("exec.remote_shell", sprintf("%s code opening a socket to a shell", [c.name])) |
	regex.match(`(?i)socket|net\.connect|require\(\s*.net.\s*\)|fsockopen|TCPSocket`, text)
	regex.match(exec_data.remote_control.code_shell_pattern, text)
} | {exec_rule_finding("exec.rm_root", sprintf("%s code deleting %s", [c.name, p.raw])) |
	regex.match(exec_data.code_tree_delete, text)
	source := sprintf("command %d (code)", [c.id])
	some p in facts.paths
	p.source == source
	protected_dir(p.path)
}

netcat_exec(c, rc) if flag_in(c, rc.netcat_exec_flags)

netcat_exec(c, rc) if short_in(c, rc, rc.netcat_exec_short)

tunnel(kind, _, _) if kind == "tunnel"

tunnel(kind, c, rc) if {
	kind == "tunnel_subcommand"
	some o in c.operands
	o in rc.tunnel_subcommands[c.name]
}

tunnel(kind, c, rc) if {
	kind == "ssh"
	short_in(c, rc, rc.ssh_forward_short)
}

# Commands that leave something to run later, outside the call (exec.persistence_commands:
# crontab installing a table, at/batch jobs, systemctl enable, systemd-run timers,
# launchctl load, npm/pip config set, ssh-copy-id): fs.persistence, held in every
# environment like a write to a shell start-up file. An entry matches when its
# leading_operands start the command's operands (if given), one of its flags_any is
# set (if given), and none of its unless_flags/unless_short is.
persistence_command_findings contains finding(rule.id, rule.effect, rule.risk, sprintf("%s %s", [concat(" ", array.slice(c.argv, 0, 3)), rule.reason])) if {
	some c in fact_commands
	spec := exec_data.persistence_commands[c.name]
	persistence_leading(c, spec)
	persistence_flags(c, spec)
	not persistence_excepted(c, spec)
	rule := paths_data.persistence_rule
}

persistence_leading(_, spec) if not spec.leading_operands

persistence_leading(c, spec) if {
	some lead in spec.leading_operands
	array.slice(c.operands, 0, count(lead)) == lead
}

persistence_flags(_, spec) if not spec.flags_any

persistence_flags(c, spec) if flag_in(c, spec.flags_any)

persistence_excepted(c, spec) if flag_in(c, object.get(spec, "unless_flags", []))

persistence_excepted(c, spec) if short_in(c, spec, object.get(spec, "unless_short", []))

# A recursive read of a directory that holds a sensitive location (grep -r x ~,
# tar c /home) reads the credentials too.
recursive_read_findings contains exec_rule_finding("cred.recursive_read", sprintf("%s %s holds %s", [c.name, p, loc])) if {
	some c in fact_commands
	recursive_reader(c)
	some p in c.paths
	loc := sensitive_location_under(p)
}

# The locations of paths.sensitive, once per evaluation.
sensitive_locations := object.keys(paths_data.sensitive)

# One sensitive location inside directory `dir` (the first in order; undefined when it
# holds none): a finding per path, not one per location under it. Most directories hold
# none, which a builtin tells without a Rego loop over the ~300 locations (each turn of
# one costs regorus microseconds).
sensitive_location_under(dir) := min(locs) if {
	prefix := concat("", [trim_suffix(dir, "/"), "/"])
	holds_sensitive_location(prefix)
	locs := {loc | some loc in sensitive_locations; startswith(loc, prefix)} | home_locations_under(prefix)
	count(locs) > 0
}

holds_sensitive_location(prefix) if strings.any_prefix_match(sensitive_locations, prefix)

holds_sensitive_location(prefix) if startswith(concat("", [home_dir, "/"]), prefix)

holds_sensitive_location(prefix) if {
	startswith(prefix, concat("", [home_dir, "/"]))
	strings.any_prefix_match(sensitive_locations, concat("", ["~", trim_prefix(prefix, home_dir)]))
}

# The `~` locations of paths.sensitive under a directory (given as `prefix`, ending in
# `/`): all of them when it holds the home directory, those under its `~` form when it is
# inside it. (Matching the locations as written spares expanding every one per call.)
home_locations_under(prefix) := {loc | some loc in sensitive_locations; startswith(loc, "~/")} if {
	startswith(concat("", [home_dir, "/"]), prefix)
} else := {loc | some loc in sensitive_locations; startswith(loc, tilde)} if {
	startswith(prefix, concat("", [home_dir, "/"]))
	tilde := concat("", ["~", trim_prefix(prefix, home_dir)])
} else := set()

# The programs that hand on the names they find or list (exec.tree_listers: find, fd, ls),
# in one pass over the commands: a lookup per command, the rules of its kind below.
recursive_read_findings contains f if {
	some c in fact_commands
	kind := exec_data.tree_listers[c.name]
	some f in tree_lister_findings(kind, c)
}

tree_lister_findings("find", c) := find_name_findings(c) | find_hands_on_findings(c)

tree_lister_findings("fd", c) := fd_findings(c)

tree_lister_findings("ls", c) := ls_hands_on_findings(c)

# find looking for a file name that credential directories hold (paths.credential_file_names:
# credentials, hosts.yml, config.json, ...) in a tree that holds one of them (find ~ -name
# credentials -exec cat {} +): the selection reaches ~/.aws/credentials though no
# argument names it.
find_name_findings(c) := {exec_rule_finding("cred.recursive_read", sprintf("find %s -name %s can select a file of %s", [p, name, loc])) |
	some i, w in c.argv
	w in {"-name", "-iname"}
	name := lower(c.argv[i + 1])
	name_selects_credentials(name)
	some p in c.paths
	loc := sensitive_location_under(p)
}

# A -name test that can select a credential file: one of paths.credential_file_names,
# or a glob that matches one of them or a name of paths.credential_name_examples
# (find / -name '*.pem' -exec cat {} + reads /etc/ssl/private/privkey.pem).
name_selects_credentials(name) if name in object.get(paths_data, "credential_file_names", [])

name_selects_credentials(name) if {
	regex.match(`[*?\[]`, name)
	head := literal_head(name)
	some example in array.concat(object.get(paths_data, "credential_file_names", []), object.get(paths_data, "credential_name_examples", []))
	startswith(example, head)
	glob.match(name, [], example)
}

# fd handing on what it finds (-x/-X, a pipe into xargs or a shell) in a tree that holds a
# sensitive location (fd -H id_ ~ -x cat, fd . ~ | xargs cat): its pattern is a regex over
# every name, so only an extension filter (-e md) that no credential file has narrows it.
fd_findings(c) := {exec_rule_finding("cred.recursive_read", sprintf("%s over %s hands what it finds on, and it holds %s", [c.name, p, loc])) |
	fd_hands_on(c)
	not fd_extension_excludes_credentials(c)
	some p in c.paths
	loc := sensitive_location_under(p)
}

fd_hands_on(c) if {
	some f in c.flags
	f in {"-x", "-X", "--exec", "--exec-batch"}
}

fd_hands_on(c) if {
	c.pipeline != null
	pipes_names_to_an_opener(c)
}

fd_hands_on(c) if c.via in {"substitution", "process_substitution"}

fd_extension_excludes_credentials(c) if {
	exts := {concat("", [".", trim_prefix(lower(c.argv[i + 1]), ".")]) | some i, w in c.argv; w in {"-e", "--extension"}}
	count(exts) > 0
	every e in exts {
		not e in object.get(paths_data, "key_suffixes", [])
		not e in object.get(paths_data, "credential_extensions", [])
	}
}

# find handing on everything under a start point that holds a sensitive location (find ~
# -exec cat {} +, find ~ -type f | xargs cat): with no -name test (whose selection the
# path rules judge by name), every file of the tree goes to the command, ~/.ssh's too.
find_hands_on_findings(c) := {exec_rule_finding("cred.recursive_read", sprintf("find %s hands every file under it on, and it holds %s", [p, loc])) |
	find_hands_on(c)
	not find_name_tested(c)
	some p in c.paths
	loc := sensitive_location_under(p)
}

# ls handing the entries of such a directory to a command that opens them (ls -A ~ |
# xargs cat, ls -a ~ | while read f; do cat ~/"$f"; done): a pipe into xargs or a shell,
# or into a loop (a compound command, no simple command after it in the pipeline). A
# pipe into grep, head or wc only shows names.
ls_hands_on_findings(c) := {exec_rule_finding("cred.recursive_read", sprintf("ls %s hands its entries on, and it holds %s", [p, loc])) |
	ls_hands_on(c)
	some p in c.paths
	loc := sensitive_location_under(p)
}

ls_hands_on(c) if {
	c.pipeline != null
	pipes_names_to_an_opener(c)
}

# A substitution's names become words of another command (`for f in $(ls -A ~)`).
ls_hands_on(c) if c.via in {"substitution", "process_substitution"}

pipes_names_to_an_opener(c) if {
	some e in fact_commands
	e.pipeline == c.pipeline
	e.pipe_index > c.pipe_index
	e.name in {"xargs", "parallel", "sh", "bash", "zsh", "dash"}
}

pipes_names_to_an_opener(c) if {
	not piped_to_a_command(c)
}

piped_to_a_command(c) if {
	some e in fact_commands
	e.pipeline == c.pipeline
	e.pipe_index == c.pipe_index + 1
}

find_hands_on(c) if {
	some f in c.flags
	f in {"-exec", "-execdir", "-ok", "-okdir"}
}

# Piped into xargs, a shell or a loop (pipes_names_to_an_opener), not into wc or head.
find_hands_on(c) if {
	c.pipeline != null
	pipes_names_to_an_opener(c)
}

find_hands_on(c) if c.via in {"substitution", "process_substitution"}

find_name_tested(c) if {
	some f in c.flags
	f in {"-name", "-iname"}
}

recursive_reader(c) if c.name in exec_data.recursive_readers.always

recursive_reader(c) if {
	c.name in exec_data.recursive_readers.with_recursive_flag
	recursive(c)
}

# Subcommands that search a tree (git grep, with --no-index any directory).
recursive_reader(c) if {
	subs := exec_data.recursive_readers.subcommands[c.name]
	subcommand_of(c) in subs
}

# A container started with the host's powers (exec.host_escape): --privileged, the host's
# root or runtime socket mounted, the host's namespaces, dangerous capabilities, no
# confinement, a device. Held in every environment: the container owns the host.
container_rule_findings(c) := {exec_rule_finding("exec.host_escape", sprintf("%s %s %s", [c.name, subcommand_of(c), w])) |
	escape := exec_data.host_escape
	subcommand_of(c) in escape.subcommands
	some i, w in c.argv
	host_escape_option(escape, w, option_value(c, i))
}

# The value of the option at argv[i]: after `=`, else the next word.
option_value(c, i) := substring(c.argv[i], indexof(c.argv[i], "=") + 1, -1) if {
	contains(c.argv[i], "=")
} else := word_after(c, i)

option_name(w) := split(w, "=")[0]

host_escape_option(escape, w, _) if w in escape.flags

host_escape_option(escape, w, v) if {
	option_name(w) in escape.namespace_flags
	v == "host"
}

host_escape_option(escape, w, v) if {
	option_name(w) in escape.mount_flags
	regex.match(escape.host_mount, v)
}

host_escape_option(escape, w, v) if {
	option_name(w) in escape.capability_flags
	regex.match(escape.capability, v)
}

host_escape_option(escape, w, v) if {
	option_name(w) in escape.security_flags
	regex.match(escape.security, v)
}

host_escape_option(escape, w, _) if option_name(w) in escape.device_flags

# Output redirected onto a block device overwrites the disk.
device_findings contains exec_rule_finding("exec.disk_wipe", sprintf("%s > %s", [c.name, r.target])) if {
	some c in fact_commands
	some r in c.redirects
	r.mode in {"write", "append", "read_write"}
	block_device(r.target)
}

# Text built at run time from literal text through a transformer, then used as
# words of another command: `cat $(base64 -d <<< L2hvbWU…)`, `f=$(rev <<< …)`,
# `echo … | base64 -d | xargs cat`. The words it makes are hidden from every
# rule (exec.text_builders; the facts stage evaluates plain echo/printf).
# A function that calls itself in a pipe or in the background multiplies
# processes until the host has none left.
fork_bomb_findings contains exec_rule_finding("exec.fork_bomb", sprintf("%s calls itself", [c.function])) if {
	some c in fact_commands
	c.function
	c.name == c.function
	forks(c)
}

forks(c) if c.background == true

forks(c) if c.pipeline != null

constructed_text_findings contains exec_rule_finding("exec.constructed_text", sprintf("%s %s", [c.name, concat(" ", array.slice(c.argv, 1, 4))])) if {
	some c in fact_commands
	becomes_words(c)
	builds_text(c)
}

builds_text(c) if {
	spec := exec_data.text_builders[c.name]
	is_object(spec)
	not spec.short
	not spec.flags
	not spec.operand
}

builds_text(c) if {
	spec := exec_data.text_builders[c.name]
	short_in(c, spec, object.get(spec, "short", []))
}

builds_text(c) if {
	spec := exec_data.text_builders[c.name]
	flag_in(c, object.get(spec, "flags", []))
}

builds_text(c) if {
	spec := exec_data.text_builders[c.name]
	some w in c.operands
	regex.match(spec.operand, w)
}

# Any program fed literal text (a here-string or here-document, or echo/printf
# before it in the pipe) transforms it, unless it only passes it on (cat).
builds_text(c) if {
	not c.name in exec_data.identity_programs
	c.name != ""
	fed_literal_text(c)
}

fed_literal_text(c) if {
	some r in c.redirects
	r.op in {"<<<", "<<", "<<-"}
}

fed_literal_text(c) if {
	c.pipe_index > 0
	some first in fact_commands
	first.pipeline == c.pipeline
	first.pipe_index == 0
	first.name in {"echo", "printf"}
}

becomes_words(c) if c.via == "substitution"

becomes_words(c) if {
	some n in fact_commands
	n.pipeline == c.pipeline
	n.pipe_index > c.pipe_index
	n.via != "wrapper"
	takes_words(n)
}

takes_words(n) if n.name in {"xargs", "eval", "source", "."}

takes_words(n) if n.name in exec_data.shells

# A redirection to /dev/tcp/HOST/PORT or /dev/udp/HOST/PORT makes bash open a
# network connection, read or write alike, and no egress rule sees it; a target
# whose value is only known at run time under /dev/ may be one.
device_findings contains exec_rule_finding("exec.raw_socket", sprintf("%s %s %s", [c.name, r.op, r.target])) if {
	some c in fact_commands
	some r in c.redirects
	raw_socket_target(r)
}

raw_socket_target(r) if startswith(r.target, "/dev/tcp/")

raw_socket_target(r) if startswith(r.target, "/dev/udp/")

raw_socket_target(r) if {
	r.literal == false
	startswith(r.target, "/dev/")
}

# A command that talks to the cloud metadata service steals instance credentials.
metadata_command_findings contains exec_rule_finding("exec.cloud_metadata", u.raw) if {
	some u in object.get(facts, "urls", [])
	startswith(u.source, "command")
	metadata_destination(u)
}

metadata_destination(u) if u.host in data.clawgate.network.metadata_hosts

metadata_destination(u) if {
	some ip in array.concat(u.ips, object.get(u, "name_ips", []))
	is_metadata_ip(ip)
}

parse_findings contains exec_rule_finding("exec.unfinished_line", s.source) if {
	some s in facts.scripts
	s.unfinished_line == true
}

parse_findings contains exec_rule_finding("exec.unparsed", sprintf("%s: %s", [s.source, s.parse_error])) if {
	some s in facts.scripts
	s.parse_error
}

parse_findings contains exec_rule_finding("exec.unparsed", "the command is too large or too deeply nested to parse in full") if {
	not unparsed_script_error
	facts.truncated == true
	count(facts.scripts) > 0
}

unparsed_script_error if {
	some s in facts.scripts
	s.parse_error
}

parse_findings contains exec_rule_finding("exec.dynamic_program", c.program) if {
	some c in fact_commands
	program_dynamic(c)
}

kind_findings contains f if {
	some c in fact_commands
	kind := exec_data.kinds[c.name]
	some f in kind_rule_findings(kind, c)
}

# A program named by a glob (`/bin/r? -rf /`, `/usr/bin/[r]m`) may be any program whose
# name its last segment matches: each one with rules (exec.kinds) is judged as if named.
kind_findings contains f if {
	some c in fact_commands
	some d in c.dynamic
	d.index == 0
	"glob" in d.kinds
	segments := split(c.program, "/")
	pattern := segments[count(segments) - 1]
	some name, kind in exec_data.kinds
	glob.match(pattern, [], name)
	some f in kind_rule_findings(kind, object.union(c, {"name": name}))
}

# The rules of a command's kind (one function per kind; regorus' VM does not
# dispatch on constant arguments, so the dispatch is written out).
kind_rule_findings(kind, c) := delete_rule_findings(c) if {
	kind == "delete"
} else := container_rule_findings(c) if {
	kind == "container"
} else := find_rule_findings(c) if {
	kind == "find"
} else := disk_rule_findings(c) if {
	kind == "disk"
} else := dd_rule_findings(c) if {
	kind == "dd"
} else := kubectl_rule_findings(c) if {
	kind == "kubectl"
} else := helm_rule_findings(c) if {
	kind == "helm"
} else := terraform_rule_findings(c) if {
	kind == "terraform"
} else := git_rule_findings(c) if {
	kind == "git"
} else := database_rule_findings(c) if {
	kind == "database"
} else := dropdb_rule_findings(c) if {
	kind == "dropdb"
} else := chmod_rule_findings(c) if {
	kind == "chmod"
} else := permission_rule_findings(c) if {
	kind == "permission"
} else := privilege_rule_findings(c) if {
	kind == "privilege"
} else := powershell_rule_findings(c) if {
	kind == "powershell"
} else := move_rule_findings(c) if {
	kind == "move"
} else := set()

# Moving / , the home directory or a system directory away (mv ~ /tmp/x) removes it
# from where everything expects it, as rm -rf would.
move_rule_findings(c) := {exec_rule_finding("exec.rm_root", sprintf("%s %s", [c.name, p])) |
	count(c.paths) > 1
	some i, p in c.paths
	i < count(c.paths) - 1
	protected_dir(p)
}

# Paths of a command's operands, with ~ written out.
home_dir := object.get(facts, "home", "")

# exec.protected_dirs with ~ written out, and each with `/*` (all it holds), once per
# evaluation: a lookup per path instead of a loop.
protected_paths := {expand_home(d) | some d in exec_data.protected_dirs}

protected_contents := {concat("", [trim_suffix(d, "/"), "/*"]) | some d in protected_paths}

protected_dir(p) if protected_paths[p]

protected_dir(p) if protected_contents[p]

# A glob that can match one of them (rm -rf /e?? is rm -rf /etc).
protected_dir(p) if {
	regex.match(`[*?\[]`, p)
	some d in exec_data.protected_dirs
	glob.match(p, ["/"], expand_home(d))
}

expand_home(d) := concat("", [home_dir, trim_prefix(d, "~")]) if {
	startswith(d, "~")
} else := d

recursive(c) if {
	some l in c.short
	l in {"r", "R"}
}

recursive(c) if flag_in(c, ["--recursive", "--dereference-recursive"])

# grep's -d recurse / --directories=recurse (abbreviations included).
recursive(c) if {
	c.name in {"grep", "egrep", "fgrep"}
	grep_recurses_directories(c)
}

grep_recurses_directories(c) if {
	some i, w in c.argv
	grep_directories_flag(w)
	startswith("recurse", c.argv[i + 1])
}

grep_recurses_directories(c) if {
	some w in c.argv
	parts := split(w, "=")
	count(parts) == 2
	grep_directories_flag(parts[0])
	startswith("recurse", parts[1])
	parts[1] != ""
}

grep_recurses_directories(c) if {
	some w in c.argv
	startswith(w, "-drec")
}

grep_directories_flag(w) if w == "-d"

grep_directories_flag(w) if {
	startswith(w, "--d")
	startswith("--directories", w)
}

delete_rule_findings(c) := {exec_rule_finding("exec.rm_root", sprintf("%s %s", [c.name, concat(" ", c.operands)])) |
	recursive(c)
	some p in c.paths
	protected_dir(p)
} | {exec_rule_finding("exec.rm_root", "rm --no-preserve-root") |
	flag_in(c, ["--no-preserve-root"])
} | {exec_rule_finding("exec.recursive_delete", sprintf("%s -r", [c.name])) |
	recursive(c)
} | {exec_rule_finding("exec.recursive_delete", sprintf("%s under %s", [c.name, w])) |
	some w in c.wrappers
	w in {"find", "fd", "fdfind", "xargs", "parallel"}
}

find_rule_findings(c) := {exec_rule_finding("exec.recursive_delete", "find -delete") |
	"-delete" in c.flags
} | {exec_rule_finding("exec.rm_root", sprintf("find %s deleting all it finds", [p])) |
	find_deletes(c)
	not find_selects_by_name(c)
	some p in c.paths
	protected_dir(p)
}

# find deletes what it finds: -delete, or a delete command run on it (-exec rm -rf {} +).
find_deletes(c) if "-delete" in c.flags

find_deletes(c) if {
	inner := fact_commands[c.runs]
	exec_data.kinds[inner.name] == "delete"
}

# A name or path test picks some files (find ~ -name '*.pyc' -delete), and -empty only
# empty ones; without either, find under the home directory or / deletes the tree like
# rm -rf ~ does.
find_selects_by_name(c) if {
	some f in c.flags
	f in {"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex", "-lname", "-ilname", "-empty"}
}

disk_rule_findings(c) := {exec_rule_finding("exec.disk_wipe", c.name)}

dd_rule_findings(c) := {exec_rule_finding("exec.disk_wipe", sprintf("dd %s", [o])) |
	some o in c.operands
	startswith(o, "of=")
	block_device(trim_prefix(o, "of="))
} | {credential_finding(raw_disk_entry, sprintf("dd %s", [o])) |
	some o in c.operands
	startswith(o, "if=")
	block_device(trim_prefix(o, "if="))
}

kubectl_rule_findings(c) := {exec_rule_finding("exec.kubectl_delete", "kubectl delete") |
	subcommand_of(c) == "delete"
} | {exec_rule_finding("cred.k8s_secret", "kubectl get secret -o") |
	subcommand_of(c) == "get"
	some o in c.operands
	some kind in split(lower(o), ",")
	startswith(kind, "secret")
	output_flag(c)
} | {exec_rule_finding("cred.k8s_secret", "kubectl get --raw …/secrets") |
	# The API path of secrets, read raw (values included).
	"--raw" in c.flags
	some w in c.argv
	contains(lower(w), "/secrets")
} | {exec_rule_finding("exec.host_escape", sprintf("kubectl %s", [w])) |
	# A debugging pod on a node (the node's root filesystem and namespaces), or a pod whose
	# overrides ask for the host's powers.
	subcommand_of(c) in {"debug", "run"}
	some w in c.argv
	kubectl_host_escape(w)
}

kubectl_host_escape(w) if startswith(lower(w), "node/")

kubectl_host_escape(w) if regex.match(`"(privileged|hostPID|hostNetwork|hostIPC)"\s*:\s*true|"hostPath"`, w)

helm_rule_findings(c) := {exec_rule_finding("exec.kubectl_delete", sprintf("helm %s", [sub])) |
	sub := subcommand_of(c)
	sub in {"uninstall", "delete", "del", "un"}
}

terraform_rule_findings(c) := {exec_rule_finding("exec.terraform_destroy", sprintf("%s destroy", [c.name])) |
	subcommand_of(c) == "destroy"
} | {exec_rule_finding("exec.terraform_destroy", sprintf("%s apply -destroy", [c.name])) |
	subcommand_of(c) == "apply"
	"-destroy" in c.flags
} | {exec_rule_finding("exec.terraform_apply", sprintf("%s apply", [c.name])) |
	subcommand_of(c) == "apply"
}

git_rule_findings(c) := {exec_rule_finding("exec.git_force_push", "git push") |
	subcommand_of(c) == "push"
	force_push(c)
} | {exec_rule_finding("exec.git_discard", sprintf("git %s", [sub])) |
	sub := subcommand_of(c)
	git_discard(c, sub)
} | {exec_rule_finding("exec.git_config_code", sprintf("git config %s", [key])) |
	# A key that runs a command, set (not read: --get, --list); also as key=value to -c.
	subcommand_of(c) == "config"
	not command_read_only(c)
	some key in c.operands
	regex.match(exec_data.git_code_config_key, key)
}

database_rule_findings(c) := {exec_rule_finding("exec.sql_drop", c.name) |
	some w in sql_texts_uncommented(c)
	regex.match(exec_data.sql_drop, w)
} | {exec_rule_finding("exec.sql_delete_all", c.name) |
	some w in sql_texts_uncommented(c)
	regex.match(exec_data.sql_delete_all, w)
}

# As written and with SQL comments taken out (DROP/**/TABLE; see mcp.rego).
sql_texts_uncommented(c) := {t | some w in sql_texts(c); some t in {w, sql_uncommented(data.clawgate.mcp, w)}}

# The SQL a database client gets: its arguments, and what echo/printf pipe into it.
sql_texts(c) := {w | some i, w in c.argv; i > 0} | {w |
	c.pipeline
	some e in fact_commands
	e.pipeline == c.pipeline
	e.pipe_index < c.pipe_index
	e.name in {"echo", "printf"}
	some i, w in e.argv
	i > 0
}

dropdb_rule_findings(c) := {exec_rule_finding("exec.sql_drop", "dropdb")}

chmod_rule_findings(c) := {exec_rule_finding("exec.setuid", sprintf("chmod %s", [o])) |
	some o in chmod_modes(c)
	regex.match(exec_data.setuid_mode, o)
} | {exec_rule_finding("exec.world_writable", sprintf("chmod %s", [o])) |
	some o in chmod_modes(c)
	regex.match(exec_data.world_writable_mode, o)
} | {exec_rule_finding("exec.permission_change", c.name)}

permission_rule_findings(c) := {exec_rule_finding("exec.permission_change", c.name)}

privilege_rule_findings(c) := {exec_rule_finding("exec.privilege_escalation", c.name)}

# Interpreters get inline PowerShell download-and-run (iex (iwr ...)) checked.
powershell_rule_findings(c) := {exec_rule_finding("exec.pipe_to_shell", "Invoke-Expression of a download") |
	powershell_download_run(c.code.text)
}

# A mode is the first operand of chmod (also a symbolic mode that looks like a flag: chmod -w x).
chmod_modes(c) := {o |
	some o in c.operands
} | {f |
	some f in c.flags
	regex.match(`^-[rwxXst]+$`, f)
}

output_flag(c) if {
	some f in c.flags
	startswith(f, "-o")
}

output_flag(c) if {
	some f in c.flags
	startswith(f, "--output")
}

output_flag(c) if {
	some f in c.flags
	startswith(f, "--template")
}

block_device(p) if {
	some prefix in exec_data.block_devices
	startswith(p, prefix)
}

force_push(c) if {
	some f in c.flags
	some g in ["--force", "--force-with-lease", "--force-if-includes", "--delete", "--mirror", "--prune"]
	startswith(f, g)
}

force_push(c) if flag_in(c, ["--force", "--delete", "--mirror", "--prune"])

force_push(c) if {
	some l in c.short
	l in {"f", "d"}
}

force_push(c) if {
	some o in c.operands
	startswith(o, "+")
}

force_push(c) if {
	some o in c.operands
	startswith(o, ":")
}

git_discard(c, sub) if {
	sub == "reset"
	flag_in(c, ["--hard"])
}

git_discard(c, sub) if {
	sub == "clean"
	"f" in c.short
}

git_discard(c, sub) if {
	sub == "clean"
	flag_in(c, ["--force"])
}

git_discard(c, sub) if {
	sub == "branch"
	"D" in c.short
}

git_discard(c, sub) if {
	sub == "checkout"
	"f" in c.short
}

git_discard(c, sub) if {
	sub == "checkout"
	flag_in(c, ["--force"])
}

# A download fed straight to a shell or interpreter: through a pipe (curl | sh),
# or as the code of a process or command substitution (sh <(curl ...),
# bash -c "$(curl ...)", eval "$(wget -O- ...)").
download_findings contains exec_rule_finding("exec.pipe_to_shell", sprintf("%s | %s", [d.name, r.name])) if {
	some d in fact_commands
	lower(d.name) in exec_data.downloaders
	d.pipeline
	some r in fact_commands
	r.pipeline == d.pipeline
	r.pipe_index > d.pipe_index
	reads_code_from_stdin(r)
}

download_findings contains exec_rule_finding("exec.pipe_to_shell", sprintf("%s inside %s", [d.name, p.name])) if {
	some d in fact_commands
	lower(d.name) in exec_data.downloaders
	p := fact_commands[d.parent]
	d.via in {"substitution", "process_substitution"}
	code_runner(p)
}

reads_code_from_stdin(r) if {
	lower(r.name) in exec_data.shells
	not "c" in r.short
	count(r.operands) == 0
}

# `sh -s -- args`: the script comes from stdin, the operands are its arguments.
reads_code_from_stdin(r) if {
	lower(r.name) in exec_data.shells
	"s" in r.short
}

reads_code_from_stdin(r) if {
	lower(r.name) in exec_data.interpreters
	not r.code
	count([o | some o in r.operands; o != "-"]) == 0
}

code_runner(p) if lower(p.name) in exec_data.shells

code_runner(p) if lower(p.name) in exec_data.interpreters

code_runner(p) if p.name in exec_data.runners_of_code

# PowerShell given as a command string does not parse as a POSIX shell; its
# download-and-run form (iex (iwr ...)) is a text rule on the unparsed script.
download_findings contains exec_rule_finding("exec.pipe_to_shell", "Invoke-Expression of a download") if {
	some s in facts.scripts
	s.parse_error
	powershell_download_run(s.text)
}

powershell_download_run(text) if {
	regex.match(`(?i)\b(iex|invoke-expression)\b`, text)
	regex.match(`(?i)\b(iwr|irm|invoke-webrequest|invoke-restmethod|downloadstring|net\.webclient)\b`, text)
}

# Secrets printed or expanded by a command.
secret_findings contains finding(s.id, object.get(s, "effect", credential_effect), object.get(s, "risk", credential_risk), sprintf("%s %s %s", [c.name, concat(" ", s.words), s.reason])) if {
	some c in fact_commands
	some s in exec_data.secret_commands[c.name]
	every w in s.words {
		w in c.argv
	}
	secret_operand_named(c, s)
}

# An entry with an operand_pattern is about some operands only (openclaw config get of a
# token key, not of gateway.port).
secret_operand_named(_, s) if not s.operand_pattern

secret_operand_named(c, s) if {
	some o in c.operands
	regex.match(s.operand_pattern, o)
}

secret_findings contains f if {
	some c in fact_commands
	some d in c.dynamic
	"variable" in d.kinds
	regex.match(exec_data.secret_variable, c.argv[d.index])
	f := finding("cred.secret_env_var", "require_approval", "high", sprintf("cred.secret_env_var: expands a secret-looking environment variable (%s) in %s", [c.argv[d.index], c.name]))
}

# Findings about exec's own parameters.
exec_param_findings(name) := fs if {
	name == "exec"
	fs := (({f | f := elevated_finding; is_object(f)} | {f | f := host_finding; is_object(f)}) | {f | f := no_command_finding; is_object(f)}) | {f | f := safety_override_finding; is_object(f)}
} else := set()

# host=gateway or host=node overrides the host OpenClaw is configured to run commands on
# ("omit/auto: inherit configured host"): out of the sandbox, or onto another machine.
host_finding := finding("exec.host_override", {"production": "require_approval", "default": "allow"}, "high", sprintf("exec asks to run on host=%s instead of the configured host (outside the sandbox or on another machine)", [input.action.params.host])) if {
	input.action.params.host in {"gateway", "node"}
}

# security=full or ask=off asks OpenClaw to skip its own exec allowlist or approval
# prompt for this call: the agent lowering the guard it runs under.
safety_override_finding := finding("exec.safety_override", {"production": "require_approval", "default": "allow"}, "high", sprintf("exec asks OpenClaw to run without its own exec checks (%s)", [safety_override])) if {
	safety_override
}

safety_override := "security=full" if {
	input.action.params.security == "full"
} else := "ask=off" if {
	input.action.params.ask == "off"
}

# elevated=true asks OpenClaw to leave the sandbox and run on the host.
elevated_finding := finding("exec.elevated", {"production": "require_approval", "default": "allow"}, "high", "exec requests elevated mode (runs outside the sandbox on the host)") if {
	input.action.params.elevated == true
}

# Nothing to inspect: hold it rather than guess. (Code Mode sends `code`.)
no_command_finding := finding("exec.no_command", "require_approval", "high", "exec call without a command (or Code Mode code) string; clawgate cannot inspect it") if {
	not is_string(input.action.params.command)
	not is_string(input.action.params.code)
}
