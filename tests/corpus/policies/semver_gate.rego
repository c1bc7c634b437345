# Deployments must run a supported, non-prerelease client version.
package corpus.semver_gate

minimum := "1.4.0"

valid if semver.is_valid(input.version)

default allow := false

allow if {
	valid
	semver.compare(input.version, minimum) >= 0
	not contains(input.version, "-")
}

comparison := semver.compare(input.version, input.other)
