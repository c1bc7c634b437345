# Discount functions whose clauses overlap for some customers (a function conflict).
package corpus.conflict_function

discount(c) := 0.1 if c.member == true

discount(c) := 0.25 if c.vip == true

discount(c) := 0 if {
	not c.member
	not c.vip
}

price := input.base * (1 - discount(input.customer))

limits[k] := 10 if some k in input.small

limits[k] := 100 if some k in input.large
