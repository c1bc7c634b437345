# Inventory reports built with array, set and object comprehensions.
package corpus.comprehensions

names := [item.name | some item in input.items]

teams := {item.team | some item in input.items}

by_team := {team: members |
	some team in teams
	members := sort([item.name | some item in input.items; item.team == team])
}

totals := {team: total |
	some team in teams
	total := sum([item.cost | some item in input.items; item.team == team])
}

expensive := {item.name | some item in input.items; item.cost > 1000}

index := {i: item.name | some i, item in input.items}
