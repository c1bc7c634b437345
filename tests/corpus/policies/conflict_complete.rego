# A tiering rule written with overlapping conditions: both can hold (a conflict).
package corpus.conflict_complete

tier := "gold" if input.spend > 1000

tier := "silver" if {
	input.spend > 100
	not input.suspended
}

tier := "bronze" if input.spend <= 100

label := sprintf("%s-customer", [tier])

safe_tier := "gold" if {
	input.spend > 1000
} else := "silver" if {
	input.spend > 100
}
