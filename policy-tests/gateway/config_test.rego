# METADATA
# title: Policy data schema
# description: The shipped data.gateway.config follows the documented schema.
package gateway.config_test

import data.gateway.config

_team_fields := {
	"api_keys_sha256", "jwt", "models", "use_cases", "phi", "declassify_use_cases",
	"regions", "log_content", "tokens_per_minute", "max_tokens",
}

test_config_every_team_has_required_fields if {
	every _, team in config.teams {
		every f in _team_fields {
			f in object.keys(team)
		}
	}
}

test_config_api_key_hashes_are_sha256_hex if {
	every _, team in config.teams {
		every digest in team.api_keys_sha256 {
			regex.match(`^[0-9a-f]{64}$`, digest)
		}
	}
}

test_config_team_models_are_served_somewhere if {
	every _, team in config.teams {
		every m in team.models {
			some _, provider in config.providers
			m in provider.models
		}
	}
}

test_config_providers_have_region_and_baa if {
	every _, provider in config.providers {
		is_string(provider.region)
		is_boolean(provider.baa)
	}
}

test_config_equivalence_groups_name_each_model_once if {
	every _, groups in config.equivalence {
		every m in {m | some g in groups; some m in g} {
			count([1 | some g in groups; some x in g; x == m]) == 1
		}
	}
}

test_config_default_use_case_is_entitled if {
	every _, team in config.teams {
		team.default_use_case in team.use_cases
	}
}

test_config_declassify_use_cases_are_entitled if {
	every _, team in config.teams {
		every u in team.declassify_use_cases {
			u in team.use_cases
		}
	}
}

test_config_jwt_lifetime_is_bounded if {
	is_number(config.jwt.max_lifetime_seconds)
	config.jwt.max_lifetime_seconds > 0
	config.jwt.max_lifetime_seconds <= 86400
}

test_config_dollar_budgets_are_non_negative_numbers if {
	every _, team in config.teams {
		every field in {"usd_per_day", "usd_per_month"} {
			_budget_ok(object.get(team, field, null))
		}
		every use_case, budgets in object.get(team, "use_case_usd", {}) {
			use_case in team.use_cases
			every field, value in budgets {
				field in {"usd_per_day", "usd_per_month"}
				_budget_ok(value)
			}
		}
	}
}

_budget_ok(null)

_budget_ok(value) if {
	is_number(value)
	value >= 0
}
