# METADATA
# title: Gateway policy
# description: |
#   The single decision the gateway asks for on every request. Input holds
#   metadata only (credential hash or JWT, endpoint, model, token counts,
#   use case, data classification); never message content.
package gateway

import data.gateway.authn
import data.gateway.authz
import data.gateway.logging
import data.gateway.request

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
	"use_case": request.use_case,
	"data_classification": request.classification,
	"reasons": sort(authz.deny),
	"log_level": logging.level(request.team, request.classification),
	"routes": routes,
	"limits": limits,
}

default allow := false

allow if count(authz.deny) == 0

# The routes handed to the gateway: none on a deny.
default routes := []

routes := request.candidate_routes if allow

limits := {
	"tokens_per_minute": object.get(request.team, "tokens_per_minute", 0),
	"max_tokens": object.get(request.team, "max_tokens", 0),
}
