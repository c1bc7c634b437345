# Risk classification: the first matching branch of an else chain wins.
package corpus.else_chain

decision := "deny" if {
	input.risk >= 90
} else := "review" if {
	input.risk >= 50
} else := "allow" if {
	input.risk >= 0
}

level(score) := "critical" if {
	score > 9
} else := "high" if {
	score > 6
} else := "low"

levels := [level(s) | some s in input.scores]

message := "blocked" if {
	input.country in {"XX", "YY"}
} else := input.custom_message if {
	input.custom_message
} else := "ok"
