# Statelock authorization policy: contract v1 (docs/policy-contract.md).
#
# Query: data.statelock.authz.decision. It is always an object:
#   {"allow": bool, "status": int, "reasons": [string], "lock_ids": [string],
#    "overrides": [string]}
# status is 200 when allowed, 409 when a lock blocks the action, and 403 for a
# role problem or for a request this policy does not recognise.
#
# Static data is in data.statelock (policies/data.json):
#   lock_kinds[kind]        {action_kinds, actions, exempt_actions}: what a lock blocks
#   authority_roles         ordered; a lock's authority is the first one its owner holds
#   authorities[authority]  {unlock: [role], bypass: [role]}; the pseudo-role "owner"
#                           means a member of the lock owner's project
#   lock_roles              roles that may lock any instance
#   member_roles            roles that make a subject a member of its own project
#   override_roles          roles that may remove any lock
#   admin_role              optional: the role a subject with is_admin holds (default "admin")
#
# Subjects (contract v1, extended for Keystone): user_id, project_id, roles, and
# optionally domain_id, is_admin (Nova's context_is_admin) and system_scope ("all"
# for a system-scoped token, whose project_id is "" so it is no project's member).
#
# Performance notes. Each request is dispatched once on action.kind (an else
# chain, so later branches are not evaluated), a state change with no locks is
# answered before any per-lock work, and per-lock work is done only for the
# locks that block the action.
#
# Messages are built with concat, which OPA compiles into the Wasm module the
# embedded engine runs; sprintf is left to the host (a call back into Python,
# tens of microseconds), which a deny with several locks would pay per lock.
package statelock.authz

# --- the decision ---------------------------------------------------------------

# Anything not recognised below: an unknown action kind or a malformed input.
default decision := {
	"allow": false,
	"status": 403,
	"reasons": ["no policy rule allows this request"],
	"lock_ids": [],
	"overrides": [],
}

decision := allowed([], []) if {
	input.action.kind == "read"
} else := guard_decision if {
	guarded_kinds[input.action.kind]
	request_ok
} else := lock_decision if {
	input.action.kind == "lock"
	request_ok
} else := unlock_decision if {
	input.action.kind == "unlock"
	request_ok
	every lk in input.locks {
		lock_ok(lk)
	}
}

# The action kinds a lock kind can block.
guarded_kinds := {"state_change", "delete", "create"}

allowed(overrides, reasons) := {
	"allow": true,
	"status": 200,
	"reasons": reasons,
	"lock_ids": [],
	"overrides": overrides,
}

denied(status, reasons, lock_ids) := {
	"allow": false,
	"status": status,
	"reasons": reasons,
	"lock_ids": lock_ids,
	"overrides": [],
}

# --- input shape ------------------------------------------------------------------

# Every request but a read: a subject with a role list, a target, a lock list.
request_ok if {
	is_array(input.subject.roles)
	is_object(input.target)
	is_array(input.locks)
}

lock_ok(lk) if {
	is_string(lk.id)
	is_array(lk.owner.roles)
}

# --- subjects, roles and authorities ----------------------------------------------

# The subject's roles. A subject with is_admin (Keystone mode: Nova's
# context_is_admin, i.e. the sidecar's identity.admin_role) also holds the admin
# role, whatever its role names are; a system-scoped admin token carries it too.
subject_roles contains r if some r in input.subject.roles

subject_roles contains admin_role if input.subject.is_admin == true

# The role name the policy data treats as Nova's admin.
default admin_role := "admin"

admin_role := data.statelock.admin_role

# The subject holds one of roles.
has_role_in(roles) if {
	some r in roles
	subject_roles[r]
}

# The subject is a member of project (Nova's project_member_or_admin).
project_member(project) if {
	is_string(project)
	project != ""
	input.subject.project_id == project
	has_role_in(data.statelock.member_roles)
}

# The subject holds one of roles, where "owner" stands for a member of the
# project of the lock's owner.
holds(roles, _) if has_role_in(roles)

holds(roles, lk) if {
	"owner" in roles
	project_member(lk.owner.project_id)
}

# The first of authority_roles that the lock's owner holds, else "owner".
authority(lk) := a if {
	held := [r | some r in data.statelock.authority_roles; r in lk.owner.roles]
	a := held[0]
} else := "owner"

# The subject acts as the lock's own authority a, not as an override.
own_authority(lk, "owner") if project_member(lk.owner.project_id)

own_authority(_, a) if {
	a != "owner"
	subject_roles[a]
}

subject_name := input.subject.user_id if {
	is_string(input.subject.user_id)
} else := "an unnamed user"

# --- state_change, delete, create ---------------------------------------------------

guard_decision := allowed([], []) if {
	count(input.locks) == 0
} else := guard_locks_decision if {
	every lk in input.locks {
		lock_ok(lk)
		data.statelock.lock_kinds[lk.kind]
	}
}

# A lock of kind spec blocks this action.
blocks(spec) if {
	kind_matches(spec)
	not input.action.name in spec.exempt_actions
}

kind_matches(spec) if input.action.kind in spec.action_kinds

kind_matches(spec) if input.action.name in spec.actions

blocking := [lk | some lk in input.locks; blocks(data.statelock.lock_kinds[lk.kind])]

# The subject holds a bypass role of the lock's authority.
bypassed(lk) if holds(data.statelock.authorities[authority(lk)].bypass, lk)

held_locks := [lk | some lk in blocking; not bypassed(lk)]

# No blocking lock; else the locks that still hold; else every blocking lock
# was bypassed and each one is an override.
guard_locks_decision := allowed([], []) if {
	count(blocking) == 0
} else := denied(
	409,
	[block_message(lk) | some lk in held_locks],
	[lk.id | some lk in held_locks],
) if {
	count(held_locks) > 0
} else := allowed(
	[lk.id | some lk in blocking],
	[concat("", ["Override: ", lk.kind, " lock ", lk.id, " (authority ", authority(lk), ") bypassed by ", subject_name]) |
		some lk in blocking
	],
)

# What the 409 message calls locked: the instance, else (create, or a request
# with no instance) the project. "Instance <id> is locked" is Nova's wording.
locked_target := concat(" ", ["Instance", input.target.instance_id]) if {
	is_string(input.target.instance_id)
	input.target.instance_id != ""
} else := concat(" ", ["Project", input.target.project_id]) if {
	is_string(input.target.project_id)
	input.target.project_id != ""
} else := "The target"

block_message(lk) := concat("", [locked_target, " is locked (", lk.kind, " lock ", lk.id, reason_suffix(lk), ")"])

reason_suffix(lk) := concat("", [": ", lk.reason]) if {
	is_string(lk.reason)
	lk.reason != ""
} else := ""

# --- lock -----------------------------------------------------------------------------

# Existing locks never stop another lock from being placed. A suspend-lock (lock,
# then suspend through Statelock's service identity) needs a suspend_lock_roles role.
lock_decision := suspend_lock_decision if {
	input.action.name == "suspend_lock"
} else := allowed([], []) if {
	has_role_in(data.statelock.lock_roles)
} else := allowed([], []) if {
	project_member(input.target.project_id)
} else := denied(
	403,
	["Policy doesn't allow os_compute_api:os-lock-server:lock to be performed."],
	[],
)

suspend_lock_decision := allowed([], []) if {
	has_role_in(data.statelock.suspend_lock_roles)
} else := denied(
	403,
	[concat("", [
		"Policy doesn't allow a suspend-lock by ", subject_name, ": it needs one of the roles ",
		concat(", ", data.statelock.suspend_lock_roles), ".",
	])],
	[],
)

# --- unlock ---------------------------------------------------------------------------

# [lock, authority, may the subject remove it] for each lock to remove.
unlock_checked := [[lk, a, ok] |
	some lk in input.locks
	a := authority(lk)
	ok := may_unlock(lk, a)
]

may_unlock(lk, a) if {
	holds(data.statelock.authorities[a].unlock, lk)
} else if {
	has_role_in(data.statelock.override_roles)
} else := false

unlock_refused := [[lk, a] | some [lk, a, false] in unlock_checked]

# Refused if any lock may not be removed; else allowed, and every lock removed
# by someone outside its own authority is an override.
unlock_decision := denied(
	403,
	[unlock_message(lk, a) | some [lk, a] in unlock_refused],
	[lk.id | some [lk, _] in unlock_refused],
) if {
	count(unlock_refused) > 0
} else := allowed(
	[lk.id | some [lk, a, _] in unlock_checked; not own_authority(lk, a)],
	[concat("", ["Override: lock ", lk.id, " (authority ", a, ") removed by ", subject_name]) |
		some [lk, a, _] in unlock_checked
		not own_authority(lk, a)
	],
)

unlock_message(lk, a) := concat("", [
	"Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock ",
	lk.id, " (authority ", a, ") can be removed only by: ", concat(", ", unlockers(lk, a)), ".",
	unlock_reason(lk),
])

# The lock's own reason, so the caller learns why it stays.
unlock_reason(lk) := concat("", [" Reason for the lock: ", lk.reason, "."]) if {
	is_string(lk.reason)
	lk.reason != ""
} else := ""

# Who may remove a lock of authority a, for the denial message.
unlockers(lk, a) := array.concat(labels, others) if {
	roles := object.get(data.statelock.authorities, [a, "unlock"], [])
	labels := [role_label(r, lk) | some r in roles]
	others := [r | some r in data.statelock.override_roles; not r in roles]
}

role_label("owner", lk) := concat(" ", ["members of project", lk.owner.project_id]) if {
	is_string(lk.owner.project_id)
} else := "members of the owner's project"

role_label(r, _) := r if r != "owner"
