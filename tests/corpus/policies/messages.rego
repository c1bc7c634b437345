# Human-readable denial messages, built with sprintf and concat.
package corpus.messages

deny contains msg if {
	some action in input.actions
	not action in {"read", "list"}
	msg := sprintf("user %q may not %s on %s", [input.user, action, input.resource])
}

deny contains msg if {
	input.size > 100
	msg := sprintf("size %d exceeds %d (%.2f%%)", [input.size, 100, (input.size * 100) / 100])
}

summary := concat("; ", sort([m | some m in deny]))

header := concat("", ["[", input.user, "] ", summary])

value_text := sprintf("%v", [input.value])
