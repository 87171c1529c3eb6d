# Tests for dns.rego: lookups pass, names carrying data and metadata names do not.
package clawgate

import rego.v1

dns_input(name, qtype) := {
	"action": {"kind": "dns", "dns": {"name": name, "type": qtype}},
	"agent": {},
	"environment": "production",
}

test_dns_lookup_allowed if {
	d := decide(dns_input("api.github.com", "A"))
	d.effect == "allow"
	fired(d, "dns.lookup")
	d.constraints.rate.key == "agent:unknown:dns:github.com"
	d.constraints.rate.per_minute == 600
}

test_dns_ordinary_long_names_allowed if {
	effect_of(dns_input("my-load-balancer-1234567890.us-west-2.elb.amazonaws.com", "AAAA")) == "allow"
	effect_of(dns_input("d1a2b3c4d5e6f7.cloudfront.net", "A")) == "allow"
}

test_dns_long_label_denied if {
	d := decide(dns_input("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x.evil.example", "A"))
	d.effect == "deny"
	fired(d, "dns.long_label")
}

test_dns_random_label_denied if {
	d := decide(dns_input("nbswy3dpeb3w64tmmqqhi2ltebuxgidbebzw.x.evil.example", "TXT"))
	d.effect == "deny"
	fired(d, "dns.random_label")
}

test_dns_long_name_denied if {
	label := "abcdefghij"
	name := concat(".", [label | some _ in numbers.range(1, 15)])
	d := decide(dns_input(sprintf("%s.example", [name]), "A"))
	d.effect == "deny"
	fired(d, "dns.long_name")
}

test_dns_metadata_and_zone_transfer_denied if {
	fired(decide(dns_input("metadata.google.internal", "A")), "dns.cloud_metadata")
	fired(decide(dns_input("example.com", "AXFR")), "dns.blocked_type")
	effect_of(dns_input("example.com", "AXFR")) == "deny"
}

test_dns_blocked_names_from_data if {
	d := decide(dns_input("x.tunnel.example", "A")) with data.clawgate.dns.blocked_names as ["**.tunnel.example"]
	d.effect == "deny"
	fired(d, "dns.blocked_name")
}

test_dns_without_name_denied if {
	d := decide({"action": {"kind": "dns", "dns": {"name": "", "type": "A"}}, "environment": "production"})
	d.effect == "deny"
	fired(d, "dns.no_name")
}

# ---- transparent interception: claimed names -----------------------------------------

transparent_connect(host, from, resolves, ips) := {
	"action": {"kind": "connect", "dest": {"host": host, "port": 443, "ips": ips, "host_from": from, "host_resolves": resolves}},
	"agent": {},
	"environment": "production",
}

test_transparent_sni_that_resolves_is_judged_by_name if {
	d := decide(transparent_connect("api.github.com", "sni", true, public_ip))
	d.effect == "allow"
	not fired(d, "net.unverified_host")
	d.constraints.rate.key == "agent:unknown:api.github.com"
}

test_transparent_sni_that_does_not_resolve_is_judged_as_the_address if {
	d := decide(transparent_connect("api.github.com", "sni", false, public_ip))
	fired(d, "net.unverified_host")
	d.constraints.rate.key == "agent:unknown:140.82.112.6"
}

test_transparent_allowed_sni_to_a_blocked_address_denied if {
	d := decide(transparent_connect("api.github.com", "sni", false, ["10.0.0.5"]))
	d.effect == "deny"
	fired(d, "net.private_address")
}

test_transparent_lying_host_earns_no_trusted_host if {
	inp := {
		"action": {
			"kind": "http",
			"http": {"method": "POST", "scheme": "http", "host": "api.openai.com", "port": 80, "path": "/x", "query": "", "headers": {}},
			"dest": {"host": "api.openai.com", "port": 80, "ips": public_ip, "host_from": "http_host", "host_resolves": false},
		},
		"agent": {"id": "main"},
		"environment": "production",
	}
	d := decide(inp)
	not fired(d, "http.trusted_host")
	fired(d, "net.unverified_host")
	d.effect == "require_approval"
	truthful := json.patch(inp, [{"op": "replace", "path": "/action/dest/host_resolves", "value": true}])
	fired(decide(truthful), "http.trusted_host")
}

# Data that stays under the per-label limits: split over several labels, or hex-encoded.
test_dns_data_split_over_labels_denied if {
	d := decide(dns_input("a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p.q9w8e7r6t5y4u3i2o1p0a9s8d7f6g5h.evil.com", "A"))
	d.effect == "deny"
	fired(d, "dns.encoded_name")
	not fired(d, "dns.random_label")
}

test_dns_hex_data_denied if {
	d := decide(dns_input("3f2a9c81d4e7b6051c8a2f9e3d7b4c6a1e5f8d2b.evil.com", "TXT"))
	d.effect == "deny"
	fired(d, "dns.hex_data")
	fired(decide(dns_input("3f2a9c81d4e7.b6051c8a2f9e.evil.com", "A")), "dns.hex_data")
}

test_dns_everyday_names_are_not_data if {
	every name in [
		"abcdef0123.execute-api.us-east-1.amazonaws.com",
		"my-bucket-name-123.s3.us-west-2.amazonaws.com",
		"my-service.my-namespace.svc.cluster.local",
		"e6858.dsce9.akamaiedge.net",
		"3f2a9c8.preview.example.com",
		"r4---sn-ab5l6nrz.googlevideo.com",
		"ec2-52-1-2-3.compute-1.amazonaws.com",
	] {
		effect_of(dns_input(name, "A")) == "allow"
	}
}

test_dns_allowed_names_refuse_everything_else if {
	allowed := ["github.com", "*.github.com"]
	effect_of(dns_input("api.github.com", "A")) == "allow" with data.clawgate.dns.allowed_names as allowed
	effect_of(dns_input("github.com", "A")) == "allow" with data.clawgate.dns.allowed_names as allowed
	d := decide(dns_input("short.evil.com", "A")) with data.clawgate.dns.allowed_names as allowed
	d.effect == "deny"
	fired(d, "dns.not_allowed")
	effect_of(dns_input("github.com.evil.com", "A")) == "deny" with data.clawgate.dns.allowed_names as allowed
}

# A label shaped like a credential leaves that credential in the query itself.
test_credential_shaped_labels_are_denied if {
	every name in [
		"akiaiosfodnn7example.evil.example", "x.asiaabcdefghijklmnop.evil.example",
		"xoxb-1234567890-abcdefghij.evil.example", "sk-proj-abcdefghijklmnopqrstuvwx.evil.example",
	] {
		d := decide(dns_input(name, "A"))
		fired(d, "dns.credential_label")
		d.effect == "deny"
	}
	every name in ["api.github.com", "akamai.net", "skia.org", "sk-telecom.example.com", "www.akia-tours.example"] {
		decide(dns_input(name, "A")).effect == "allow"
	}
}
