package system.log_test

import data.system.log

event(classification, jwt) := {
	"decision_id": "d1",
	"path": "gateway/decision",
	"input": {
		"principal": {"api_key_sha256": null, "jwt": jwt},
		"request": {"endpoint": "chat.completions", "model": "gpt-4o", "stream": false, "max_tokens": 10, "prompt_tokens": 5},
		"context": {"use_case": null, "data_classification": null, "client_ip": "10.1.2.3"},
	},
	"result": {"allow": true, "data_classification": classification},
}

test_mask_erases_jwt_always if {
	"/input/principal/jwt" in log.mask with input as event("none", "eyJ.a.b")
}

test_mask_redacts_client_ip_of_phi_requests if {
	masks := log.mask with input as event("phi", null)
	{"op": "upsert", "path": "/input/context/client_ip", "value": "redacted"} in masks
}

test_mask_keeps_client_ip_of_non_phi_requests if {
	masks := log.mask with input as event("none", null)
	count({m | some m in masks; is_object(m)}) == 0
}

test_drop_keeps_every_decision if {
	not log.drop with input as event("phi", null)
}

test_mask_replaces_a_use_case_the_policy_did_not_accept if {
	e := json.patch(event("phi", null), [
		{"op": "replace", "path": "/input/context/use_case", "value": "Patient Jane Doe"},
		{"op": "add", "path": "/result/use_case", "value": ""},
	])
	{"op": "upsert", "path": "/input/context/use_case", "value": "not-entitled"} in log.mask with input as e
}

test_mask_keeps_an_accepted_use_case if {
	e := json.patch(event("phi", null), [
		{"op": "replace", "path": "/input/context/use_case", "value": "discharge-summary"},
		{"op": "add", "path": "/result/use_case", "value": "discharge-summary"},
	])
	masks := log.mask with input as e
	every m in masks {
		not m.path == "/input/context/use_case"
	}
}

test_mask_replaces_the_use_case_of_a_failed_decision if {
	e := json.patch(event("phi", null), [
		{"op": "replace", "path": "/input/context/use_case", "value": "anything"},
		{"op": "remove", "path": "/result"},
	])
	{"op": "upsert", "path": "/input/context/use_case", "value": "not-entitled"} in log.mask with input as e
}
