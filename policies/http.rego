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
	authority := regex.split(`[/?#\\]`, parts[1])[0]
	at_parts := split(authority, "@")
	hostport := at_parts[count(at_parts) - 1]
	h := normalize_host(strip_port(hostport))
	h != ""
}

strip_port(hp) := substring(hp, 1, indexof(hp, "]") - 1) if {
	startswith(hp, "[")
	indexof(hp, "]") > 0
} else := split(hp, ":")[0] if {
	strings.count(hp, ":") == 1
} else := hp

# --- destinations to check ------------------------------------------------------

dest_ips := {ip | some ip in input.action.dest.ips; is_string(ip)}

http_host := normalize_host(input.action.http.host) if {
	action_kind == "http"
	is_string(input.action.http.host)
} else := normalize_host(input.action.dest.host) if {
	action_kind in {"http", "connect"}
	is_string(input.action.dest.host)
}

host_label := x if {
	x := http_host
} else := "(no host)"

destinations contains {"host": host_label, "ips": dest_ips, "block_private": true, "where": sprintf("%s destination", [action_kind])} if {
	action_kind in {"http", "connect"}
}

# The proxy connects to dest.host; check it too when it differs from the Host.
destinations contains {"host": h, "ips": set(), "block_private": true, "where": "http connect target"} if {
	action_kind == "http"
	h := normalize_host(input.action.dest.host)
	h != host_label
}

destinations contains {"host": h, "ips": set(), "block_private": tool_blocks_private_urls_flag, "where": sprintf("%s url", [tool_name])} if {
	some u in tool_url_strings
	h := url_host(u)
}

destinations contains {"host": h, "ips": set(), "block_private": mcp_blocks_private_urls_flag, "where": mcp_label} if {
	some u in mcp_url_strings
	h := url_host(u)
}

tool_blocks_private_urls_flag := true if tool_blocks_private_urls else := false

mcp_blocks_private_urls_flag := true if mcp_blocks_private_urls else := false

# --- metadata and private address rules --------------------------------------------

findings contains f if {
	some d in destinations
	d.host in metadata_hosts
	f := finding("net.cloud_metadata", "deny", "critical", sprintf("%s %s is a cloud metadata endpoint (instance credentials)", [d.where, d.host]))
}

findings contains f if {
	some d in destinations
	some ip in ({d.host} | d.ips)
	is_metadata_ip(ip)
	f := finding("net.cloud_metadata", "deny", "critical", sprintf("%s %s resolves to the cloud metadata address %s", [d.where, d.host, ip]))
}

findings contains f if {
	some d in destinations
	d.block_private
	some ip in ({d.host} | d.ips)
	is_blocked_ip(ip)
	f := finding("net.private_address", "deny", "high", sprintf("%s %s reaches the private or reserved address %s; add the range to network.allowed_cidrs if this service is meant to be reachable", [d.where, d.host, ip]))
}

findings contains f if {
	some d in destinations
	d.block_private
	host_matches(local_hostnames, d.host)
	f := finding("net.private_address", "deny", "high", sprintf("%s %s is a loopback host name", [d.where, d.host]))
}

# --- kind http: methods and hosts -----------------------------------------------

http_method := upper(m) if {
	m := input.action.http.method
	is_string(m)
} else := "(no method)"

http_mutating if not http_method in data.clawgate.http.safe_methods

http_label := sprintf("%s %s", [http_method, host_label])

http_trusted if host_matches(data.clawgate.http.trusted_hosts, http_host)

http_production_host if host_matches(data.clawgate.http.production_hosts, http_host)

http_mutation_risk := x if {
	x := data.clawgate.http.mutation_risk
} else := "medium"

findings contains f if {
	action_kind == "http"
	not http_mutating
	f := finding("http.read", tier_effect("low"), "low", sprintf("%s is a read", [http_label]))
}

findings contains f if {
	action_kind == "http"
	http_mutating
	http_trusted
	f := finding("http.trusted_host", "allow", "low", sprintf("%s goes to a trusted API host (http.trusted_hosts)", [http_label]))
}

findings contains f if {
	action_kind == "http"
	http_mutating
	not http_trusted
	f := finding("http.mutation", tier_mutation_effect(http_mutation_risk), http_mutation_risk, sprintf("%s changes remote state", [http_label]))
}

findings contains f if {
	action_kind == "http"
	http_mutating
	http_production_host
	rule := data.clawgate.http.production_host_rule
	f := finding("http.production_host", rule.effect, rule.risk, sprintf("%s changes state on a production host (http.production_hosts)", [http_label]))
}

findings contains f if {
	action_kind == "http"
	not http_host
	f := finding("http.no_host", "deny", "high", "HTTP request without a host")
}

# --- kind connect ------------------------------------------------------------------

connect_port := p if {
	p := input.action.dest.port
	is_number(p)
}

port_label := x if {
	x := sprintf("%d", [connect_port])
} else := "?"

findings contains f if {
	action_kind == "connect"
	http_host
	f := finding("connect.base", tier_effect("low"), "low", sprintf("CONNECT tunnel to %s:%s; contents are opaque unless TLS inspection turns them into http actions", [http_host, port_label]))
}

findings contains f if {
	action_kind == "connect"
	connect_port
	not connect_port in data.clawgate.network.allowed_connect_ports
	rule := data.clawgate.network.unusual_port_rule
	f := finding("connect.unusual_port", rule.effect, rule.risk, sprintf("CONNECT to %s on port %s, not in network.allowed_connect_ports", [host_label, port_label]))
}

findings contains f if {
	action_kind == "connect"
	not http_host
	f := finding("connect.no_host", "deny", "high", "CONNECT without a destination host")
}

# --- rate key ------------------------------------------------------------------------

http_rate_subject := http_host if action_kind in {"http", "connect"}
