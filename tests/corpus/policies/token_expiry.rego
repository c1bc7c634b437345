# Bearer tokens: issued-at and expiry in seconds, checked against the request time.
package corpus.token_expiry

now_s := time.parse_rfc3339_ns(input.now) / 1000000000

default expired := true

expired := false if {
	is_number(input.token.exp)
	now_s < input.token.exp
	input.token.iat <= now_s
}

remaining_s := input.token.exp - now_s if not expired

lifetime_h := (input.token.exp - input.token.iat) / 3600

too_long if lifetime_h > 24
