# What-if checks: the same rules evaluated with overridden input and data.
package corpus.with_override

config := {"max_replicas": 5, "blocked": ["legacy"]}

default allow := false

allow if {
	input.replicas <= config.max_replicas
	not input.name in config.blocked
}

allow_as_admin := v if {
	v := allow with input.replicas as 1
}

allow_with_more := v if {
	v := allow with data.corpus.with_override.config as {"max_replicas": 50, "blocked": []}
}

would_differ if allow != allow_as_admin

scaled := [v | some n in [1, 5, 6, input.replicas]; v := allow with input.replicas as n]

prefixed := concat("", ["x-", input.name])

upper_name := v if {
	v := shout with input.name as prefixed
}

shout := upper(input.name)
