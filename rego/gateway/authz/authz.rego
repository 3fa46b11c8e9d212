# METADATA
# title: Authorization
# description: |
#   Every reason to refuse a request. Each reason's code names the rule that
#   made it (custom.code); messages name teams and rules, never request content.
package gateway.authz

import data.gateway.authn
import data.gateway.content
import data.gateway.request

_authenticated if authn.team != ""

# METADATA
# title: Unauthenticated
# description: No API key or JWT maps to a known team.
# custom:
#   code: unauthenticated
deny contains {
	"code": "unauthenticated",
	"message": "no valid credential for a known team",
} if {
	not _authenticated
}

# METADATA
# title: Use case required
# description: The request names no use case and the team has no default one.
# custom:
#   code: use_case_required
deny contains {
	"code": "use_case_required",
	"message": "set the X-Use-Case header",
} if {
	_authenticated
	request.requested_use_case == ""
}

# METADATA
# title: Use case not allowed
# description: The team is not entitled to this use case.
# custom:
#   code: use_case_not_allowed
deny contains {
	"code": "use_case_not_allowed",
	"message": sprintf("team %s is not entitled to this use case", [authn.team]),
} if {
	_authenticated
	request.requested_use_case != ""
	not request.requested_use_case in request.team.use_cases
}

# METADATA
# title: Model not allowed
# description: The team is not entitled to the requested model.
# custom:
#   code: model_not_allowed
deny contains {
	"code": "model_not_allowed",
	"message": sprintf("team %s is not entitled to this model", [authn.team]),
} if {
	_authenticated
	not input.request.model in request.team.models
}

# METADATA
# title: PHI not permitted
# description: PHI-classified requests only from teams cleared for PHI.
# custom:
#   code: phi_not_permitted
deny contains {
	"code": "phi_not_permitted",
	"message": sprintf("team %s is not cleared for PHI", [authn.team]),
} if {
	_authenticated
	request.classification == "phi"
	not request.team.phi == true
}

# METADATA
# title: PHI declassification not granted
# description: |
#   A team cleared for PHI declared a lower classification (pii or none) for a
#   use case compliance has not listed in its declassify_use_cases. Without this
#   rule a PHI team could route its own requests to providers without a BAA, or
#   turn on content logging, with one header.
# custom:
#   code: phi_declassification_not_granted
deny contains {
	"code": "phi_declassification_not_granted",
	"message": sprintf(
		"team %s handles PHI: a lower classification is allowed only in its declassify_use_cases",
		[authn.team],
	),
} if {
	_authenticated
	request.team.phi == true
	input.context.data_classification in {"pii", "none"}
	not request.requested_use_case in object.get(request.team, "declassify_use_cases", [])
}

# METADATA
# title: max_tokens over the cap
# description: The request asks for more completion tokens than the team's cap.
# custom:
#   code: max_tokens_over_cap
deny contains {
	"code": "max_tokens_over_cap",
	"message": sprintf("max_tokens is over team %s's cap of %d", [authn.team, request.team.max_tokens]),
} if {
	_authenticated
	is_number(input.request.max_tokens)
	input.request.max_tokens > request.team.max_tokens
}

# METADATA
# title: No compliant route
# description: |
#   No provider satisfies PHI (BAA), residency (team regions) and the model
#   entitlement for this request, so it cannot go anywhere.
# custom:
#   code: no_compliant_route
deny contains {
	"code": "no_compliant_route",
	"message": "no provider satisfies this request's PHI and residency rules",
} if {
	_authenticated
	input.request.model in request.team.models
	count(request.compliant_routes) == 0
}

# METADATA
# title: Follow-up provider not allowed
# description: |
#   A follow-up must go to the provider holding the earlier response, and the policy
#   no longer routes this request there (PHI, residency or entitlement changed). It is
#   denied rather than rerouted: no other provider holds that response.
# custom:
#   code: follow_up_provider_not_allowed
deny contains {
	"code": "follow_up_provider_not_allowed",
	"message": "the provider holding the earlier response is not among this request's allowed routes",
} if {
	_authenticated
	request.pinned_provider != null
	count(request.compliant_routes) > 0
	count(request.candidate_routes) == 0
}

# METADATA
# title: PHI detected
# description: |
#   A team not cleared for PHI sent content the detectors found PHI in (or that
#   could not be scanned), and neither audit mode nor the team's redact list
#   covers it. The message names the signal types, never the content.
# custom:
#   code: phi_detected
deny contains {
	"code": "phi_detected",
	"message": sprintf(
		"team %s is not cleared for PHI and this request carries it (%s)",
		[authn.team, concat(", ", sort([k | some k in content.present; k in content.phi_types]))],
	),
} if {
	_authenticated
	not request.team.phi == true
	request.content_mode != "audit"
	request.unredacted_phi
}
