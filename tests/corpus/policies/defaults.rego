# Defaults: values that hold when nothing else does.
package corpus.defaults

default allow := false

default limit := 10

default mode := "audit"

default settings := {"retries": 3, "verbose": false}

allow if input.user == "root"

limit := input.limit if input.limit > 0

mode := "enforce" if input.strict == true

settings := input.settings if is_object(input.settings)

retries := object.get(settings, "retries", 3)
