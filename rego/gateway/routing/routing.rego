# METADATA
# title: Routing
# description: |
#   Ordered routes for a request. The requested model comes first, then the
#   models compliance validated as equivalent to it for this use case, in the
#   order listed. Each model goes to every provider that serves it, sits in
#   one of the team's regions, and has a BAA when the request is PHI; ties
#   break on provider priority, then name. Never a route that breaks PHI or
#   residency.
package gateway.routing

# METADATA
# title: Routes
# description: Ordered [{"provider", "model"}] for one request.
routes(team, model, use_case, classification, providers, equivalence) := [route |
	some entry in sort(candidates(team, model, use_case, classification, providers, equivalence))
	route := {"provider": entry[2], "model": entry[3]}
]

# METADATA
# title: Candidates
# description: "[model rank, provider priority, provider, model] for every compliant pairing."
candidates(team, model, use_case, classification, providers, equivalence) := {[rank, priority, name, m] |
	eligible := eligible_providers(team, classification, providers)
	some m, rank in ranked_models(model, object.get(equivalence, use_case, []))
	m in team.models
	some name, priority in eligible
	m in providers[name].models
}

# METADATA
# title: Eligible providers
# description: Providers in one of the team's regions, with a BAA when the request is PHI, and their priority.
eligible_providers(team, classification, providers) := {name: priority |
	acceptable := acceptable_baa(classification)
	some name, provider in providers
	provider.region in team.regions
	provider.baa in acceptable
	priority := object.get(provider, "priority", 100)
}

# METADATA
# title: Ranked models
# description: The requested model at rank 0, then its validated equivalents for the use case.
ranked_models(model, groups) := object.union({model: 0}, equivalents) if {
	equivalents := {m: rank |
		some group in groups
		model in group
		some i, m in group
		m != model
		rank := i + 1
	}
}

# METADATA
# title: Acceptable BAA values
# description: PHI may only go to a provider with a signed BAA; anything else may go to any provider.
default acceptable_baa(_) := {true, false}

acceptable_baa("phi") := {true}
