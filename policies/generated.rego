# Literal gates: data.clawgate.generated.
#
# In regorus every regex.match costs microseconds, and large patterns cost tens of
# microseconds (each call starts the regex engine with a cold cache). Scanning
# every exec rule and credential pattern for every command and path would blow
# the gate's latency budget, so each pattern entry lists "needles": lower-case
# literal strings, at least one of which occurs in the lower-cased text of
# anything the pattern matches. For example exec.kubectl_delete
# (`kubectl ... delete`, `helm ... uninstall`) has ["delete", "uninstall"].
#
# data.clawgate.generated holds, per pattern list, one regex that is the
# alternation of all needles of the list (a pure literal search, well under a
# microsecond) and a map from needle to the entries it can belong to. A text is
# tried against an entry's pattern only when one of the entry's needles occurs
# in it. An entry without needles is tried on every text: correct, only slower.
#
# The same block indexes the host name globs (trusted, production and loopback
# host lists) and the first octets/bytes of the metadata and blocked CIDRs, so
# that most hosts and IPs are cleared without a glob match or CIDR test each.
#
# The block is generated from data.json by generated_expected below. It must be
# regenerated whenever a needle, a pattern list's length or order, a read-only
# command, a disqualifier, a metadata host or CIDR, a blocked CIDR or one of the
# host lists changes: the bundle refuses to load while it is stale (the loader
# probes the bundle with an empty input, and that path checks it), and
# test_generated_data_is_current prints the current block. Removing the
# "generated" key altogether is allowed: everything is then checked the slow
# way (same decisions) until the block is pasted back.
#
# Tests that replace one of those lists with `with` should also replace
# data.clawgate.generated (with null: the slow way). exec.rules is also guarded
# by its length, so a test that swaps in a different number of rules works
# either way.
package clawgate

import rego.v1

# ---------------------------------------------------------------------------
# Using the generated data
# ---------------------------------------------------------------------------

# The indices of the entries of a pattern list worth trying on a text (whose
# lower-cased form is low). One literal search finds the needles present; the
# generated "tries" map sends each needle found to the entries it may belong to.
#
# A leftmost-first search reports non-overlapping matches only, so an occurrence
# of one needle can hide inside (or start inside) the match of another. tries[m]
# therefore lists every entry with a needle that can overlap an occurrence of m,
# not only the entries listing m itself. Entries without needles are "always"
# tried.
entries_to_try(name, entries, low) := idx if {
	g := list_gates(name, entries)
	found := regex.find_n(g.gate, low, -1)
	idx := {i | some m in found; some i in object.get(g.tries, m, [])} | {i | some i in g.always}
}

# The generated gates of one pattern list; when they are missing or were
# generated from a list of another length (for example in a test that replaces
# the list with `with`), every entry is tried.
list_gates(name, entries) := g if {
	g := data.clawgate.generated[name]
	g.count == count(entries)
} else := {"gate": `\x00`, "tries": {}, "always": [i | some i, _ in entries]}

# list_gate_open, plus the length check of list_gates (exec.rules is replaced
# with `with` in a test).
list_gates_current(name, entries, low) if list_gate_open(name, low)

list_gates_current(name, entries, _) if data.clawgate.generated[name].count != count(entries)

# Whether a text can match any entry of a list: false only when the list's gate
# exists and finds no needle. (Checked before entries_to_try on the hot paths.)
list_gate_open(name, low) := false if {
	regex.match(data.clawgate.generated[name].gate, low) == false
} else := true

# Host name lists (http.trusted_hosts, http.production_hosts,
# network.local_hostnames) are globs. The generated index splits each list into
# exact names (no glob metacharacter: glob-matching them is string equality),
# patterns with a needle (their longest run of literal label characters, which
# every matching host contains) and the rest. Same answer as host_matches over
# the list, without a glob match per pattern.
host_listed(name, patterns, host) := r if {
	g := data.clawgate.generated.hosts[name]
	is_string(host)
	not contains(host, "\u0000") # glob.match rejects NUL: let it (host_matches below)
	r := count([1 | host in g.exact]) + count([1 | some pair in g.gated; contains(host, pair[0]); glob.match(pair[1], ["."], host)]) + count([1 | some p in g.always; glob.match(p, ["."], host)]) > 0
} else := count([1 | host_matches(patterns, host)]) > 0

# Could an IP literal be inside a metadata or blocked range? The generated gate
# lists the first octets (IPv4) and first bytes (IPv6, two hex digits) that any
# of those ranges covers; an address outside them is in none of the ranges.
ip_in_listed_ranges_possible(ip) := r if {
	g := data.clawgate.generated.ip_gate
	is_object(g)
	r := count([1 | contains(ip, ":"); first_byte_hex(ip) in g.v6]) + count([1 | not contains(ip, ":"); octets := split(ip, "."); to_number(octets[0]) in g.v4]) > 0
} else := true

# The first byte of an IPv6 address or CIDR, as two lower-case hex digits.
first_byte_hex(ip) := substring(padded, 0, 2) if {
	groups := split(ip, ":")
	g := lower(groups[0])
	padded := substring(concat("", ["0000", g]), count(g), 4)
}

# Metadata endpoints named in a command: a gate over all needles, and the needles.
metadata_gate := m if {
	m := data.clawgate.generated.metadata
	is_string(m.gate)
} else := {"gate": "", "needles": metadata_needles}

# ---------------------------------------------------------------------------
# Generating it
# ---------------------------------------------------------------------------

# What data.clawgate.generated must be, computed from the lists it summarises.
generated_expected := {
	"exec_rules": list_gates_for(exec_rules, hidden),
	"credential_paths": list_gates_for(path_patterns, hidden),
	"credential_commands": list_gates_for(array.concat(path_patterns, command_patterns), hidden),
	"read_only_disqualifiers": list_gates_for(data.clawgate.exec.read_only_disqualifiers, hidden),
	"read_only": {"pattern": read_only_regex},
	"metadata": {"gate": literal_gate(metadata_needles), "needles": sort(metadata_needles)},
	"hosts": {
		"trusted_hosts": host_index(object.get(http_settings, "trusted_hosts", [])),
		"production_hosts": host_index(object.get(http_settings, "production_hosts", [])),
		"local_hostnames": host_index(local_hostnames),
	},
	"ip_gate": ip_gate,
} if {
	# Which needles can hide which (see overlapping_needles), over every list at once.
	lists := [exec_rules, path_patterns, command_patterns, data.clawgate.exec.read_only_disqualifiers]
	hidden := overlapping_needles({n | some entries in lists; some e in entries; some n in entry_needles(e)})
	http_settings := object.union_n([x | x := data.clawgate.http; is_object(x)])
}

host_index(patterns) := {
	"exact": sort({p | some p in patterns; glob_kind(p) == "exact"}),
	"gated": sort({[n, p] | some p in patterns; glob_kind(p) == "gated"; n := glob_needle(p)}),
	"always": [p | some p in patterns; glob_kind(p) == "always"],
} if {
	# An invalid glob fails here, at load, instead of on every request it meets.
	every p in patterns {
		glob_compiles(p)
	}
}

glob_compiles(p) if not is_string(p)

glob_compiles(p) if {
	is_string(p)
	_ := glob.match(p, ["."], "x")
}

# exact: no glob metacharacter; gated: only * and ? wildcards and a literal
# label run; always: anything else (classes, alternations, escapes, non-strings).
glob_kind(p) := "exact" if {
	is_string(p)
	not regex.match(`[*?\[\]{}\\\x00]`, p)
} else := "gated" if {
	is_string(p)
	not regex.match(`[\[\]{}\\\x00]`, p)
	glob_needle(p) != ""
} else := "always"

glob_needle(p) := n if {
	runs := {r | some r in regex.split(`[*?.]`, p)}
	longest := max({count(r) | some r in runs})
	candidates := sort({r | some r in runs; count(r) == longest})
	n := candidates[0]
}

ip_gate := {"v4": sort(v4), "v6": sort(v6)} if {
	cidrs := array.concat(metadata_cidrs, blocked_cidrs)
	every c in cidrs {
		is_string(c)
		net.cidr_is_valid(c)
	}
	v4 := {o | some c in cidrs; not contains(c, ":"); some o in v4_first_octets(c)}
	v6 := {b | some c in cidrs; contains(c, ":"); some b in v6_first_bytes(c)}
} else := null

v4_first_octets(c) := [a] if {
	parts := split(c, "/")
	to_number(parts[1]) >= 8
	octets := split(parts[0], ".")
	a := to_number(octets[0])
} else := numbers.range(lo, lo + size - 1) if {
	parts := split(c, "/")
	octets := split(parts[0], ".")
	a := to_number(octets[0])
	size := bits.lsh(1, 8 - to_number(parts[1]))
	lo := a - (a % size)
}

v6_first_bytes(c) := [hex] if {
	parts := split(c, "/")
	to_number(parts[1]) >= 8
	hex := first_byte_hex(parts[0])
} else := [byte_hex[i] | some i in numbers.range(lo, lo + size - 1)] if {
	parts := split(c, "/")
	b := byte_value[first_byte_hex(parts[0])]
	size := bits.lsh(1, 8 - to_number(parts[1]))
	lo := b - (b % size)
}

byte_hex := [sprintf("%02x", [i]) | some i in numbers.range(0, 255)]

byte_value := {h: i | some i, h in byte_hex}

list_gates_for(entries, hidden) := {
	"count": count(entries),
	"gate": literal_gate(needles),
	"tries": {m: sort({i | some i, ns in entry_sets; count(ns & hidden[m]) > 0}) | some m in needles},
	"always": [i | some i, ns in entry_sets; count(ns) == 0],
} if {
	entry_sets := [{n | some n in entry_needles(e)} | some e in entries]
	needles := {n | some ns in entry_sets; some n in ns}
}

# An entry's needles; undefined when it has none.
entry_needles(e) := e.needles if {
	is_object(e)
	is_array(e.needles)
	count(e.needles) > 0
}

# For each needle m: the needles n (m included) an occurrence of which can start
# inside, or at the start of, an occurrence of m; a search that reports m may
# miss those. Such an n starts at some offset j of m: then its first two
# characters are m[j:j+2], or it is one character long and equals m[j], or it
# starts with m's last character. Indexes by those heads leave the exact test
# (needles_overlap_exact) to a few candidates per needle.
overlapping_needles(needles) := {m: overlapping(m, by_head, by_first) | some m in needles} if {
	heads := {n: substring(n, 0, 2) | some n in needles}
	by_head := {h: {n | some n, x in heads; x == h} | some h in {x | some _, x in heads}}
	firsts := {n: substring(n, 0, 1) | some n in needles}
	by_first := {c: {n | some n, x in firsts; x == c} | some c in {x | some _, x in firsts}}
}

# The candidates n inside m, or starting with one of m's suffixes (m included).
overlapping(m, by_head, by_first) := {n | some n in candidates; contains(m, n)} | {n | some n in candidates; strings.any_prefix_match(n, suffixes)} if {
	candidates := overlap_candidates(m, by_head, by_first)
	suffixes := {substring(m, j, -1) | some j in numbers.range(0, count(m) - 1)}
}

overlap_candidates(m, by_head, by_first) := {n |
	some j in numbers.range(0, count(m) - 1)
	some w in {substring(m, j, 2), substring(m, j, 1)}
	some n in object.get(by_head, w, set())
} | object.get(by_first, substring(m, count(m) - 1, 1), set())

# The alternation of the escaped literals. The trailing one-byte alternative
# (a NUL character, which no real path or command contains) keeps the regex
# engine on its literal-search fast path: with only longer literals it shortens
# them to 4-byte prefixes and falls back to a much slower automaton.
literal_gate(needles) := concat("|", array.concat([regex_escape(n) | some n in sort({m | some m in needles})], [`\x00`]))

regex_escape(s) := regex.replace(s, `[\\.+*?()|\[\]{}^$#&\-~]`, `\$0`)

# Needles that can never match: not lower-case strings, or empty.
generated_problems contains sprintf("%s entry %d: needles must be non-empty lower-case strings, got %v", [name, i, n]) if {
	some name, entries in {
		"exec.rules": exec_rules,
		"credentials.path_patterns": path_patterns,
		"credentials.command_patterns": command_patterns,
		"exec.read_only_disqualifiers": data.clawgate.exec.read_only_disqualifiers,
	}
	some i, e in entries
	some n in entry_needles(e)
	not valid_needle(n)
}

valid_needle(n) if {
	is_string(n)
	n != ""
	lower(n) == n
}

# ---------------------------------------------------------------------------
# Checking it
# ---------------------------------------------------------------------------

# true, or an evaluation error that explains what to do (see the header). Only
# evaluated for inputs that have no known action.kind, such as the loader's probe.
generated_is_current := true if {
	count(generated_problems) == 0
	not generated_present
} else := true if {
	count(generated_problems) == 0
	data.clawgate.generated == generated_expected
} else := refuse(msg) if {
	stale := {k | some k, v in generated_expected; object.get(data.clawgate.generated, k, null) != v}
	problems := array.concat(
		[sprintf("data.clawgate.generated is out of date (%s)", [concat(", ", sort(stale))]) | count(stale) > 0],
		[concat("; ", sort(generated_problems)) | count(generated_problems) > 0],
	)
	msg := sprintf(
		"%s. Remove the \"generated\" key from data.json (the bundle then loads and scans every pattern, slower), run `clawgate policy test <dir>` and paste back the block that test_generated_data_is_current prints. See docs/policy-guide.md, Performance.",
		[concat("; ", problems)],
	)
}

generated_present if {
	data.clawgate.generated
}

generated_present if {
	data.clawgate.generated == false
}

# Raises an evaluation error carrying the message (object.get rejects a string).
refuse(msg) := object.get(msg, "refused", true)
