# METADATA
# title: Test helpers
# description: Input builders shared by the policy tests.
package gateway.helpers_test

# sha256 of the demo API keys listed in the README.
cardiology_key := crypto.sha256("gw-demo-cardiology")

eu_research_key := crypto.sha256("gw-demo-eu-research")

marketing_key := crypto.sha256("gw-demo-marketing")

request_input(key_hash, model, use_case, classification) := {
	"principal": {"api_key_sha256": key_hash, "jwt": null},
	"request": {"endpoint": "chat.completions", "model": model, "stream": false, "max_tokens": 256, "prompt_tokens": 40},
	"context": {"use_case": use_case, "data_classification": classification, "client_ip": "127.0.0.1"},
}

jwt_input(token, model) := {
	"principal": {"api_key_sha256": null, "jwt": token},
	"request": {"endpoint": "chat.completions", "model": model, "stream": true, "max_tokens": 256, "prompt_tokens": 40},
	"context": {"use_case": null, "data_classification": null, "client_ip": "127.0.0.1"},
}

# Test-only EC P-256 key pair (never used outside these tests).
signing_jwk := {"kty": "EC", "crv": "P-256", "x": "NSU5yaIV1kCI2Te_1OgjgKhgGO4iVJn1uppRqxW6ACU", "y": "QWm3c_yvwtvymgrPmt0L1ut4PvQvXxe3dRcUicxBOGA", "d": "qk3U9a7JTvvh8rUWW7A2sobFBxnzJf9wnX532akKJWY"}

other_signing_jwk := {"kty": "EC", "crv": "P-256", "x": "qcvK38dstecCjfCN8FNUxRzEB-1ANIH39YRVKfUAwKg", "y": "2lwYmhct3SttV-d1EgR4Nk_zG0wEFzvGvsHhRIS4J-c", "d": "IHaNy8GENy-nET6dMQkUH7uGJuIZCqzoixH0lpVOl5w"}

jwt_settings := {
	"issuer": "https://idp.test",
	"audience": "llm-gateway",
	"team_claim": "team",
	"keys": "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"NSU5yaIV1kCI2Te_1OgjgKhgGO4iVJn1uppRqxW6ACU\", \"y\": \"QWm3c_yvwtvymgrPmt0L1ut4PvQvXxe3dRcUicxBOGA\"}]}",
}

token(claims, jwk) := io.jwt.encode_sign({"alg": "ES256", "typ": "JWT"}, claims, jwk)

claims(team, exp) := {"iss": "https://idp.test", "aud": "llm-gateway", "team": team, "sub": "app-1", "exp": exp}

# Claims issued now, valid for `ttl` seconds.
fresh_claims(team, ttl) := object.union(claims(team, now_s + ttl), {"iat": now_s})

now_s := round(time.now_ns() / 1000000000)

# A token with a header of our choosing and no valid signature.
unsigned_token(header, payload) := concat(".", [
	base64url.encode_no_pad(json.marshal(header)),
	base64url.encode_no_pad(json.marshal(payload)),
	"c2lnbmF0dXJl",
])

# 2100-01-01 and 2001-09-09, in seconds.
far_future := 4102444800

long_ago := 1000000000

reason_codes(decision) := {r.code | some r in decision.reasons}

route_providers(decision) := [r.provider | some r in decision.routes]
