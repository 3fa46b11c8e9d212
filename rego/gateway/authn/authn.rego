# METADATA
# title: Authentication
# description: |
#   Maps a credential to a team. API keys arrive only as their SHA-256 hex
#   digest and match a team's api_keys_sha256. JWTs are verified here with the
#   keys, issuer and audience in data.gateway.config.jwt; the team comes from
#   the configured claim and must be a team with "jwt": true.
package gateway.authn

import data.gateway.config

default team := ""

team := name if {
	some name in _api_key_teams
	count(_api_key_teams) == 1
}

team := name if {
	not is_string(input.principal.api_key_sha256)
	name := jwt_team(input.principal.jwt, config.jwt, config.teams, time.now_ns())
}

# METADATA
# title: Known API key hashes
# description: |
#   Every API key hash a team lists. The gateway reads this set once per bundle
#   to refuse a key nobody listed before it reads the request's body; whether a
#   listed key may do anything is still the decision's.
known_api_key_hashes contains digest if {
	some entry in config.teams
	some digest in entry.api_keys_sha256
}

_api_key_teams contains name if {
	digest := input.principal.api_key_sha256
	is_string(digest)
	some name, entry in config.teams
	digest in entry.api_keys_sha256
}

# METADATA
# title: JWT team
# description: |
#   The team named by a valid JWT's team claim, undefined when anything is off.
#   The signature, issuer and audience are verified by io.jwt.decode_verify; the
#   times are checked here, with jwt.clock_skew_seconds (default 30) of allowance:
#   exp is required (a token that never expires is refused), nbf and iat are
#   honoured, and the lifetime (exp - iat, or exp - now without iat) is at most
#   jwt.max_lifetime_seconds (default 3600).
jwt_team(token, settings, teams, now_ns) := name if {
	jwt_shaped(token)
	[_, unverified, _] := io.jwt.decode(token)
	is_number(unverified.exp)
	[valid, _, claims] := io.jwt.decode_verify(token, {
		"cert": settings.keys,
		"iss": settings.issuer,
		"aud": settings.audience,
		"time": _inside_validity(unverified),
	})
	valid
	jwt_times_ok(claims, settings, now_ns / 1000000000)
	name := claims[settings.team_claim]
	teams[name].jwt == true
}

# decode_verify checks exp and nbf against the time it is given: give it one inside the token's own
# validity (a second before exp: it compares in float64), so those checks are made once, below, with
# the allowance and against the real time.
_inside_validity(claims) := (claims.exp - 1) * 1000000000 if is_number(claims.exp)

# METADATA
# title: JWT times
# description: exp required and not passed, nbf and iat not in the future, lifetime bounded; skew allowed.
jwt_times_ok(claims, settings, now) if {
	skew := object.get(settings, "clock_skew_seconds", 30)
	max_lifetime := object.get(settings, "max_lifetime_seconds", 3600)
	is_number(claims.exp)
	claims.exp > now - skew
	object.get(claims, "nbf", now) <= now + skew
	issued := object.get(claims, "iat", now)
	is_number(issued)
	issued <= now + skew
	claims.exp - min([issued, now]) <= max_lifetime + skew
}

# METADATA
# title: JWT shaped
# description: |
#   Three base64url segments whose first two decode to JSON objects, with a
#   string `alg`. Checked first so a malformed token is simply unauthenticated,
#   never an evaluation error.
jwt_shaped(token) if {
	is_string(token)
	count(token) <= 8192
	parts := split(token, ".")
	count(parts) == 3
	every part in parts {
		regex.match(`^[A-Za-z0-9_-]+$`, part)
		count(part) % 4 != 1
	}
	header := json.unmarshal(_json_text(parts[0]))
	is_object(header)
	is_string(header.alg)
	is_object(json.unmarshal(_json_text(parts[1])))
}

_json_text(segment) := text if {
	text := base64url.decode(segment)
	json.is_valid(text)
}
