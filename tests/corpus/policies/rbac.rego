# Role-based access: users hold roles, roles grant actions on resource types.
package corpus.rbac

role_grants := {
	"admin": [{"action": "*", "type": "*"}],
	"editor": [{"action": "read", "type": "doc"}, {"action": "write", "type": "doc"}],
	"viewer": [{"action": "read", "type": "doc"}, {"action": "read", "type": "report"}],
	"auditor": [{"action": "read", "type": "*"}],
}

default allow := false

allow if {
	some grant in grants
	matches(grant.action, input.action)
	matches(grant.type, input.resource.type)
}

grants contains grant if {
	some role in input.user.roles
	some grant in role_grants[role]
}

matches("*", _)

matches(pattern, value) if pattern == value

reasons contains sprintf("role %v grants %v", [role, input.action]) if {
	some role in input.user.roles
	some grant in role_grants[role]
	matches(grant.action, input.action)
}
