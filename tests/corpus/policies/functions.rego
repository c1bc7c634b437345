# Cost estimation with small helper functions (no recursion).
package corpus.functions

unit_price("small") := 1.5

unit_price("medium") := 3

unit_price("large") := 7.25

cost(item) := unit_price(item.size) * item.hours

is_prod(ns) if startswith(ns, "prod-")

is_prod(ns) if ns == "production"

discount(total) := total * 0.9 if total > 100

discount(total) := total if total <= 100

total := discount(sum([cost(item) | some item in input.items]))

flagged contains item.id if {
	some item in input.items
	is_prod(item.namespace)
	cost(item) > 50
}

clamp(x, lo, hi) := min([max([x, lo]), hi])

clamped := [clamp(x, 0, 10) | some x in input.values]
