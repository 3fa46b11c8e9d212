# METADATA
# title: Output decision tests
# description: Each output verdict.
package gateway.output_test

import data.gateway
import data.gateway.helpers_test as h

answer(base, signals, failed) := json.patch(base, [{"op": "add", "path": "/output", "value": {"signals": signals, "chars": 100, "error": failed}}])

marketing := h.request_input(h.marketing_key, "gpt-4o-mini", "copywriting", null)

eu := h.request_input(h.eu_research_key, "gpt-4o", "literature-review", null)

cardiology := h.request_input(h.cardiology_key, "gpt-4o", "clinical-notes", null)

test_clean_answer_is_allowed if {
	d := gateway.output_decision with input as answer(marketing, {"phone": 1}, false)
	d.verdict == "allow"
	d.reasons == []
}

test_phi_in_an_answer_to_a_team_not_cleared_is_blocked if {
	d := gateway.output_decision with input as answer(marketing, {"ssn": 1}, false)
	d.verdict == "block"
	{r.code | some r in d.reasons} == {"output_phi_detected"}
}

test_a_failed_scan_blocks if {
	d := gateway.output_decision with input as answer(marketing, {}, true)
	d.verdict == "block"
}

test_redaction_for_teams_set_up_that_way if {
	d := gateway.output_decision with input as answer(eu, {"mrn": 1, "email": 1}, false)
	d.verdict == "redact"
	d.redact == ["mrn"]
}

test_phi_teams_receive_phi if {
	d := gateway.output_decision with input as answer(cardiology, {"ssn": 2}, true)
	d.verdict == "allow"
}
