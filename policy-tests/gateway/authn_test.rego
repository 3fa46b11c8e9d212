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
	tok := h.token(h.claims("radiology-apps", h.far_future), h.test_signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	d.allow
	d.team == "radiology-apps"
	d.use_case == "report-drafting"
}

test_deny_jwt_signed_by_other_key_unauthenticated if {
	tok := h.token(h.claims("radiology-apps", h.far_future), h.other_signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_expired_jwt_unauthenticated if {
	tok := h.token(h.claims("radiology-apps", h.long_ago), h.test_signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_wrong_audience_unauthenticated if {
	tok := h.token(object.union(h.claims("radiology-apps", h.far_future), {"aud": "another-service"}), h.test_signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_for_team_without_jwt_login_unauthenticated if {
	tok := h.token(h.claims("cardiology", h.far_future), h.test_signing_jwk)
	d := gateway.decision with input as h.jwt_input(tok, "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_garbage_jwt_unauthenticated if {
	d := gateway.decision with input as h.jwt_input("not.a.jwt", "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_with_bad_segment_length_unauthenticated if {
	d := gateway.decision with input as h.jwt_input("abcde.abcde.abcde", "gpt-4o")
		with data.gateway.config.jwt as h.test_jwt_settings
	h.reason_codes(d) == {"unauthenticated"}
}

test_deny_jwt_not_a_string_unauthenticated if {
	d := gateway.decision with input as h.jwt_input(42, "gpt-4o")
	h.reason_codes(d) == {"unauthenticated"}
}
