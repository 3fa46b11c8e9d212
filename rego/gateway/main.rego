# METADATA
# title: Gateway policy
# description: |
#   The single decision the gateway asks for on every request. Input holds
#   metadata only (credential hash or JWT, endpoint, model, token counts,
#   use case, data classification); never message content.
package gateway

import data.gateway.authn
import data.gateway.authz
import data.gateway.content
import data.gateway.logging
import data.gateway.output
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
	"log_level": logging.level(request.team, _log_classification),
	"routes": routes,
	"limits": limits,
	"flags": request.flags,
	"redact": redact,
}

# Content with PHI signals is never logged, whatever the classification (audit mode included).
default _log_classification := "phi"

_log_classification := request.classification if not content.phi_detected

# The redact verdict, on an allow only.
default redact := []

redact := request.redact if allow

default allow := false

allow if count(authz.deny) == 0

# The routes handed to the gateway: none on a deny.
default routes := []

routes := request.candidate_routes if allow

# METADATA
# title: Limits
# description: |
#   The team's token limits, and its dollar budgets when compliance set them: per
#   team (usd_per_day, usd_per_month) and per use case (use_case_usd.<use case>).
#   null means no budget in that window.
limits := {
	"tokens_per_minute": object.get(request.team, "tokens_per_minute", 0),
	"max_tokens": object.get(request.team, "max_tokens", 0),
	"usd_per_day": object.get(request.team, "usd_per_day", null),
	"usd_per_month": object.get(request.team, "usd_per_month", null),
	"use_case_usd_per_day": object.get(_use_case_budget, "usd_per_day", null),
	"use_case_usd_per_month": object.get(_use_case_budget, "usd_per_month", null),
}

_use_case_budget := object.get(object.get(request.team, "use_case_usd", {}), request.use_case, {})

# METADATA
# title: Output decision
# description: The verdict on a whole answer's content signals (see output/output.rego).
# entrypoint: true
output_decision := output.decision
