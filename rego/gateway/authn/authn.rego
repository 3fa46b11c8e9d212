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

_api_key_teams contains name if {
	digest := input.principal.api_key_sha256
	is_string(digest)
	some name, entry in config.teams
	digest in entry.api_keys_sha256
}

# METADATA
# title: JWT team
# description: The team named by a valid JWT's team claim, undefined when anything is off.
jwt_team(token, settings, teams, now_ns) := name if {
	jwt_shaped(token)
	[valid, _, claims] := io.jwt.decode_verify(token, {
		"cert": settings.keys,
		"iss": settings.issuer,
		"aud": settings.audience,
		"time": now_ns,
	})
	valid
	name := claims[settings.team_claim]
	teams[name].jwt == true
}

# METADATA
# title: JWT shaped
# description: |
#   Three base64url segments whose first two decode to JSON. Checked first so a
#   malformed token is simply unauthenticated, never an evaluation error.
jwt_shaped(token) if {
	is_string(token)
	parts := split(token, ".")
	count(parts) == 3
	every part in parts {
		regex.match(`^[A-Za-z0-9_-]+$`, part)
		count(part) % 4 != 1
	}
	json.is_valid(base64url.decode(parts[0]))
	json.is_valid(base64url.decode(parts[1]))
}
