# The classic HTTP API example: path segments, owners and managers.
package corpus.http_api

default allow := false

managers := {"bob": ["alice"], "carol": ["dave", "erin"]}

path := split(trim_prefix(input.path, "/"), "/")

allow if {
	input.method == "GET"
	path == ["finance", "salary", input.user]
}

allow if {
	input.method == "GET"
	path = ["finance", "salary", employee]
	input.user in managers[employee]
}

allow if {
	input.method in {"GET", "HEAD"}
	path[0] == "public"
}

segments := count(path)
