# Names with quotes, backslashes, NUL and non-ASCII: normalising and checking them.
package corpus.strings_awkward

name := input.name

facts := {
	"length": count(name),
	"upper": upper(name),
	"lower": lower(name),
	"trimmed": trim_space(name),
	"quoted": contains(name, "\""),
	"backslash": contains(name, "\\"),
	"nul": contains(name, "\u0000"),
	"starts_nul": startswith(name, "\u0000"),
	"index_e": indexof(name, "é"),
	"parts": split(name, "/"),
	"replaced": replace(name, "\"", "'"),
	"head": substring(name, 0, 3),
	"tail": substring(name, 2, -1),
	"reversed": strings.reverse(name),
	"emoji": contains(name, "😀"),
}

safe if {
	not contains(name, "\u0000")
	not contains(name, "\\")
	count(name) <= 64
}

slug := lower(concat("-", split(trim(name, " _"), " ")))

suffix_ok if endswith(name, input.suffix)

padded := sprintf("%-8s|%8s|%q", [name, name, name])
