# Permission sets: what is required, what is granted, what is missing or extra.
package corpus.set_algebra

required := {p | some p in input.required}

granted := {p | some p in input.granted}

missing := required - granted

extra := granted - required

common := required & granted

everything := (required | granted) | {"baseline"}

allow if count(missing) == 0

overlap := count(common) / count(everything)

intersection_all := intersection({required, granted, {"read", "write"}})

union_all := union({required, granted})

shapes := {required, granted, {"kind": "object"}, ["array"], "string", 1, null}
