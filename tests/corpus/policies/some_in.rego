# Group membership and label lookups with some ... in and membership tests.
package corpus.some_in

admin if "admins" in input.groups

admin if {
	some g in input.groups
	endswith(g, "-owners")
}

label_keys contains key if {
	some key, _ in input.labels
}

prod_hosts contains host if {
	some i, host in input.hosts
	i < 3
	host.env == "prod"
}

first_match := host.name if {
	some host in input.hosts
	host.env == input.wanted
}

has_pair if {
	some k, v in input.labels
	k == v
}
