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

# Embeddings fail over only to the same model at another provider, even where the use case lists
# equivalent models: vectors from different models are not interchangeable.
test_embeddings_fail_over_only_to_the_same_model if {
	groups := {"clinical-notes": [["text-embedding-3-small", "text-embedding-3-large"]]}
	providers := object.union(data.gateway.config.providers, {"azure-us-east": {
		"region": "us", "baa": true, "priority": 20,
		"models": ["gpt-4o", "text-embedding-3-small", "text-embedding-3-large"],
	}})
	teams := object.union(data.gateway.config.teams, {"cardiology": object.union(
		data.gateway.config.teams.cardiology,
		{"models": ["text-embedding-3-small", "text-embedding-3-large"]},
	)})
	embed := json.patch(
		h.request_input(h.cardiology_key, "text-embedding-3-small", "clinical-notes", null),
		[{"op": "replace", "path": "/request/endpoint", "value": "embeddings"}],
	)
	decision := gateway.decision with input as embed
		with data.gateway.config.equivalence as groups
		with data.gateway.config.providers as providers
		with data.gateway.config.teams as teams
	decision.allow
	{r.model | some r in decision.routes} == {"text-embedding-3-small"}

	# the same request as chat would fail over to the equivalent model
	chat := gateway.decision with input as h.request_input(h.cardiology_key, "text-embedding-3-small", "clinical-notes", null)
		with data.gateway.config.equivalence as groups
		with data.gateway.config.providers as providers
		with data.gateway.config.teams as teams
	"text-embedding-3-large" in {r.model | some r in chat.routes}
}

# A non-PHI team's embeddings may go to every provider in its regions serving the model, in priority order.
test_embeddings_route_to_every_provider_of_the_model if {
	embed := json.patch(
		h.request_input(h.marketing_key, "text-embedding-3-small", "copywriting", null),
		[{"op": "replace", "path": "/request/endpoint", "value": "embeddings"}],
	)
	decision := gateway.decision with input as embed
	decision.allow
	h.route_providers(decision) == ["openai-us", "azure-eu-west", "azure-us-east"]
}

# A follow-up is pinned to the provider holding the earlier response.
test_follow_up_goes_only_to_its_provider if {
	follow := json.patch(
		h.request_input(h.marketing_key, "gpt-4o", "copywriting", null),
		[
			{"op": "replace", "path": "/request/endpoint", "value": "responses"},
			{"op": "add", "path": "/request/provider", "value": "azure-us-east"},
		],
	)
	decision := gateway.decision with input as follow
	decision.allow
	count(decision.routes) > 0
	{p | some p in h.route_providers(decision)} == {"azure-us-east"}
}

# When the policy no longer routes the request to that provider, the follow-up is denied, not rerouted.
test_follow_up_to_a_provider_not_allowed_is_denied if {
	follow := json.patch(
		h.request_input(h.cardiology_key, "gpt-4o", "clinical-notes", null),
		[
			{"op": "replace", "path": "/request/endpoint", "value": "responses"},
			{"op": "add", "path": "/request/provider", "value": "openai-us"},
		],
	)
	decision := gateway.decision with input as follow
	not decision.allow
	decision.routes == []
	h.reason_codes(decision) == {"follow_up_provider_not_allowed"}
}
