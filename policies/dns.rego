# DNS: queries the agent sends, seen by transparent mode's DNS forwarder (kind "dns").
# input.action.dns is {"name", "type"}; input.facts.dns states what the name looks like:
# length, labels, longest_label (characters), longest_label_entropy_centibits (Shannon
# entropy of the longest label's characters, in hundredths of a bit), digits,
# registered_part (the last two labels), subdomain_length and subdomain_entropy_centibits
# (the labels before the registered part, taken together), subdomain_hex_chars.
#
# Denied: a name carrying data (DNS exfiltration: long labels, long names, random-looking
# labels), cloud metadata names, names in dns.blocked_names, query types in
# dns.blocked_types. Everything else is a lookup, allowed. Tunables in data.json (dns).
package clawgate

import rego.v1

dns_settings := object.union(
	{
		"max_label_length": 40,
		"max_name_length": 150,
		"random_label_min_length": 32,
		"random_label_min_centibits": 400,
		"encoded_min_length": 48,
		"hex_min_length": 24,
		"credential_label_pattern": "^$",
		"blocked_names": [],
		"allowed_names": [],
		"blocked_types": ["AXFR", "IXFR"],
	},
	dns_data,
)

dns_data := x if {
	x := data.clawgate.dns
	is_object(x)
} else := {}

dns_fact := f if {
	f := facts.dns
	is_object(f)
} else := {}

dns_name := n if {
	n := dns_fact.name
	is_string(n)
	n != ""
}

dns_type := t if {
	t := input.action.dns.type
	is_string(t)
} else := "?"

# Everything about a DNS query, in one rule (see core in main.rego). Rate limits count per
# registered domain, so many names under one domain share a bucket.
dns_core := {"findings": fs, "rate_subject": sprintf("dns:%s", [subject]), "limits": object.get(dns_settings, "constraints", {})} if {
	subjects := array.concat([r | r := dns_fact.registered_part; is_string(r); r != ""], ["unknown"])
	subject := subjects[0]
	fs := ((((dns_base_findings | dns_data_findings) | dns_split_findings) | dns_name_findings) | dns_no_name_findings) | dns_credential_findings
}

dns_base_findings := {f |
	dns_name
	f := finding("dns.lookup", tier_effect("low"), "low", sprintf("DNS %s lookup of %s", [dns_type, dns_name]))
}

dns_no_name_findings := {f |
	not dns_name
	f := finding("dns.no_name", "deny", "high", "DNS query without a name")
}

# Data encoded into the name.
dns_data_findings := {f |
	dns_fact.longest_label > dns_settings.max_label_length
	f := finding("dns.long_label", "deny", "high", sprintf("%s has a label of %d characters (dns.max_label_length %d): data encoded into a name (DNS exfiltration)", [dns_name, dns_fact.longest_label, dns_settings.max_label_length]))
} | {f |
	dns_fact.length > dns_settings.max_name_length
	f := finding("dns.long_name", "deny", "high", sprintf("%s is %d characters long (dns.max_name_length %d): data encoded into a name (DNS exfiltration)", [dns_name, dns_fact.length, dns_settings.max_name_length]))
} | {f |
	dns_fact.longest_label >= dns_settings.random_label_min_length
	dns_fact.longest_label_entropy_centibits >= dns_settings.random_label_min_centibits
	f := finding("dns.random_label", "deny", "high", sprintf("%s has a random-looking label of %d characters (%.2f bits per character): encoded data (DNS exfiltration)", [dns_name, dns_fact.longest_label, dns_fact.longest_label_entropy_centibits / 100]))
}

# The same data split over several shorter labels, or hex-encoded (hex stays under 4 bits per
# character however random it is, so entropy alone does not see it).
dns_split_findings := {f |
	dns_fact.subdomain_length >= dns_settings.encoded_min_length
	dns_fact.subdomain_entropy_centibits >= dns_settings.random_label_min_centibits
	f := finding("dns.encoded_name", "deny", "high", sprintf("%s carries %d random-looking characters before %s (%.2f bits per character; dns.encoded_min_length %d): data encoded into a name (DNS exfiltration)", [dns_name, dns_fact.subdomain_length, dns_fact.registered_part, dns_fact.subdomain_entropy_centibits / 100, dns_settings.encoded_min_length]))
} | {f |
	dns_fact.subdomain_hex_chars >= dns_settings.hex_min_length
	f := finding("dns.hex_data", "deny", "high", sprintf("%s carries %d hexadecimal characters in its labels (dns.hex_min_length %d): hex-encoded data (DNS exfiltration)", [dns_name, dns_fact.subdomain_hex_chars, dns_settings.hex_min_length]))
}

# A label shaped like a known credential (an AWS key id, a Slack or GitHub token,
# lower-cased as DNS does): the credential leaves in the query itself.
dns_credential_findings := {f |
	some label in split(dns_name, ".")
	regex.match(dns_settings.credential_label_pattern, label)
	f := finding("dns.credential_label", "deny", "high", sprintf("%s has a label shaped like a credential (%s; dns.credential_label_pattern): the credential leaves in the query (DNS exfiltration)", [dns_name, label]))
}

dns_name_findings := {f |
	dns_name in network_data.metadata_hosts
	f := finding("dns.cloud_metadata", "deny", "critical", sprintf("%s is a cloud metadata name (instance credentials)", [dns_name]))
} | {f |
	host_listed(dns_settings.blocked_names, dns_name)
	f := finding("dns.blocked_name", "deny", "high", sprintf("%s is in dns.blocked_names", [dns_name]))
} | {f |
	count(dns_settings.allowed_names) > 0
	not host_listed(dns_settings.allowed_names, dns_name)
	f := finding("dns.not_allowed", "deny", "high", sprintf("%s is not in dns.allowed_names (the only names this deployment resolves)", [dns_name]))
} | {f |
	upper(dns_type) in dns_settings.blocked_types
	f := finding("dns.blocked_type", "deny", "high", sprintf("DNS %s queries are in dns.blocked_types", [dns_type]))
}
