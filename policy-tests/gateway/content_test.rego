# METADATA
# title: Content signal tests
# description: Each verdict the content signals can lead to, for teams cleared for PHI and not.
package gateway.content_test

import data.gateway
import data.gateway.helpers_test as h

with_signals(base, signals) := json.patch(base, [{"op": "add", "path": "/content", "value": {"signals": signals, "chars": 400, "error": false}}])

scan_failed(base) := json.patch(base, [{"op": "add", "path": "/content", "value": {"signals": {}, "chars": 400, "error": true}}])

marketing := h.request_input(h.marketing_key, "gpt-4o-mini", "copywriting", null)

cardiology_education := h.request_input(h.cardiology_key, "gpt-4o", "patient-education", "none")

eu := h.request_input(h.eu_research_key, "gpt-4o", "literature-review", null)

test_clean_request_is_not_affected if {
	d := gateway.decision with input as with_signals(marketing, {"email": 0, "phone": 1})
	d.allow
	d.flags == []
	d.redact == []
	d.log_level == "content"
}

test_team_not_cleared_for_phi_is_denied_when_phi_is_detected if {
	d := gateway.decision with input as with_signals(marketing, {"ssn": 1})
	not d.allow
	h.reason_codes(d) == {"phi_detected"}
	every r in d.reasons {
		not contains(r.message, "123")
	}
}

test_a_failed_scan_counts_as_phi if {
	d := gateway.decision with input as scan_failed(marketing)
	h.reason_codes(d) == {"phi_detected"}
	c := gateway.decision with input as scan_failed(cardiology_education)
	c.data_classification == "phi"
}

test_audit_mode_allows_and_flags_with_metadata_logs if {
	teams := object.union(data.gateway.config.teams, {"marketing": object.union(data.gateway.config.teams.marketing, {"content_mode": "audit"})})
	d := gateway.decision with input as with_signals(marketing, {"mrn": 2})
		with data.gateway.config.teams as teams
	d.allow
	d.flags == ["phi_detected"]
	d.log_level == "metadata"
}

test_phi_cleared_team_is_phi_whatever_the_header_says if {
	clean := gateway.decision with input as with_signals(cardiology_education, {})
	clean.data_classification == "none"
	"openai-us" in h.route_providers(clean)
	d := gateway.decision with input as with_signals(cardiology_education, {"dob": 1, "icd10": 1})
	d.allow
	d.data_classification == "phi"
	d.log_level == "metadata"
	every r in d.routes {
		data.gateway.config.providers[r.provider].baa == true
	}
}

test_redact_verdict_for_teams_set_up_that_way if {
	d := gateway.decision with input as with_signals(eu, {"ssn": 1, "mrn": 1, "email": 1})
	d.allow
	d.redact == ["mrn", "ssn"]
	d.flags == []
}

test_phi_outside_the_redact_list_is_still_denied if {
	teams := object.union(data.gateway.config.teams, {"eu-research": object.union(data.gateway.config.teams["eu-research"], {"redact": ["ssn"]})})
	d := gateway.decision with input as with_signals(eu, {"ssn": 1, "dob": 1})
		with data.gateway.config.teams as teams
	h.reason_codes(d) == {"phi_detected"}
}

test_phi_types_come_from_policy_data if {
	content := object.union(data.gateway.config.content, {"phi_types": ["email"]})
	d := gateway.decision with input as with_signals(marketing, {"email": 1})
		with data.gateway.config.content as content
	h.reason_codes(d) == {"phi_detected"}
	ok := gateway.decision with input as with_signals(marketing, {"ssn": 1})
		with data.gateway.config.content as content
	ok.allow
}
