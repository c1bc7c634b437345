# Admission: every container must come from the trusted registry and be limited.
package corpus.every_rule

trusted := ["registry.example.com/", "mirror.example.org/"]

default allow := false

allow if {
	count(input.containers) > 0
	every c in input.containers {
		some prefix in trusted
		startswith(c.image, prefix)
		c.limits.memory_mb <= 4096
	}
}

all_labelled if {
	every key, value in input.labels {
		is_string(value)
		key != ""
	}
}

none_privileged if {
	every c in input.containers {
		not c.privileged
	}
}
