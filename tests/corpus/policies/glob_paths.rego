# API path rules with glob patterns.
package corpus.glob_paths

public := ["/health", "/docs/**", "/v1/*/status"]

default allow := false

allow if {
	some pattern in public
	glob.match(pattern, ["/"], input.path)
}

allow if {
	input.user.admin == true
	glob.match("/admin/**", ["/"], input.path)
}

host_ok if glob.match("*.example.com", ["."], input.host)
