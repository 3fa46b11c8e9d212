# METADATA
# title: Request facts
# description: |
#   What the policy derives from a request's metadata and the policy data, shared
#   by the decision (main.rego) and the deny rules (authz): the team's entry, the
#   use case, the data classification and the candidate routes. Imports only
#   authn, config and routing, so nothing imports back into it.
package gateway.request

import data.gateway.authn
import data.gateway.config
import data.gateway.content
import data.gateway.routing

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
#   PHI when a team cleared for PHI sends content with PHI signals, whatever the
#   header says. Otherwise the X-Data-Classification header when it names a known
#   class; without it a PHI team's request is PHI, any other team's is none.
#   Anything unknown is PHI.
default classification := "phi"

classification := "phi" if _content_is_phi

classification := stated_classification if not _content_is_phi

_content_is_phi if {
	team.phi == true
	content.phi_detected
}

# The classification the request declared (or its team's default), before the content is considered.
default stated_classification := "phi"

stated_classification := input.context.data_classification if {
	input.context.data_classification in {"phi", "pii", "none"}
}

stated_classification := "phi" if {
	not _classification_declared
	team.phi == true
}

stated_classification := "none" if {
	not _classification_declared
	team.phi == false
}

# Any non-null header counts as declared, so an unknown value stays at the default: PHI.
_classification_declared if input.context.data_classification != null

# METADATA
# title: Compliant routes
# description: |
#   Every route the data allows for this request (PHI, residency, entitlement), before
#   the allow/deny verdict. Embeddings fail over only to the same model at another
#   provider: vectors from different models are not interchangeable.
compliant_routes := routing.routes(
	team,
	input.request.model,
	use_case,
	classification,
	config.providers,
	_equivalence,
)

default _equivalence := {}

_equivalence := config.equivalence if input.request.endpoint != "embeddings"

# METADATA
# title: Pinned provider
# description: |
#   A follow-up (Responses previous_response_id, a stored response) can only go to
#   the provider holding the earlier response; null for any other request.
default pinned_provider := null

pinned_provider := input.request.provider if is_string(input.request.provider)

# The routes this request may take: the compliant ones, only to the pinned provider when there is one.
candidate_routes := [r | some r in compliant_routes; _on_pinned(r)]

_on_pinned(_) if pinned_provider == null

_on_pinned(r) if r.provider == pinned_provider

# METADATA
# title: Content mode
# description: |
#   enforce (default): a team not cleared for PHI whose request carries PHI is
#   denied (phi_detected). audit: it is allowed and flagged, with metadata-only logs.
content_mode := object.get(team, "content_mode", "enforce")

# METADATA
# title: Flags
# description: What the decision notes without denying (audit mode).
default flags := []

flags := ["phi_detected"] if {
	content.phi_detected
	not team.phi == true
	content_mode == "audit"
}

# METADATA
# title: Redact verdict
# description: The signal types present that the team's data says to replace before forwarding.
redact := sort([kind | some kind in object.get(team, "redact", []); kind in content.present])

# PHI in the request that redaction will not remove (or content nobody could scan).
unredacted_phi if {
	some kind in content.present
	kind in content.phi_types
	not kind in object.get(team, "redact", [])
}

unredacted_phi if content.scan_failed
