# METADATA
# title: Gateway policy
# description: |
#   The single decision the gateway asks for on every request. Input holds
#   metadata only (credential hash or JWT, endpoint, model, token counts,
#   use case, data classification); never message content.
package gateway

import data.gateway.authn
import data.gateway.authz
import data.gateway.config
import data.gateway.logging
import data.gateway.routing

# METADATA
# title: Gateway decision
# description: |
#   Always defined. A deny carries reasons whose codes name the rule that
#   made them; an allow carries ordered routes that already respect PHI,
#   residency and model equivalence, and the team's token limits.
# entrypoint: true
decision := {
	"allow": allow,
	"team": authn.team,
	"use_case": use_case,
	"data_classification": classification,
	"reasons": sort(authz.deny),
	"log_level": logging.level(team, classification),
	"routes": routes,
	"limits": limits,
}

default allow := false

allow if count(authz.deny) == 0

# The authenticated team's entry in the policy data, {} when unauthenticated.
team := object.get(config.teams, authn.team, {})

# METADATA
# title: Use case
# description: |
#   The use case the request runs under: only ever one of the team's own, so
#   the value is safe to log and to use as a metric label (a header the team
#   is not entitled to never comes back out of the policy).
default use_case := ""

use_case := requested_use_case if requested_use_case in team.use_cases

# The X-Use-Case header when given, else the team's default use case.
default requested_use_case := ""

requested_use_case := input.context.use_case if {
	is_string(input.context.use_case)
	input.context.use_case != ""
}

requested_use_case := team.default_use_case if {
	not _use_case_declared
	is_string(team.default_use_case)
}

_use_case_declared if {
	is_string(input.context.use_case)
	input.context.use_case != ""
}

# METADATA
# title: Data classification
# description: |
#   The X-Data-Classification header when it names a known class. Without it a
#   PHI team's request is PHI, any other team's is none. Anything unknown is PHI.
default classification := "phi"

classification := input.context.data_classification if {
	input.context.data_classification in {"phi", "pii", "none"}
}

classification := "phi" if {
	not _classification_declared
	team.phi == true
}

classification := "none" if {
	not _classification_declared
	team.phi == false
}

# Any non-null header counts as declared, so an unknown value stays at the default: PHI.
_classification_declared if input.context.data_classification != null

# Every route the data allows for this request, before the allow/deny verdict.
candidate_routes := routing.routes(team, input.request.model, use_case, classification, config.providers, config.equivalence)

# The routes handed to the gateway: none on a deny.
default routes := []

routes := candidate_routes if allow

limits := {
	"tokens_per_minute": object.get(team, "tokens_per_minute", 0),
	"max_tokens": object.get(team, "max_tokens", 0),
}
