package statelock.authz_test

import data.statelock.authz

# --- fixtures ----------------------------------------------------------------

instance := "8f0c5a4e-1b2c-4d3e-8f40-0123456789ab"

alice := {"user_id": "alice", "project_id": "demo", "roles": ["member", "reader"]}

reader := {"user_id": "rita", "project_id": "demo", "roles": ["reader"]}

bob := {"user_id": "bob", "project_id": "other", "roles": ["member", "reader"]}

admin := {"user_id": "admin", "project_id": "admin", "roles": ["admin", "member", "reader"]}

# An admin scoped to the instance's project.
demo_admin := {"user_id": "dana", "project_id": "demo", "roles": ["admin"]}

billing := {"user_id": "billing-svc", "project_id": "service", "roles": ["billing"]}

billing_admin := {"user_id": "billing-svc2", "project_id": "service", "roles": ["admin", "billing"]}

legal := {"user_id": "legal-svc", "project_id": "service", "roles": ["legal"]}

security := {"user_id": "sec-svc", "project_id": "service", "roles": ["security"]}

override := {"user_id": "oscar", "project_id": "ops", "roles": ["statelock-override"]}

nobody := {"user_id": "nobody", "project_id": null, "roles": []}

mk_lock(id, kind, owner) := {
	"id": id,
	"kind": kind,
	"scope": "instance",
	"target": instance,
	"reason": sprintf("reason of %s", [id]),
	"owner": owner,
	"created_at": "2026-11-25T00:00:00Z",
	"expires_at": null,
}

req(subject, kind, name, locks) := {
	"now": "2026-11-25T01:00:00Z",
	"subject": subject,
	"action": {
		"name": name,
		"kind": kind,
		"method": "POST",
		"path": sprintf("/v2.1/servers/%s/action", [instance]),
		"params": {},
	},
	"target": {"instance_id": instance, "project_id": "demo", "host": "cmp-3"},
	"locks": locks,
}

# The kind config/actions.yaml gives each name.
kind_of(name) := "delete" if name in {"delete", "forceDelete"}

kind_of(name) := "create" if name == "create"

kind_of(name) := "state_change" if not name in {"delete", "forceDelete", "create"}

act(subject, name, locks) := req(subject, kind_of(name), name, locks)

# POST /servers: no instance yet.
create_req(subject, locks) := object.union(
	req(subject, "create", "create", locks),
	{"target": {"instance_id": null, "project_id": "demo", "host": null}},
)

decide(inp) := d if {
	d := authz.decision with input as inp
}

conflict(d, ids) if {
	d.allow == false
	d.status == 409
	d.lock_ids == ids
	count(d.reasons) == count(ids)
	d.overrides == []
}

forbidden(d, ids) if {
	d.allow == false
	d.status == 403
	d.lock_ids == ids
	count(d.reasons) > 0
	d.overrides == []
}

plain_allow(d) if {
	d.allow == true
	d.status == 200
	d.lock_ids == []
	d.overrides == []
	d.reasons == []
}

override_allow(d, ids) if {
	d.allow == true
	d.status == 200
	d.lock_ids == []
	d.overrides == ids
	count(d.reasons) == count(ids)
}

default_deny := {
	"allow": false,
	"status": 403,
	"reasons": ["no policy rule allows this request"],
	"lock_ids": [],
	"overrides": [],
}

billing_boot := mk_lock("lk-boot", "boot", billing)

owner_state := mk_lock("lk-own", "state", alice)

admin_state := mk_lock("lk-adm", "state", admin)

legal_delete := mk_lock("lk-legal", "delete", legal)

security_state := mk_lock("lk-sec", "state", security)

# Names from config/actions.yaml and the fixed endpoint names.
boot_actions := [
	"resume", "os-start", "unpause", "unshelve", "unrescue", "rescue", "reboot",
	"rebuild", "restore", "os-resetState", "evacuate", "shelve", "shelveOffload",
	"migrate", "os-migrateLive", "resize", "confirmResize", "revertResize", "create",
]

not_boot_actions := [
	"suspend", "os-stop", "pause", "createImage", "createBackup", "changePassword",
	"trigger_crash_dump", "injectNetworkInfo", "addSecurityGroup", "update",
	"metadata_update", "tags_update", "volume_attach", "volume_detach",
	"interface_attach", "migration_abort", "migration_force_complete",
	"password_clear", "delete", "forceDelete",
]

delete_actions := ["delete", "forceDelete", "createBackup", "rebuild"]

not_delete_actions := [
	"suspend", "resume", "reboot", "os-start", "os-stop", "shelve", "unshelve",
	"createImage", "restore", "update", "metadata_delete", "tags_delete",
	"volume_detach", "interface_detach", "create",
]

# Every state-changing name, including those Nova's own lock leaves open.
state_actions := [
	"reboot", "os-start", "os-stop", "resize", "confirmResize", "revertResize",
	"rebuild", "createImage", "trigger_crash_dump", "pause", "unpause", "suspend",
	"resume", "shelve", "shelveOffload", "unshelve", "rescue", "unrescue",
	"changePassword", "createBackup", "forceDelete", "restore", "migrate",
	"os-migrateLive", "evacuate", "os-resetState", "injectNetworkInfo",
	"addSecurityGroup", "removeSecurityGroup", "addFloatingIp", "removeFloatingIp",
	"addFixedIp", "removeFixedIp", "create", "delete", "update", "metadata_update",
	"metadata_delete", "tags_update", "tags_delete", "volume_attach", "volume_swap",
	"volume_update", "volume_detach", "interface_attach", "interface_detach",
	"migration_force_complete", "migration_abort", "password_clear", "share_attach",
	"share_detach", "os-keypairs",
]

console_actions := [
	"os-getConsoleOutput", "os-getVNCConsole", "os-getSPICEConsole",
	"os-getSerialConsole", "os-getRDPConsole", "remote_console_create",
]

# --- read ----------------------------------------------------------------------

test_read_allowed_under_every_lock if {
	plain_allow(decide(req(alice, "read", "show", [billing_boot, admin_state, legal_delete])))
}

test_read_allowed_without_subject if {
	plain_allow(decide({"action": {"kind": "read", "name": "list"}}))
}

# --- the contract example ------------------------------------------------------

test_contract_example if {
	d := decide({
		"now": "2026-11-25T01:00:00Z",
		"subject": {"user_id": "alice", "project_id": "demo", "roles": ["member"]},
		"action": {
			"name": "resume", "kind": "state_change", "method": "POST",
			"path": "/v2.1/servers/8f0c/action", "params": {},
		},
		"target": {"instance_id": "8f0c", "project_id": "demo", "host": "cmp-3"},
		"locks": [{
			"id": "lk-1", "kind": "boot", "scope": "instance", "target": "8f0c",
			"reason": "billing: invoice 881 overdue",
			"owner": {"user_id": "billing-svc", "project_id": "service", "roles": ["billing"]},
			"created_at": "2026-11-25T00:00:00Z", "expires_at": null,
		}],
	})
	d == {
		"allow": false,
		"status": 409,
		"reasons": ["Instance 8f0c is locked (boot lock lk-1: billing: invoice 881 overdue)"],
		"lock_ids": ["lk-1"],
		"overrides": [],
	}
}

# --- no locks ------------------------------------------------------------------

test_no_locks_allows_every_state_action if {
	failures := [name |
		some name in state_actions
		not plain_allow(decide(act(alice, name, [])))
	]
	failures == []
}

# --- lock kind: boot -----------------------------------------------------------

test_boot_lock_blocks_boot_actions if {
	failures := [name |
		some name in boot_actions
		not conflict(decide(act(alice, name, [billing_boot])), ["lk-boot"])
	]
	failures == []
}

test_boot_lock_blocks_boot_actions_for_admin if {
	failures := [name |
		some name in boot_actions
		not conflict(decide(act(admin, name, [billing_boot])), ["lk-boot"])
	]
	failures == []
}

test_boot_lock_allows_other_actions if {
	failures := [name |
		some name in not_boot_actions
		not plain_allow(decide(act(alice, name, [billing_boot])))
	]
	failures == []
}

# --- lock kind: delete ---------------------------------------------------------

test_delete_lock_blocks_destructive_actions if {
	failures := [name |
		some name in delete_actions
		not conflict(decide(act(alice, name, [legal_delete])), ["lk-legal"])
	]
	failures == []
}

test_delete_lock_blocks_any_delete_kind if {
	conflict(decide(req(alice, "delete", "some_future_delete", [legal_delete])), ["lk-legal"])
}

test_delete_lock_allows_other_actions if {
	failures := [name |
		some name in not_delete_actions
		not plain_allow(decide(act(alice, name, [legal_delete])))
	]
	failures == []
}

# --- lock kind: state ----------------------------------------------------------

test_state_lock_blocks_every_state_action if {
	failures := [name |
		some name in state_actions
		not conflict(decide(act(alice, name, [security_state])), ["lk-sec"])
	]
	failures == []
}

test_state_lock_exempts_consoles if {
	failures := [name |
		some name in console_actions
		not plain_allow(decide(act(alice, name, [security_state])))
	]
	failures == []
}

# --- bypass (Nova-compatible owner/admin, separation of duties) -----------------

test_owner_lock_blocks_owner if {
	d := decide(act(alice, "os-stop", [owner_state]))
	conflict(d, ["lk-own"])
	d.reasons == [sprintf("Instance %s is locked (state lock lk-own: reason of lk-own)", [instance])]
}

test_owner_lock_blocks_other_members_and_readers if {
	conflict(decide(act(bob, "os-stop", [owner_state])), ["lk-own"])
	conflict(decide(act(reader, "os-stop", [owner_state])), ["lk-own"])
}

test_owner_lock_bypassed_by_admin if {
	d := decide(act(admin, "delete", [owner_state]))
	override_allow(d, ["lk-own"])
	d.reasons == ["Override: state lock lk-own (authority owner) bypassed by admin"]
}

test_owner_lock_bypassed_by_admin_of_the_project if {
	override_allow(decide(act(demo_admin, "reboot", [owner_state])), ["lk-own"])
}

test_admin_lock_bypassed_by_nobody if {
	failures := [s.user_id |
		some s in [alice, admin, demo_admin, billing, override]
		not conflict(decide(act(s, "os-stop", [admin_state])), ["lk-adm"])
	]
	failures == []
}

test_role_locks_bypassed_only_by_override if {
	locks := [billing_boot, mk_lock("lk-l", "boot", legal), mk_lock("lk-s", "boot", security)]
	failures := [[s.user_id, lk.id] |
		some s in [alice, admin, demo_admin, billing, legal, security]
		some lk in locks
		not conflict(decide(act(s, "resume", [lk])), [lk.id])
	]
	failures == []
	passes := [lk.id |
		some lk in locks
		override_allow(decide(act(override, "resume", [lk])), [lk.id])
	]
	passes == ["lk-boot", "lk-l", "lk-s"]
}

test_override_role_reason if {
	d := decide(act(override, "resume", [billing_boot]))
	d.reasons == ["Override: boot lock lk-boot (authority billing) bypassed by oscar"]
}

test_non_blocking_lock_is_not_an_override if {
	plain_allow(decide(act(admin, "suspend", [mk_lock("lk-ob", "boot", alice)])))
}

# --- authority ------------------------------------------------------------------

test_authority_billing_before_admin if {
	# A billing service account that is also admin counts as billing.
	lk := mk_lock("lk-ba", "boot", billing_admin)
	conflict(decide(act(admin, "resume", [lk])), ["lk-ba"])
	override_allow(decide(act(override, "resume", [lk])), ["lk-ba"])
	authz.authority(lk) == "billing"
}

test_authority_order if {
	authz.authority({"owner": {"roles": ["security", "legal"]}}) == "legal"
	authz.authority({"owner": {"roles": ["admin", "security"]}}) == "security"
	authz.authority({"owner": {"roles": ["member", "admin"]}}) == "admin"
	authz.authority({"owner": {"roles": ["member"]}}) == "owner"
	authz.authority({"owner": {"roles": []}}) == "owner"
}

# --- several locks ---------------------------------------------------------------

test_bypassed_and_held_locks if {
	d := decide(act(admin, "resume", [owner_state, billing_boot]))
	conflict(d, ["lk-boot"])
}

test_several_held_locks_in_input_order if {
	d := decide(act(alice, "rebuild", [legal_delete, owner_state, billing_boot]))
	conflict(d, ["lk-legal", "lk-own", "lk-boot"])
	d.reasons == [
		sprintf("Instance %s is locked (delete lock lk-legal: reason of lk-legal)", [instance]),
		sprintf("Instance %s is locked (state lock lk-own: reason of lk-own)", [instance]),
		sprintf("Instance %s is locked (boot lock lk-boot: reason of lk-boot)", [instance]),
	]
}

test_several_bypassed_locks if {
	d := decide(act(admin, "reboot", [owner_state, mk_lock("lk-own2", "boot", bob), legal_delete]))
	override_allow(d, ["lk-own", "lk-own2"])
}

# --- denial messages --------------------------------------------------------------

test_message_without_reason if {
	lk := object.union(billing_boot, {"reason": null})
	d := decide(act(alice, "resume", [lk]))
	d.reasons == [sprintf("Instance %s is locked (boot lock lk-boot)", [instance])]
}

test_message_with_empty_reason if {
	lk := object.remove(object.union(billing_boot, {"reason": ""}), ["scope"])
	d := decide(act(alice, "resume", [lk]))
	d.reasons == [sprintf("Instance %s is locked (boot lock lk-boot)", [instance])]
}

test_create_blocked_by_project_lock if {
	lk := object.union(mk_lock("lk-p", "state", billing), {"scope": "project", "target": "demo"})
	inp := create_req(alice, [lk])
	d := decide(inp)
	conflict(d, ["lk-p"])
	d.reasons == ["Project demo is locked (state lock lk-p: reason of lk-p)"]
}

test_create_blocked_by_project_boot_lock if {
	lk := object.union(billing_boot, {"scope": "project", "target": "demo"})
	inp := create_req(alice, [lk])
	conflict(decide(inp), ["lk-boot"])
}

test_create_allowed_under_delete_lock if {
	inp := create_req(alice, [legal_delete])
	plain_allow(decide(inp))
}

test_message_with_no_target_ids if {
	inp := object.union(req(alice, "state_change", "os-keypairs", [security_state]), {"target": {"instance_id": null, "project_id": null, "host": null}})
	d := decide(inp)
	d.reasons == ["The target is locked (state lock lk-sec: reason of lk-sec)"]
	blank := object.union(inp, {"target": {"instance_id": "", "project_id": ""}})
	decide(blank).reasons == ["The target is locked (state lock lk-sec: reason of lk-sec)"]
}

# --- lock ------------------------------------------------------------------------

test_lock_allowed_for_project_member if {
	plain_allow(decide(req(alice, "lock", "lock", [])))
	plain_allow(decide(req(demo_admin, "lock", "lock", [])))
}

test_lock_allowed_for_lock_roles_anywhere if {
	failures := [s.user_id |
		some s in [admin, billing, legal, security, billing_admin]
		not plain_allow(decide(req(s, "lock", "lock", [])))
	]
	failures == []
}

test_lock_denied if {
	failures := [s.user_id |
		some s in [reader, bob, override, nobody]
		d := decide(req(s, "lock", "lock", []))
		d != {
			"allow": false,
			"status": 403,
			"reasons": ["Policy doesn't allow os_compute_api:os-lock-server:lock to be performed."],
			"lock_ids": [],
			"overrides": [],
		}
	]
	failures == []
}

test_lock_denied_without_target_project if {
	inp := object.union(req(alice, "lock", "lock", []), {"target": {"instance_id": instance, "project_id": null}})
	forbidden(decide(inp), [])
	nullproj := object.union(inp, {"subject": {"user_id": "x", "project_id": null, "roles": ["member"]}})
	forbidden(decide(nullproj), [])
	emptyproj := object.union(inp, {
		"subject": {"user_id": "x", "project_id": "", "roles": ["member"]},
		"target": {"project_id": ""},
	})
	forbidden(decide(emptyproj), [])
}

test_existing_locks_do_not_stop_a_lock if {
	plain_allow(decide(req(alice, "lock", "lock", [billing_boot, admin_state, owner_state])))
}

# --- unlock ----------------------------------------------------------------------

test_owner_unlocks_own_lock if {
	plain_allow(decide(req(alice, "unlock", "unlock", [owner_state])))
}

test_project_admin_unlocks_owner_lock_as_owner if {
	plain_allow(decide(req(demo_admin, "unlock", "unlock", [owner_state])))
}

test_admin_unlocks_owner_lock_as_override if {
	d := decide(req(admin, "unlock", "unlock", [owner_state]))
	override_allow(d, ["lk-own"])
	d.reasons == ["Override: lock lk-own (authority owner) removed by admin"]
}

test_owner_lock_unlock_refused if {
	failures := [s.user_id |
		some s in [reader, bob, billing, legal, security, nobody]
		not forbidden(decide(req(s, "unlock", "unlock", [owner_state])), ["lk-own"])
	]
	failures == []
}

test_owner_cannot_unlock_admin_lock if {
	d := decide(req(alice, "unlock", "unlock", [admin_state]))
	forbidden(d, ["lk-adm"])
	d.reasons == ["Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock lk-adm (authority admin) can be removed only by: admin, statelock-override. Reason for the lock: reason of lk-adm."]
}

test_admin_lock_unlock if {
	plain_allow(decide(req(admin, "unlock", "unlock", [admin_state])))
	plain_allow(decide(req(demo_admin, "unlock", "unlock", [admin_state])))
	override_allow(decide(req(override, "unlock", "unlock", [admin_state])), ["lk-adm"])
	forbidden(decide(req(billing, "unlock", "unlock", [admin_state])), ["lk-adm"])
}

test_role_lock_unlock_matrix if {
	cases := [
		# [subject, lock, expected] with expected "own", "override" or "refused"
		[billing, billing_boot, "own"],
		[billing_admin, billing_boot, "own"],
		[admin, billing_boot, "refused"],
		[alice, billing_boot, "refused"],
		[legal, billing_boot, "refused"],
		[override, billing_boot, "override"],
		[legal, legal_delete, "own"],
		[billing, legal_delete, "refused"],
		[admin, legal_delete, "refused"],
		[override, legal_delete, "override"],
		[security, security_state, "own"],
		[admin, security_state, "refused"],
		[override, security_state, "override"],
	]
	failures := [[c[0].user_id, c[1].id] |
		some c in cases
		not unlock_outcome(c[0], c[1], c[2])
	]
	failures == []
}

unlock_outcome(subject, lk, "own") if plain_allow(decide(req(subject, "unlock", "unlock", [lk])))

unlock_outcome(subject, lk, "override") if {
	override_allow(decide(req(subject, "unlock", "unlock", [lk])), [lk.id])
}

unlock_outcome(subject, lk, "refused") if {
	forbidden(decide(req(subject, "unlock", "unlock", [lk])), [lk.id])
}

test_unlock_billing_lock_message if {
	d := decide(req(admin, "unlock", "unlock", [billing_boot]))
	d.reasons == ["Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock lk-boot (authority billing) can be removed only by: billing, statelock-override. Reason for the lock: reason of lk-boot."]
}

test_unlock_owner_lock_message if {
	d := decide(req(bob, "unlock", "unlock", [owner_state]))
	d.reasons == ["Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock lk-own (authority owner) can be removed only by: members of project demo, admin, statelock-override. Reason for the lock: reason of lk-own."]
}

test_unlock_message_owner_without_project if {
	lk := mk_lock("lk-np", "state", {"user_id": "ghost", "project_id": null, "roles": ["member"]})
	d := decide(req(bob, "unlock", "unlock", [lk]))
	d.reasons == ["Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock lk-np (authority owner) can be removed only by: members of the owner's project, admin, statelock-override. Reason for the lock: reason of lk-np."]
}

test_unlock_message_without_reason if {
	lk := object.union(billing_boot, {"reason": ""})
	d := decide(req(admin, "unlock", "unlock", [lk]))
	d.reasons == ["Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock lk-boot (authority billing) can be removed only by: billing, statelock-override."]
}

test_override_reason_without_user_id if {
	d := decide(req({"project_id": "ops", "roles": ["statelock-override"]}, "unlock", "unlock", [billing_boot]))
	d.reasons == ["Override: lock lk-boot (authority billing) removed by an unnamed user"]
}

test_unlock_mixed_locks_names_only_refused if {
	d := decide(req(admin, "unlock", "unlock", [owner_state, billing_boot, admin_state, legal_delete]))
	forbidden(d, ["lk-boot", "lk-legal"])
	count(d.reasons) == 2
}

test_unlock_several_overrides if {
	d := decide(req(override, "unlock", "unlock", [owner_state, billing_boot]))
	override_allow(d, ["lk-own", "lk-boot"])
}

test_unlock_nothing if {
	plain_allow(decide(req(alice, "unlock", "unlock", [])))
}

test_unlock_lock_of_unknown_kind if {
	plain_allow(decide(req(alice, "unlock", "unlock", [mk_lock("lk-x", "freeze", alice)])))
}

# --- data-driven configuration ---------------------------------------------------

test_owner_pseudo_role_in_bypass if {
	auths := {"owner": {"unlock": ["owner"], "bypass": ["owner"]}}
	d := decide(act(alice, "os-stop", [owner_state])) with data.statelock.authorities as auths
	override_allow(d, ["lk-own"])
	conflict(decide(act(bob, "os-stop", [owner_state])), ["lk-own"]) with data.statelock.authorities as auths
	conflict(decide(act(admin, "os-stop", [owner_state])), ["lk-own"]) with data.statelock.authorities as auths
}

test_authority_without_entry if {
	auths := {"owner": {"unlock": ["owner", "admin"], "bypass": ["admin"]}}
	conflict(decide(act(override, "resume", [billing_boot])), ["lk-boot"]) with data.statelock.authorities as auths
	d := decide(req(billing, "unlock", "unlock", [billing_boot])) with data.statelock.authorities as auths
	d.reasons == ["Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed. Lock lk-boot (authority billing) can be removed only by: statelock-override. Reason for the lock: reason of lk-boot."]
	override_allow(decide(req(override, "unlock", "unlock", [billing_boot])), ["lk-boot"]) with data.statelock.authorities as auths
}

test_exempt_beats_listed_action if {
	kinds := {"boot": {"action_kinds": [], "actions": ["resume"], "exempt_actions": ["resume"]}}
	plain_allow(decide(act(alice, "resume", [billing_boot]))) with data.statelock.lock_kinds as kinds
}

# --- malformed input: default deny -----------------------------------------------

test_default_deny_no_input if {
	decide({}) == default_deny
	authz.decision == default_deny
}

test_default_deny_unknown_kinds if {
	failures := [k |
		some k in ["unknown", "migration_action", "action", "", 7, null, ["read"], {"k": "read"}]
		decide(req(admin, k, "resume", [])) != default_deny
	]
	failures == []
}

test_default_deny_malformed_guarded if {
	base := act(admin, "resume", [owner_state])
	bad := [
		object.remove(base, ["subject"]),
		object.union(base, {"subject": "admin"}),
		object.union(base, {"subject": {"user_id": "admin", "roles": "admin"}}),
		object.remove(base, ["target"]),
		object.union(base, {"target": "8f0c"}),
		object.remove(base, ["locks"]),
		object.union(base, {"locks": {"lk-own": owner_state}}),
		object.union(base, {"locks": [object.remove(owner_state, ["id"])]}),
		object.union(base, {"locks": [object.union(owner_state, {"id": 7})]}),
		object.union(base, {"locks": [object.union(owner_state, {"kind": "freeze"})]}),
		object.union(base, {"locks": [object.remove(owner_state, ["kind"])]}),
		object.union(base, {"locks": [object.remove(owner_state, ["owner"])]}),
		object.union(base, {"locks": [object.union(object.remove(owner_state, ["owner"]), {"owner": {"user_id": "alice"}})]}),
		object.union(base, {"locks": [owner_state, "lk-2"]}),
	]
	failures := [i |
		some i, inp in bad
		decide(inp) != default_deny
	]
	failures == []
}

test_default_deny_malformed_lock if {
	base := req(alice, "lock", "lock", [])
	decide(object.remove(base, ["subject"])) == default_deny
	decide(object.remove(base, ["target"])) == default_deny
	decide(object.union(base, {"subject": {"project_id": "demo", "roles": null}})) == default_deny
	decide(object.remove(base, ["locks"])) == default_deny
}

test_default_deny_malformed_guarded_without_locks if {
	base := act(alice, "os-stop", [])
	plain_allow(decide(base))
	decide(object.remove(base, ["subject"])) == default_deny
	decide(object.remove(base, ["target"])) == default_deny
	decide(object.union(base, {"locks": null})) == default_deny
}

test_default_deny_malformed_unlock if {
	base := req(admin, "unlock", "unlock", [owner_state])
	decide(object.remove(base, ["subject"])) == default_deny
	decide(object.remove(base, ["locks"])) == default_deny
	decide(object.union(base, {"locks": "lk-own"})) == default_deny
	decide(object.union(base, {"locks": [object.remove(owner_state, ["owner"])]})) == default_deny
	decide(object.union(base, {"locks": [object.remove(owner_state, ["id"])]})) == default_deny
}

# --- data.json sanity --------------------------------------------------------------

test_data_lock_kinds_complete if {
	every kind, spec in data.statelock.lock_kinds {
		is_string(kind)
		is_array(spec.action_kinds)
		is_array(spec.actions)
		is_array(spec.exempt_actions)
	}
	object.keys(data.statelock.lock_kinds) == {"state", "boot", "delete"}
}

test_data_authorities_complete if {
	every a in array.concat(data.statelock.authority_roles, ["owner"]) {
		is_array(data.statelock.authorities[a].unlock)
		is_array(data.statelock.authorities[a].bypass)
	}
}

# --- suspend-lock -------------------------------------------------------------------

suspend_lock_req(subject) := object.union(
	req(subject, "lock", "suspend_lock", []),
	{"action": {"name": "suspend_lock", "kind": "lock", "method": "POST", "path": "/statelock/v1/instances/x/suspend-lock", "params": {"kind": "boot", "scope": "instance"}}},
)

test_suspend_lock_allowed_for_billing_admin_and_override if {
	every subject in [billing, admin, override] {
		authz.decision.allow with input as suspend_lock_req(subject)
	}
}

test_suspend_lock_denied_for_owner_and_legal if {
	every subject in [alice, demo_admin_member_only, legal] {
		d := authz.decision with input as suspend_lock_req(subject)
		not d.allow
		d.status == 403
		contains(d.reasons[0], "suspend-lock")
	}
}

demo_admin_member_only := {"user_id": "mo", "project_id": "demo", "roles": ["member"]}

unlock_resume_req(subject) := object.union(
	req(subject, "unlock", "unlock_resume", [object.union(mk_lock("lk-b", "boot", billing), {"source": "suspend-lock"})]),
	{"action": {"name": "unlock_resume", "kind": "unlock", "method": "POST", "path": "/x", "params": {}}},
)

test_unlock_resume_follows_unlock_authority if {
	not authz.decision.allow with input as unlock_resume_req(alice)
	not authz.decision.allow with input as unlock_resume_req(admin)
	authz.decision.allow with input as unlock_resume_req(billing)
}

# --- Keystone subjects (contract v1 extension: domain_id, is_admin, system_scope) ---

# Subjects as the keystone identity mode builds them.
ks_member := {
	"user_id": "u-alice", "project_id": "demo", "roles": ["member", "reader"],
	"domain_id": "default", "is_admin": false, "system_scope": null,
}

ks_admin := {
	"user_id": "u-admin", "project_id": "admin", "roles": ["admin", "member", "reader"],
	"domain_id": "default", "is_admin": true, "system_scope": null,
}

# is_admin from a site whose admin role is named otherwise (identity.admin_role: cloud-admin).
ks_flag_admin := {
	"user_id": "u-ops", "project_id": "ops", "roles": ["cloud-admin"],
	"domain_id": "default", "is_admin": true, "system_scope": null,
}

# A system-scoped token: no project, no domain.
ks_system_admin := {
	"user_id": "u-sys", "project_id": "", "roles": ["admin", "member", "reader"],
	"domain_id": null, "is_admin": true, "system_scope": "all",
}

ks_system_reader := {
	"user_id": "u-sysr", "project_id": "", "roles": ["reader"],
	"domain_id": null, "is_admin": false, "system_scope": "all",
}

test_keystone_member_is_a_member_as_before if {
	conflict(decide(act(ks_member, "os-stop", [owner_state])), ["lk-own"])
	conflict(decide(act(ks_member, "resume", [billing_boot])), ["lk-boot"])
	plain_allow(decide(req(ks_member, "lock", "lock", [])))
	plain_allow(decide(act(ks_member, "os-stop", [])))
}

test_is_admin_acts_as_admin if {
	every s in [ks_admin, ks_flag_admin, ks_system_admin] {
		override_allow(decide(act(s, "delete", [owner_state])), ["lk-own"])
		plain_allow(decide(req(s, "lock", "lock", [])))
		authz.decision.allow with input as suspend_lock_req(s)
		override_allow(decide(req(s, "unlock", "unlock", [owner_state])), ["lk-own"])
	}
}

test_is_admin_names_the_admin_role if {
	authz.subject_roles == {"cloud-admin", "admin"} with input as act(ks_flag_admin, "os-stop", [])
	authz.subject_roles == {"cloud-admin", "root"} with input as act(ks_flag_admin, "os-stop", [])
		with data.statelock.admin_role as "root"
}

test_is_admin_does_not_pass_role_locks_or_admin_locks if {
	every s in [ks_admin, ks_flag_admin, ks_system_admin] {
		conflict(decide(act(s, "resume", [billing_boot])), ["lk-boot"])
		conflict(decide(act(s, "os-stop", [admin_state])), ["lk-adm"])
		forbidden(decide(req(s, "unlock", "unlock", [billing_boot])), ["lk-boot"])
	}
}

test_is_admin_must_be_true if {
	every flag in [false, "true", 1, null] {
		s := object.union(ks_member, {"is_admin": flag})
		conflict(decide(act(s, "os-stop", [owner_state])), ["lk-own"])
	}
}

test_system_scope_is_no_project_membership if {
	# A system-scoped reader holds no lock role and belongs to no project.
	forbidden(decide(req(ks_system_reader, "lock", "lock", [])), [])
	forbidden(decide(req(ks_system_reader, "unlock", "unlock", [owner_state])), ["lk-own"])
	conflict(decide(act(ks_system_reader, "os-stop", [owner_state])), ["lk-own"])
	not authz.decision.allow with input as suspend_lock_req(ks_system_reader)
}

test_system_admin_override_is_named if {
	d := decide(act(ks_system_admin, "reboot", [owner_state]))
	d.reasons == ["Override: state lock lk-own (authority owner) bypassed by u-sys"]
}
