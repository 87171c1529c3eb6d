# Network: HTTP requests seen by the egress proxy (kind "http"), CONNECT tunnels
# (kind "connect"), and URLs inside tool parameters (web_fetch.url, browser.url,
# MCP url arguments).
#
# Always denied: the cloud metadata service (metadata_hosts / metadata_cidrs).
# Denied where the destination cannot be a legitimate public service: any
# resolved IP in network.blocked_cidrs (private, loopback, link-local, CGNAT,
# IPv4-mapped IPv6, ...) unless listed in network.allowed_cidrs. For tool URLs
# this applies only to tools whose catalog entry sets block_private_urls
# (browser may open a local dev server; web_fetch may not).
#
# Methods: GET/HEAD/OPTIONS are reads. Anything else is a mutation: to a host in
# http.production_hosts it needs approval everywhere; in a production
# environment it needs approval unless the host is in http.trusted_hosts (the
# model and search APIs the agent must reach to work at all).
#
# Host patterns are globs with "." as separator: "*" matches one label, "**" any
# number of labels.
package clawgate

import rego.v1

# --- helpers -------------------------------------------------------------------

# IPv4 or IPv6 literal? (cidr_is_valid parses both; "/32" is a valid v4 and v6 prefix.)
is_ip(s) if {
	is_string(s)
	net.cidr_is_valid(concat("", [s, "/32"]))
}

normalize_host(h) := trim_suffix(lower(trim(h, "[]")), ".") if is_string(h)

host_matches(patterns, host) if {
	some p in patterns
	glob.match(p, ["."], host)
}

metadata_hosts := x if {
	x := data.clawgate.network.metadata_hosts
} else := []

metadata_cidrs := x if {
	x := data.clawgate.network.metadata_cidrs
} else := []

blocked_cidrs := x if {
	x := data.clawgate.network.blocked_cidrs
} else := []

allowed_cidrs := x if {
	x := data.clawgate.network.allowed_cidrs
} else := []

local_hostnames := x if {
	x := data.clawgate.network.local_hostnames
} else := ["localhost"]

is_metadata_ip(ip) if {
	is_ip(ip)
	some c in metadata_cidrs
	net.cidr_contains(c, ip)
}

is_blocked_ip(ip) if {
	is_ip(ip)
	some c in blocked_cidrs
	net.cidr_contains(c, ip)
	not is_allowed_ip(ip)
}

is_allowed_ip(ip) if {
	some c in allowed_cidrs
	net.cidr_contains(c, ip)
}

# Host of an absolute URL: after "scheme://", before the path, without
# userinfo, port or IPv6 brackets. Backslash ends the authority like browsers do.
url_host(u) := h if {
	is_string(u)
	parts := split(u, "://")
	count(parts) > 1
	pieces := regex.split(`[/?#\\]`, parts[1])
	authority := pieces[0]
	at_parts := split(authority, "@")
	hostport := at_parts[count(at_parts) - 1]
	h := normalize_host(strip_port(hostport))
	h != ""
}

strip_port(hp) := substring(hp, 1, indexof(hp, "]") - 1) if {
	startswith(hp, "[")
	indexof(hp, "]") > 0
} else := host if {
	strings.count(hp, ":") == 1
	parts := split(hp, ":")
	host := parts[0]
} else := hp

# --- destinations to check ------------------------------------------------------

dest_ips := {ip | some ip in input.action.dest.ips; is_string(ip)}

http_host := normalize_host(input.action.http.host) if {
	input.action.kind == "http"
	is_string(input.action.http.host)
} else := normalize_host(input.action.dest.host) if {
	input.action.kind in {"http", "connect"}
	is_string(input.action.dest.host)
}

host_label := x if {
	x := http_host
} else := "(no host)"

# Every destination of the call: {"host", "ips", "block_private", "where"}.
destinations contains d if {
	input.action.kind in {"http", "connect"}
	some d in proxy_destinations
}

destinations contains {"host": h, "ips": set(), "block_private": tool_blocks_private_urls_flag, "where": sprintf("%s url", [tool_name])} if {
	some u in tool_url_strings
	h := url_host(u)
}

destinations contains {"host": h, "ips": set(), "block_private": mcp_blocks_private_urls_flag, "where": mcp_label} if {
	some u in mcp_url_strings
	h := url_host(u)
}

# The proxy's destination; and the host it connects to (dest.host) when that
# differs from the Host header.
proxy_destinations := {{"host": host_label, "ips": dest_ips, "block_private": true, "where": sprintf("%s destination", [input.action.kind])}} | {d |
	input.action.kind == "http"
	h := normalize_host(input.action.dest.host)
	h != host_label
	d := {"host": h, "ips": set(), "block_private": true, "where": "http connect target"}
}

# --- metadata and private address rules --------------------------------------------

destination_findings(d) := (host_fs | ip_fs) | loopback_fs if {
	host_fs := {f |
		d.host in data.clawgate.network.metadata_hosts
		f := finding("net.cloud_metadata", "deny", "critical", sprintf("%s %s is a cloud metadata endpoint (instance credentials)", [d.where, d.host]))
	}

	# IP literals (the host itself, or resolved addresses) that can be in a
	# metadata or blocked range at all (generated ip_gate; is_ip inline).
	ips := {ip |
		some ip in ({d.host} | d.ips)
		is_string(ip)
		net.cidr_is_valid(concat("", [ip, "/32"]))
		ip_in_listed_ranges_possible(ip)
	}
	ip_fs := {f | count(ips) > 0; some f in ip_findings(d, ips)}
	loopback_fs := {f |
		d.block_private
		loopback_host(d.host)
		f := finding("net.private_address", "deny", "high", sprintf("%s %s is a loopback host name", [d.where, d.host]))
	}
}

ip_findings(d, ips) := {f |
	some ip in ips
	is_metadata_ip(ip)
	f := finding("net.cloud_metadata", "deny", "critical", sprintf("%s %s resolves to the cloud metadata address %s", [d.where, d.host, ip]))
} | {f |
	d.block_private
	some ip in ips
	is_blocked_ip(ip)
	f := finding("net.private_address", "deny", "high", sprintf("%s %s reaches the private or reserved address %s; add the range to network.allowed_cidrs if this service is meant to be reachable", [d.where, d.host, ip]))
}

# host_matches(local_hostnames, host), through the generated index.
loopback_host(host) := host_listed("local_hostnames", local_hostnames, host)

# --- kind http: methods and hosts -----------------------------------------------

http_method := upper(m) if {
	m := input.action.http.method
	is_string(m)
} else := "(no method)"

http_mutating if not http_method in data.clawgate.http.safe_methods

http_label := sprintf("%s %s", [http_method, host_label])

http_trusted if host_listed("trusted_hosts", data.clawgate.http.trusted_hosts, http_host)

http_production_host if host_listed("production_hosts", data.clawgate.http.production_hosts, http_host)

http_mutation_risk := x if {
	x := data.clawgate.http.mutation_risk
} else := "medium"

# Everything about an HTTP request, in one rule (see core in main.rego). The
# helper rules above (http_host, http_method, ...) say the same for custom
# policies; the core computes them inline, since every rule costs ~10 us.
http_core := {"findings": fs, "rate_subject": subjects[0], "limits": {}} if {
	a := input.action

	# http_host: the Host header, else the host the proxy connects to.
	hosts := array.concat(
		[trim_suffix(lower(trim(h, "[]")), ".") | h := a.http.host; is_string(h)],
		[trim_suffix(lower(trim(h, "[]")), ".") | h := a.dest.host; is_string(h)],
	)
	labels := array.concat(hosts, ["(no host)"])
	host_label := labels[0]
	subjects := array.concat(hosts, ["unknown"])

	# The destination, and dest.host when it differs from the Host header.
	targets := {d |
		h := trim_suffix(lower(trim(a.dest.host, "[]")), ".")
		h != host_label
		d := {"host": h, "ips": set(), "block_private": true, "where": "http connect target"}
	}
	dests := {{"host": host_label, "ips": {ip | some ip in a.dest.ips; is_string(ip)}, "block_private": true, "where": "http destination"}} | targets
	dest_fs := {f | some d in dests; some f in destination_findings(d)}

	# Methods: reads, trusted API hosts, mutations, production hosts.
	methods := array.concat([upper(m) | m := a.http.method; is_string(m)], ["(no method)"])
	method := methods[0]
	hc := object.union_n([x | x := data.clawgate.http; is_object(x)])
	mutating := count([1 | method in hc.safe_methods]) == 0
	label := sprintf("%s %s", [method, host_label])
	method_fs := http_method_finding(mutating, hc, hosts, label)
	production_fs := {f |
		mutating
		host := hosts[0]
		host_listed("production_hosts", object.get(hc, "production_hosts", []), host)
		rule := hc.production_host_rule
		f := finding("http.production_host", rule.effect, rule.risk, sprintf("%s changes state on a production host (http.production_hosts)", [label]))
	}
	no_host_fs := {f | count(hosts) == 0; f := finding("http.no_host", "deny", "high", "HTTP request without a host")}
	fs := ((dest_fs | method_fs) | production_fs) | no_host_fs
}

http_method_finding(false, _, _, label) := {finding("http.read", tier_effect("low"), "low", sprintf("%s is a read", [label]))}

http_method_finding(true, hc, hosts, label) := {finding("http.trusted_host", "allow", "low", sprintf("%s goes to a trusted API host (http.trusted_hosts)", [label]))} if {
	host := hosts[0]
	host_listed("trusted_hosts", object.get(hc, "trusted_hosts", []), host)
} else := {finding("http.mutation", tier_mutation_effect(risk), risk, sprintf("%s changes remote state", [label]))} if {
	risks := array.concat([r | r := hc.mutation_risk], ["medium"])
	risk := risks[0]
}

# --- kind connect ------------------------------------------------------------------

connect_port := p if {
	p := input.action.dest.port
	is_number(p)
}

port_label := x if {
	x := sprintf("%d", [connect_port])
} else := "?"

# Everything about a CONNECT tunnel, in one rule (see core in main.rego).
# A tunnel lives as long as its connection (a WebSocket, a download), so its time and size
# limits come from network.connect_constraints rather than the per-request tier limits.
connect_core := {"findings": fs, "rate_subject": subjects[0], "limits": object.get(data.clawgate.network, "connect_constraints", {})} if {
	a := input.action
	hosts := [trim_suffix(lower(trim(h, "[]")), ".") | h := a.dest.host; is_string(h)]
	labels := array.concat(hosts, ["(no host)"])
	host_label := labels[0]
	subjects := array.concat(hosts, ["unknown"])
	dest_fs := destination_findings({"host": host_label, "ips": {ip | some ip in a.dest.ips; is_string(ip)}, "block_private": true, "where": "connect destination"})
	fs := ((dest_fs | connect_base_findings) | connect_port_findings) | connect_no_host_findings
}

connect_base_findings := {f |
	http_host
	f := finding("connect.base", tier_effect("low"), "low", sprintf("CONNECT tunnel to %s:%s; contents are opaque unless TLS inspection turns them into http actions", [http_host, port_label]))
}

connect_port_findings := {f |
	connect_port
	not connect_port in data.clawgate.network.allowed_connect_ports
	rule := data.clawgate.network.unusual_port_rule
	f := finding("connect.unusual_port", rule.effect, rule.risk, sprintf("CONNECT to %s on port %s, not in network.allowed_connect_ports", [host_label, port_label]))
}

connect_no_host_findings := {f |
	not http_host
	f := finding("connect.no_host", "deny", "high", "CONNECT without a destination host")
}

