package gateway.routing_test

import data.gateway
import data.gateway.helpers_test as h

test_route_phi_only_baa_providers if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "discharge-summary", null)
	d.data_classification == "phi"
	h.route_providers(d) == ["azure-us-east", "anthropic-us"]
	every r in d.routes {
		data.gateway.config.providers[r.provider].baa == true
	}
}

test_route_phi_team_declaring_none_may_use_non_baa_only_where_granted if {
	granted := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "patient-education", "none")
	"openai-us" in h.route_providers(granted)
	refused := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "discharge-summary", "none")
	h.route_providers(refused) == []
}

test_route_pii_needs_no_baa_but_keeps_residency if {
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", null, "pii")
	"openai-us" in h.route_providers(d)
	d.log_level == "metadata"
}

test_route_residency_eu_team_only_eu_providers if {
	d := gateway.decision with input as h.request_input(h.eu_research_key, "gpt-4o", null, null)
	h.route_providers(d) == ["azure-eu-west"]
}

test_route_residency_us_team_never_eu if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", null, null)
	every r in d.routes {
		data.gateway.config.providers[r.provider].region == "us"
	}
}

test_route_equivalence_fallback_model_after_primary if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "claude-sonnet-4", "discharge-summary", null)
	d.routes == [{"provider": "anthropic-us", "model": "claude-sonnet-4"}, {"provider": "azure-us-east", "model": "gpt-4o"}]
}

test_route_no_fallback_model_without_validated_equivalence if {
	d := gateway.decision with input as h.request_input(h.eu_research_key, "gpt-4o", "literature-review", null)
	every r in d.routes {
		r.model == "gpt-4o"
	}
}

test_route_equivalence_is_per_use_case if {
	equivalence := object.union(data.gateway.config.equivalence, {"clinical-notes": []})
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "clinical-notes", null)
		with data.gateway.config.equivalence as equivalence
	h.route_providers(d) == ["azure-us-east"]
}

test_route_fallback_model_needs_team_entitlement if {
	teams := json.patch(data.gateway.config.teams, [{"op": "replace", "path": "/cardiology/models", "value": ["gpt-4o"]}])
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "discharge-summary", null)
		with data.gateway.config.teams as teams
	h.route_providers(d) == ["azure-us-east"]
}

test_route_priority_orders_providers_of_same_model if {
	d := gateway.decision with input as h.request_input(h.marketing_key, "gpt-4o-mini", null, null)
	[r | some r in d.routes; r.model == "gpt-4o-mini"] == [
		{"provider": "openai-us", "model": "gpt-4o-mini"},
		{"provider": "azure-eu-west", "model": "gpt-4o-mini"},
		{"provider": "azure-us-east", "model": "gpt-4o-mini"},
	]
}
