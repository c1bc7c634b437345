# Kubernetes admission: denials for pods that break the cluster's rules.
package corpus.k8s_admission

deny contains msg if {
	input.request.kind.kind == "Pod"
	some container in input.request.object.spec.containers
	not startswith(container.image, "hooli.com/")
	msg := sprintf("image '%v' comes from untrusted registry", [container.image])
}

deny contains msg if {
	some container in input.request.object.spec.containers
	container.securityContext.privileged
	msg := sprintf("container %q must not be privileged", [container.name])
}

deny contains msg if {
	not input.request.object.metadata.labels.team
	msg := "every pod needs a team label"
}

allowed if count(deny) == 0

response := {"allowed": allowed, "reasons": sort([m | some m in deny])} if allowed

response := {"allowed": false, "reasons": sort([m | some m in deny])} if not allowed
