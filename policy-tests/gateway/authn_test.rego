package gateway.authn_test

import data.gateway
import data.gateway.helpers_test as h

test_allow_api_key_maps_to_team if {
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", "discharge-summary", null)
	d.allow
	d.team == "cardiology"
}

test_allow_rotated_second_key_maps_to_same_team if {
	d := gateway.decision with input as h.request_input(crypto.sha256("gw-demo-cardiology-rotated"), "gpt-4o", null, null)
	d.team == "cardiology"
}

test_deny_unknown_api_key_unauthenticated if {
	d := gateway.decision with input as h.request_input(crypto.sha256("not-a-key"), "gpt-4o", null, null)
	not d.allow
	h.reason_codes(d) == {"unauthenticated"}
	d.team == ""
	d.routes == []
}

test_deny_no_credential_unauthenticated if {
	d := gateway.decision with input as {"principal": {"api_key_sha256": null, "jwt": null}, "request": {"model": "gpt-4o"}, "context": {}}
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_key_listed_by_two_teams_unauthenticated if {
	teams := json.patch(data.gateway.config.teams, [{"op": "add", "path": "/marketing/api_keys_sha256/-", "value": h.cardiology_key}])
	d := gateway.decision with input as h.request_input(h.cardiology_key, "gpt-4o", null, null)
		with data.gateway.config.teams as teams
	h.reason_codes(d) == {"unauthenticated"}
}

test_allow_valid_jwt_maps_to_team if {
	tok := h.token(h.fresh_claims("radiology-apps", 600), h.signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	d.allow
	d.team == "radiology-apps"
	d.use_case == "report-drafting"
}

test_deny_jwt_signed_by_other_key_unauthenticated if {
	tok := h.token(h.fresh_claims("radiology-apps", 600), h.other_signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_expired_jwt_unauthenticated if {
	tok := h.token(h.claims("radiology-apps", h.long_ago), h.signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_wrong_audience_unauthenticated if {
	tok := h.token(object.union(h.fresh_claims("radiology-apps", 600), {"aud": "another-service"}), h.signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_for_team_without_jwt_login_unauthenticated if {
	tok := h.token(h.fresh_claims("cardiology", 600), h.signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_garbage_jwt_unauthenticated if {
	d := gateway.decision with input as h.jwt_input("not.a.jwt", "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_with_bad_segment_length_unauthenticated if {
	d := gateway.decision with input as h.jwt_input("abcde.abcde.abcde", "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_not_a_string_unauthenticated if {
	d := gateway.decision with input as h.jwt_input(42, "gpt-4o")
	h.reason_codes(d) == {"unauthenticated"}
}

_jwt_team(claims) := d.team if {
	d := gateway.decision with input as h.jwt_input(h.token(claims, h.signing_jwk), "gpt-4o")
		with data.gateway.config.jwt as object.union(h.jwt_settings, {"max_lifetime_seconds": 3600})
}

test_deny_jwt_without_exp_unauthenticated if {
	_jwt_team(object.remove(h.fresh_claims("radiology-apps", 600), {"exp"})) == ""
}

test_deny_jwt_that_never_expires_in_practice_unauthenticated if {
	_jwt_team(h.claims("radiology-apps", h.far_future)) == "" # no iat: exp - now is decades
}

test_deny_jwt_lifetime_over_the_maximum_unauthenticated if {
	_jwt_team(h.fresh_claims("radiology-apps", 7200)) == ""
}

test_allow_jwt_lifetime_at_the_maximum if {
	_jwt_team(h.fresh_claims("radiology-apps", 3600)) == "radiology-apps"
}

test_allow_jwt_without_iat_when_exp_is_near if {
	_jwt_team(h.claims("radiology-apps", h.now_s + 300)) == "radiology-apps"
}

test_deny_jwt_not_yet_valid_unauthenticated if {
	_jwt_team(object.union(h.fresh_claims("radiology-apps", 600), {"nbf": h.now_s + 300})) == ""
}

test_allow_jwt_nbf_within_clock_skew if {
	_jwt_team(object.union(h.fresh_claims("radiology-apps", 600), {"nbf": h.now_s + 10})) == "radiology-apps"
}

test_allow_jwt_expired_within_clock_skew if {
	_jwt_team(object.union(h.claims("radiology-apps", h.now_s - 10), {"iat": h.now_s - 600})) == "radiology-apps"
}

test_deny_jwt_expired_past_clock_skew_unauthenticated if {
	_jwt_team(object.union(h.claims("radiology-apps", h.now_s - 60), {"iat": h.now_s - 600})) == ""
}

test_deny_jwt_issued_in_the_future_unauthenticated if {
	_jwt_team(object.union(h.claims("radiology-apps", h.now_s + 900), {"iat": h.now_s + 600})) == ""
}

test_deny_jwt_exp_not_a_number_unauthenticated if {
	_jwt_team(object.union(h.fresh_claims("radiology-apps", 600), {"exp": "tomorrow"})) == ""
}

test_deny_jwt_with_numeric_alg_unauthenticated if {
	tok := h.unsigned_token({"alg": 5}, h.fresh_claims("radiology-apps", 600))
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_with_array_header_unauthenticated if {
	tok := h.unsigned_token([1, 2], h.fresh_claims("radiology-apps", 600))
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_alg_none_unauthenticated if {
	tok := h.unsigned_token({"alg": "none"}, h.fresh_claims("radiology-apps", 600))
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_known_api_key_hashes_lists_every_team_key if {
	known := data.gateway.authn.known_api_key_hashes
	h.cardiology_key in known
	h.marketing_key in known
	not crypto.sha256("not-a-key") in known
	count(known) == count([d | some t in data.gateway.config.teams; some d in t.api_keys_sha256])
}
