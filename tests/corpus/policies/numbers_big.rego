# Counters and sizes that do not fit in 64 bits, and floats at their limits.
package corpus.numbers_big

n := input.n

m := input.m

facts := {
	"gt_2_64": n > 18446744073709551616,
	"eq_2_64_plus_1": n == 18446744073709551617,
	"sum": n + m,
	"diff": n - m,
	"product": n * m,
	"neg": 0 - n,
	"sorted": sort([n, m, 0, -1, 0.5]),
	"max": max([n, m]),
	"min": min([n, m]),
}

floor_n := floor(n)

is_int if n == round(n)

big_enough if n >= 9223372036854775808

ratio := n / m

same if n == m
