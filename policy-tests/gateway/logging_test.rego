package gateway.logging_test

import data.gateway
import data.gateway.helpers_test as h

test_log_level_content_for_opted_in_team_without_phi if {
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", null, "none")
	d.log_level == "content"
}

test_log_level_metadata_for_phi_even_if_opted_in if {
	teams := json.patch(data.gateway.config.teams, [{"op": "replace", "path": "/cardiology/log_content", "value": true}])
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", null, null)
		with data.gateway.config.teams as teams
	d.log_level == "metadata"
}

test_log_level_metadata_for_team_not_opted_in if {
	d := gateway.decision with input as h.request_input(h.eu_research_key, "gpt-4o", null, "none")
	d.log_level == "metadata"
}

test_log_level_metadata_when_unauthenticated if {
	d := gateway.decision with input as h.request_input(crypto.sha256("nobody"), "gpt-4o", null, null)
	d.log_level == "metadata"
}
