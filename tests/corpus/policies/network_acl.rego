# Source-address allow lists with CIDR checks.
package corpus.network_acl

internal := ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"]

blocked := ["10.66.0.0/16"]

default allow := false

allow if {
	some cidr in internal
	net.cidr_contains(cidr, input.source_ip)
	not blocked_source
}

blocked_source if {
	some cidr in blocked
	net.cidr_contains(cidr, input.source_ip)
}

overlaps_internal if {
	some cidr in internal
	net.cidr_intersects(cidr, input.subnet)
}

subnet_valid if net.cidr_is_valid(input.subnet)
