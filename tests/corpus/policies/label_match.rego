# Resource labels must follow the naming scheme; owners must be e-mail addresses.
package corpus.label_match

allowed_env := `^(prod|staging|dev)(-[a-z0-9]+)?$`

violations contains sprintf("bad env label %q", [env]) if {
	env := input.labels.env
	not regex.match(allowed_env, env)
}

violations contains "missing owner" if not input.labels.owner

violations contains "owner is not an e-mail address" if {
	owner := input.labels.owner
	not regex.match(`^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$`, owner)
}

allow if count(violations) == 0

cost_centre := regex.find_n(`CC-[0-9]{4}`, input.labels.billing, 1)[0]
