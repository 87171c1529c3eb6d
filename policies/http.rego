# Network: HTTP requests seen by the egress proxy or the transparent listener (kind
# "http"), CONNECT tunnels and redirected connections (kind "connect"), and every URL of a call (input.facts.urls: tool URL
# parameters, MCP URL arguments, URLs and host arguments of shell commands).
# URLs are parsed by the facts stage with WHATWG semantics: lower-case host
# without a trailing dot, IPv4 in any form (2852039166, 0xa9fea9fe, 127.1,
# 0177.0.0.1) as the dotted quad in `ips`, the IPv4 inside an IPv6 address
# extracted, userinfo dropped, the default port filled in.
#
# Always denied: the cloud metadata service (metadata_hosts / metadata_cidrs),
# and clawgate's own admin listener on a loopback address (an agent must not
# answer its own approvals).
# Denied where the destination cannot be a legitimate public service: any IP in
# network.blocked_cidrs (private, loopback, link-local, CGNAT, IPv4-mapped IPv6,
# ...) unless listed in network.allowed_cidrs, and loopback host names. For tool
# URLs this applies only to tools whose catalog entry sets block_private_urls:
# true (web_fetch), or "except_loopback" (browser, canvas: a local dev server on a
# loopback address opens; the private network and internal host names do not).
# Always denied too: a loopback port of a local control plane
# (network.local_control_ports: the OpenClaw gateway, a browser's DevTools port,
# the Docker API, the kubelet, ...), whatever the tool.
#
# Methods: GET/HEAD/OPTIONS are reads. Anything else is a mutation: to a host in
# http.production_hosts (or with a label in http.production_labels) it needs
# approval everywhere; in a production environment it needs approval unless the
# host is in http.trusted_hosts (the model and search APIs the agent must reach).
#
# Host patterns are globs with "." as separator: "*" matches one label, "**" any
# number of labels. Exact names are matched without a glob.
package clawgate

import rego.v1

# --- helpers -------------------------------------------------------------------

# IPv4 or IPv6 literal? (cidr_is_valid parses both; "/32" is a valid v4 and v6 prefix.)
is_ip(s) if {
	is_string(s)
	net.cidr_is_valid(concat("", [s, "/32"]))
}

normalize_host(h) := trim_suffix(lower(trim(h, "[]")), ".") if is_string(h)

# A host in a list of exact names or globs.
host_listed(patterns, host) if host in patterns

host_listed(patterns, host) if {
	some p in patterns
	contains(p, "*")
	glob.match(p, ["."], host)
}

network_data := x if {
	x := data.clawgate.network
} else := {}

is_metadata_ip(ip) if {
	some c in network_data.metadata_cidrs
	net.cidr_contains(c, ip)
}

is_blocked_ip(ip) if {
	some c in network_data.blocked_cidrs
	net.cidr_contains(c, ip)
	not is_allowed_ip(ip)
}

is_allowed_ip(ip) if {
	some c in object.get(network_data, "allowed_cidrs", [])
	net.cidr_contains(c, ip)
}

loopback_host(host) if host_listed(object.get(network_data, "local_hostnames", ["localhost"]), host)

loopback_host(host) if strings.any_suffix_match(host, object.get(network_data, "local_suffixes", []))

# A name only a private network resolves: a single label (http://redis/, resolved
# through the search domains) or an internal suffix (kubernetes.default.svc,
# *.cluster.local, *.internal); network.allowed_internal_hosts lets some through.
internal_host(host) if {
	not is_ip(host)
	not contains(host, ".")
	not host_listed(object.get(network_data, "allowed_internal_hosts", []), host)
}

internal_host(host) if {
	strings.any_suffix_match(host, object.get(network_data, "internal_suffixes", []))
	not host_listed(object.get(network_data, "allowed_internal_hosts", []), host)
}

# --- URLs of the call -------------------------------------------------------------

# Findings for the URLs of a call: tool and MCP URL parameters get the metadata
# rules, and the private address rules when `block_private` (the tool's catalog
# entry says so); URLs in shell commands are judged by exec.rego
# (exec.cloud_metadata); all get the admin listener rule.
url_findings(block_private, where) := set() if {
	count(object.get(facts, "urls", [])) == 0
	not facts.unparsed_urls
} else := {finding("net.unparsed_url", "deny", "high", sprintf("%s: the URL in %s does not parse as a WHATWG URL, so its destination cannot be judged", [where, src])) |
	some src in object.get(facts, "unparsed_urls", [])
} | {f |
	some u in object.get(facts, "urls", [])
	startswith(u.source, "params.")
	some f in destination_findings({"host": u.host, "ips": {ip | some ip in array.concat(u.ips, object.get(u, "name_ips", []))}, "block_private": block_private, "where": where})
} | (sidecar_url_findings | local_control_findings) | (credential_url_findings | credential_host_findings) | {exec_rule_finding("net.local_file_url", u.raw) |
	some u in object.get(facts, "urls", [])
	startswith(u.source, "params.")
	u.scheme == "file"
} | {exec_rule_finding("net.url_scheme", u.raw) |
	some u in object.get(facts, "urls", [])
	startswith(u.source, "params.")
	u.scheme != "file"
	not u.scheme in object.get(network_data, "url_schemes", ["http", "https"])
}

# A credential in a URL leaves with the request: to the host, its logs and whatever the
# page links to. Which token shapes count is data (network.url_credential_shapes); a
# secret-named query parameter alone (query_secret) is not one by default (signed
# download links carry `sig=`). A credential going to its own issuer is how some APIs
# take it (Google's `?key=AIza…`, S3 presigned URLs' `X-Amz-Credential=AKIA…`):
# network.url_credential_homes names those hosts per shape.
credential_url_findings := {finding("net.credential_in_url", "deny", "high", sprintf("the URL to %s carries a credential (%s): it would leave with the request", [u.host, concat(", ", shapes)])) |
	some u in object.get(facts, "urls", [])
	homes := object.get(network_data, "url_credential_homes", {})
	shapes := [s |
		some s in object.get(u, "credentials", [])
		s in object.get(network_data, "url_credential_shapes", [])
		not host_listed(object.get(homes, s, []), u.host)
	]
	count(shapes) > 0
}

# A host name with a label shaped like a credential (dns.credential_label_pattern, the
# DNS rule's pattern: akiaiosfodnn7example.evil.example): the name is resolved and
# logged by every resolver on the way before any request is sent.
credential_host_findings := {finding("net.credential_in_host", "deny", "high", sprintf("the host %s has a label shaped like a credential (%s; dns.credential_label_pattern): it leaves in the name lookup", [u.host, label])) |
	some u in object.get(facts, "urls", [])
	u.host_kind == "domain"
	some label in split(u.host, ".")
	count(label) >= 20
	regex.match(dns_settings.credential_label_pattern, label)
}

# The same for a request header that is not one of the ones an API takes its key in
# (network.credential_headers: Authorization, X-Api-Key, Cookie, ...): a token in
# `X-Data` to an arbitrary host is a token leaving.
header_credential_findings := {finding("net.credential_in_header", "deny", "high", sprintf("the %s header to %s carries a credential (%s): it would leave with the request", [name, host, concat(", ", shapes)])) |
	some name, found in object.get(facts, "header_credentials", {})
	host := normalize_host(input.action.http.host)
	shapes := [s |
		some s in found
		leaves_in_header(name, s, host)
	]
	count(shapes) > 0
}

# In a header APIs take keys in (Authorization, Cookie, ...), a key is normal, but a key
# whose issuer is known (network.url_credential_homes) goes to that issuer only: a GitHub
# token in `Authorization` to an arbitrary host is that token leaving.
leaves_in_header(name, shape, host) if {
	not name in object.get(network_data, "credential_headers", [])
	shape in object.get(network_data, "url_credential_shapes", [])
	not host_listed(object.get(object.get(network_data, "url_credential_homes", {}), shape, []), host)
}

leaves_in_header(name, shape, host) if {
	name in object.get(network_data, "credential_headers", [])
	homes := object.get(network_data, "url_credential_homes", {})
	shape in object.keys(homes)
	not host_listed(homes[shape], host)
}

# A credential in a JSON request body to a host that is not its issuer.
body_credential_findings := {finding("net.credential_in_body", "deny", "high", sprintf("the request body to %s carries a credential (%s): it would leave with the request", [host, concat(", ", shapes)])) |
	found := object.get(facts, "body_credentials", [])
	count(found) > 0
	host := normalize_host(input.action.http.host)
	homes := object.get(network_data, "url_credential_homes", {})
	shapes := [s |
		some s in found
		s in object.get(network_data, "url_credential_shapes", [])
		not host_listed(object.get(homes, s, []), host)
	]
	count(shapes) > 0
}

# clawgate's admin listener, reached by any URL of the call on a loopback address.
sidecar_url_findings := {finding("net.sidecar_admin", "deny", "critical", sprintf("%s reaches clawgate's own admin listener (port %d); an agent must not answer its own approvals", [u.raw, u.port])) |
	some u in object.get(facts, "urls", [])
	u.port in facts.sidecar.ports
	local_destination(u)
}

local_destination(u) if loopback_host(u.host)

local_destination(u) if {
	some ip in array.concat(u.ips, object.get(u, "name_ips", []))
	loopback_ip(ip)
}

loopback_ip(ip) if {
	some c in ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"]
	net.cidr_contains(c, ip)
}

# A loopback port where something that controls the host or the agent listens: the
# OpenClaw gateway answers tool invocations and changes its own exec approvals, a
# DevTools port hands over the browser's cookies and runs script in its pages, the
# Docker API is root on the host. Denied for every tool, dev-server allowance or not.
local_control_findings := {finding("net.local_control", "deny", "critical", sprintf("%s reaches %s on a loopback port (network.local_control_ports)", [u.raw, what])) |
	some u in object.get(facts, "urls", [])
	what := local_control_port(u.port)
	local_destination(u)
}

local_control_port(port) := network_data.local_control_ports[sprintf("%d", [port])]

local_control_port(port) := r.what if {
	not network_data.local_control_ports[sprintf("%d", [port])]
	some r in object.get(network_data, "local_control_port_ranges", [])
	port >= r.from
	port <= r.to
}

# --- metadata and private address rules --------------------------------------------

destination_findings(d) := (host_fs | ip_fs) | local_fs if {
	host_fs := {f |
		d.host in network_data.metadata_hosts
		f := finding("net.cloud_metadata", "deny", "critical", sprintf("%s %s is a cloud metadata endpoint (instance credentials)", [d.where, d.host]))
	}
	ips := {ip | some ip in ({d.host} | d.ips); is_ip(ip)}
	ip_fs := {f | count(ips) > 0; some f in ip_findings(d, ips)}
	local_fs := {f |
		d.block_private == true
		loopback_host(d.host)
		f := finding("net.private_address", "deny", "high", sprintf("%s %s is a loopback host name", [d.where, d.host]))
	} | {f |
		d.block_private in {true, "except_loopback"}
		# By name only where no address is known (tool URLs); the egress proxy and the
		# transparent listener judge the addresses they resolved.
		count(d.ips) == 0
		not loopback_host(d.host)
		internal_host(d.host)
		not dev_name_allowed(d)
		f := finding("net.private_address", "deny", "high", sprintf("%s %s is an internal host name (a single label, or a suffix in network.internal_suffixes); add it to network.allowed_internal_hosts if this service is meant to be reachable", [d.where, d.host]))
	}
}

# A dev server's name (myapp.local, api.test: network.dev_suffixes, names a hosts
# file points at this machine) where the tool may open a loopback address.
dev_name_allowed(d) if {
	d.block_private == "except_loopback"
	dev := object.get(network_data, "dev_suffixes", [])
	strings.any_suffix_match(d.host, dev)
	not strings.any_suffix_match(d.host, [s | some s in network_data.internal_suffixes; not s in dev])
}

# A dev server: a loopback address where the tool may open one.
loopback_allowed(d, ip) if {
	d.block_private == "except_loopback"
	loopback_ip(ip)
}

ip_findings(d, ips) := {f |
	some ip in ips
	is_metadata_ip(ip)
	f := finding("net.cloud_metadata", "deny", "critical", sprintf("%s %s resolves to the cloud metadata address %s", [d.where, d.host, ip]))
} | {f |
	d.block_private in {true, "except_loopback"}
	some ip in ips
	is_blocked_ip(ip)
	not loopback_allowed(d, ip)
	f := finding("net.private_address", "deny", "high", sprintf("%s %s reaches the private or reserved address %s; add the range to network.allowed_cidrs if this service is meant to be reachable", [d.where, d.host, ip]))
}

# --- kind http: methods and hosts -----------------------------------------------

# The request's URL as the facts stage parsed it.
http_url := u if {
	some u in object.get(facts, "urls", [])
	u.source == "action.http"
}

# Transparent interception (dest.host_from present): the name the client gave (TLS SNI or
# the Host field) is a claim; when clawgate's resolver does not map it to the address the
# client dialled (dest.host_resolves false), the connection is judged as that address, so a
# claimed trusted name earns nothing.
claim_unverified if input.action.dest.host_resolves == false

unverified_host_findings := {f |
	claim_unverified
	ip := input.action.dest.ips[0]
	f := finding("net.unverified_host", tier_effect("low"), "low", sprintf("the client named %s (%s) but dialled %s, which that name does not resolve to; judged as the address", [input.action.dest.host, object.get(input.action.dest, "host_from", "?"), ip]))
}

# The host: an unverified claim's dialled address, else the parsed URL's, else http.host (the egress proxy sets it to the destination it
# connects to), else the host connected to.
http_host := ip if {
	claim_unverified
	ip := input.action.dest.ips[0]
} else := h if {
	input.action.kind == "http"
	h := http_url.host
} else := normalize_host(input.action.http.host) if {
	input.action.kind == "http"
	is_string(input.action.http.host)
} else := normalize_host(input.action.dest.host) if {
	input.action.kind in {"http", "connect"}
	is_string(input.action.dest.host)
}

host_label := x if {
	x := http_host
} else := "(no host)"

http_method := upper(m) if {
	m := input.action.http.method
	is_string(m)
} else := "(no method)"

http_mutating if not http_method in data.clawgate.http.safe_methods

http_label := sprintf("%s %s", [http_method, host_label])

http_trusted if host_listed(data.clawgate.http.trusted_hosts, http_host)

http_production_host if production_host(object.union_n([x | x := data.clawgate.http; is_object(x)]), http_host)

production_host(hc, host) if host_listed(object.get(hc, "production_hosts", []), host)

production_host(hc, host) if {
	labels := split(host, ".")
	some i, l in labels
	i < count(labels) - 1
	l in object.get(hc, "production_labels", [])
}

# Everything about an HTTP request, in one rule (see core in main.rego).
http_core := {"findings": fs, "rate_subject": subjects[0], "limits": {}} if {
	a := input.action
	hosts := [h | h := http_host; is_string(h)]
	labels := array.concat(hosts, ["(no host)"])
	label_host := labels[0]
	subjects := array.concat(hosts, ["unknown"])

	# The destination: the host and the addresses the proxy resolved, and dest.host
	# when it differs from the request's host.
	targets := {d |
		h := normalize_host(a.dest.host)
		h != label_host
		d := {"host": h, "ips": set(), "block_private": true, "where": "http connect target"}
	}
	url_ips := {ip | some ip in http_url.ips}
	dests := {{"host": label_host, "ips": {ip | some ip in a.dest.ips; is_string(ip)} | url_ips, "block_private": true, "where": "http destination"}} | targets
	dest_fs := {f | some d in dests; some f in destination_findings(d)}

	# Methods: reads, trusted API hosts, mutations, production hosts.
	hc := object.union_n([x | x := data.clawgate.http; is_object(x)])
	methods := array.concat(array.concat(method_overrides(hc), [upper(m) | m := a.http.method; is_string(m)]), ["(no method)"])
	method := methods[0]
	mutating := count([1 | method in hc.safe_methods]) == 0
	label := sprintf("%s %s", [method, label_host])
	method_fs := http_method_finding(mutating, hc, hosts, label)
	production_fs := {f |
		mutating
		production_host(hc, hosts[0])
		rule := hc.production_host_rule
		f := finding("http.production_host", rule.effect, rule.risk, sprintf("%s changes state on a production host (http.production_hosts)", [label]))
	}
	no_host_fs := {f | count(hosts) == 0; f := finding("http.no_host", "deny", "high", "HTTP request without a host")}
	fs := (((((((dest_fs | method_fs) | production_fs) | no_host_fs) | sidecar_url_findings) | (credential_url_findings | credential_host_findings)) | header_credential_findings) | body_credential_findings) | unverified_host_findings
}

# The method a server acts on when the request asks for another: frameworks honour
# X-HTTP-Method-Override and its kin (http.method_override_headers) and Rails' or
# Laravel's `_method` query parameter (http.method_override_params), so a GET
# carrying `DELETE` there is judged as a DELETE.
method_overrides(hc) := array.concat([upper(v) |
	some name, v in object.get(input.action.http, "headers", {})
	lower(name) in object.get(hc, "method_override_headers", [])
	is_string(v)
	v != ""
], [upper(m[2]) |
	some p in object.get(hc, "method_override_params", [])
	some m in regex.find_all_string_submatch_n(sprintf(`(^|&)%s=([A-Za-z]+)`, [p]), object.get(input.action.http, "query", ""), -1)
])

http_method_finding(mutating, hc, hosts, label) := {finding("http.read", tier_effect("low"), "low", sprintf("%s is a read", [label]))} if {
	mutating == false
} else := {finding("http.trusted_host", "allow", "low", sprintf("%s goes to a trusted API host (http.trusted_hosts)", [label]))} if {
	host_listed(object.get(hc, "trusted_hosts", []), hosts[0])
} else := {finding("http.mutation", tier_mutation_effect(risk), risk, sprintf("%s changes remote state", [label]))} if {
	risks := array.concat([r | r := hc.mutation_risk; is_string(r)], ["medium"])
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
connect_core := {"findings": fs, "rate_subject": subjects[0], "limits": object.get(network_data, "connect_constraints", {})} if {
	a := input.action
	hosts := [h | h := http_host; is_string(h)]
	labels := array.concat(hosts, ["(no host)"])
	label_host := labels[0]
	subjects := array.concat(hosts, ["unknown"])
	url_ips := {ip | some u in object.get(facts, "urls", []); u.source == "action.dest"; some ip in u.ips}
	dest_fs := destination_findings({"host": label_host, "ips": {ip | some ip in a.dest.ips; is_string(ip)} | url_ips, "block_private": true, "where": "connect destination"})
	fs := ((((dest_fs | connect_base_findings) | connect_port_findings) | connect_no_host_findings) | sidecar_url_findings) | unverified_host_findings
}

connect_base_findings := {f |
	http_host
	f := finding("connect.base", tier_effect("low"), "low", sprintf("CONNECT tunnel to %s:%s; contents are opaque unless TLS inspection turns them into http actions", [http_host, port_label]))
}

connect_port_findings := {f |
	connect_port
	not connect_port in network_data.allowed_connect_ports
	rule := network_data.unusual_port_rule
	f := finding("connect.unusual_port", rule.effect, rule.risk, sprintf("CONNECT to %s on port %s, not in network.allowed_connect_ports", [host_label, port_label]))
}

connect_no_host_findings := {f |
	not http_host
	f := finding("connect.no_host", "deny", "high", "CONNECT without a destination host")
}
