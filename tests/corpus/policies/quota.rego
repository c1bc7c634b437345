# Quota arithmetic: floats and integers beyond 64 bits.
package corpus.quota

default allow := false

allow if {
	input.used + input.requested <= input.limit
	input.requested > 0
}

usage_ratio := input.used / input.limit

remaining := input.limit - input.used

percent := round((input.used * 100) / input.limit)

headroom := {
	"floor": floor(remaining),
	"ceil": ceil(remaining),
	"abs": abs(remaining),
	"double": remaining * 2,
	"rem": input.used % 7,
}

over_by := max([0, (input.used + input.requested) - input.limit])
