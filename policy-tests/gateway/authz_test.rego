package gateway.authz_test

import data.gateway
import data.gateway.helpers_test as h

test_deny_model_not_allowed if {
	d := gateway.decision with input as h.request_input(h.eu_research_key, "claude-sonnet-4", null, null)
	not d.allow
	h.reason_codes(d) == {"model_not_allowed"}
}

test_deny_use_case_not_allowed if {
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", "discharge-summary", null)
	h.reason_codes(d) == {"use_case_not_allowed"}
}

test_deny_use_case_not_allowed_never_echoes_the_header if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "Patient-Jane-Doe", null)
	h.reason_codes(d) == {"use_case_not_allowed"}
	d.use_case == ""
}

test_deny_use_case_required_without_default if {
	teams := json.remove(data.gateway.config.teams, ["marketing/default_use_case"])
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", null, null)
		with data.gateway.config.teams as teams
	h.reason_codes(d) == {"use_case_required"}
}

test_allow_default_use_case_when_header_absent if {
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", null, null)
	d.allow
	d.use_case == "copywriting"
}

test_deny_phi_not_permitted_for_non_phi_team if {
	d := gateway.decision with input as h.request_input(h.eu_research_key, "gpt-4o", null, "phi")
	h.reason_codes(d) == {"phi_not_permitted"}
	d.log_level == "metadata"
}

test_deny_unknown_classification_treated_as_phi if {
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", null, "secret-ish")
	d.data_classification == "phi"
	"phi_not_permitted" in h.reason_codes(d)
}

test_deny_max_tokens_over_cap if {
	inp := json.patch(h.request_input(h.marketing_key, "gpt-4o-mini", null, null), [{"op": "replace", "path": "/request/max_tokens", "value": 1025}])
	d := gateway.decision with input as inp
	h.reason_codes(d) == {"max_tokens_over_cap"}
}

test_allow_max_tokens_at_cap if {
	inp := json.patch(h.request_input(h.marketing_key, "gpt-4o-mini", null, null), [{"op": "replace", "path": "/request/max_tokens", "value": 1024}])
	d := gateway.decision with input as inp
	d.allow
}

test_deny_no_compliant_route_when_no_baa_provider_in_region if {
	providers := {"openai-us": {"region": "us", "baa": false, "priority": 10, "models": ["gpt-4o"]}}
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "clinical-notes", null)
		with data.gateway.config.providers as providers
	h.reason_codes(d) == {"no_compliant_route"}
	d.routes == []
}

test_deny_reasons_carry_messages_without_request_content if {
	inp := h.request_input(h.eu_research_key, "claude-sonnet-4", "unlisted-use-case", "phi")
	d := gateway.decision with input as inp
	count(d.reasons) == 3
	every r in d.reasons {
		not contains(r.message, "claude-sonnet-4")
		not contains(r.message, "unlisted-use-case")
	}
}

test_allow_limits_come_from_team if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", null, null)
	d.limits.tokens_per_minute == 200000
	d.limits.max_tokens == 4096
}

test_deny_phi_team_declassifying_to_none if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "discharge-summary", "none")
	h.reason_codes(d) == {"phi_declassification_not_granted"}
	d.routes == []
}

test_deny_phi_team_declassifying_to_pii if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "clinical-notes", "pii")
	h.reason_codes(d) == {"phi_declassification_not_granted"}
}

test_deny_phi_team_declassifying_with_default_use_case if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", null, "none")
	h.reason_codes(d) == {"phi_declassification_not_granted"}
}

test_allow_phi_team_declassifying_where_granted if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "patient-education", "none")
	d.allow
	d.data_classification == "none"
	"openai-us" in h.route_providers(d) # compliance allowed it: non-BAA routes are open for this use case
}

test_allow_phi_team_declaring_phi_anywhere if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "discharge-summary", "phi")
	d.allow
	d.data_classification == "phi"
}

test_allow_non_phi_team_declaring_none if {
	d := gateway.decision with input as h.request_input(h.eu_research_key, "gpt-4o", "literature-review", "none")
	d.allow
}

# Dollar budgets travel in the decision's limits: the team's, and the use case's when it has one.
test_dollar_budgets_in_the_limits if {
	eu := gateway.decision with input as h.request_input(h.eu_research_key, "gpt-4o", "literature-review", null)
	eu.limits.usd_per_day == 25
	eu.limits.usd_per_month == 500
	eu.limits.use_case_usd_per_day == null

	education := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "patient-education", "none")
	education.limits.use_case_usd_per_day == 10
	education.limits.usd_per_day == null

	notes := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "clinical-notes", null)
	notes.limits.use_case_usd_per_day == null
}
