# METADATA
# title: Decision log masking
# description: |
#   What the decision log may keep, evaluated on every decision log event the
#   way OPA's own decision logger does (input = the event). The gateway's policy
#   input is metadata only, but two fields could still point at a patient:
#   a JWT (SMART-on-FHIR launch tokens carry a patient claim, and any token
#   names its subject) is erased; the client address of a PHI request (a
#   bedside device) is replaced. The credential hash, model, token counts, use
#   case and the whole result stay, so auditors can see who decided what.
package system.log

# METADATA
# title: Erase
# description: JSON pointers removed from every event.
mask contains "/input/principal/jwt"

# METADATA
# title: Redact the client address of PHI requests
# description: Kept as a marker so the event still shows an address was present.
mask contains {"op": "upsert", "path": "/input/context/client_ip", "value": "redacted"} if {
	input.result.data_classification == "phi"
	is_string(input.input.context.client_ip)
}

# METADATA
# title: Drop
# description: Events never written. The gateway keeps every decision, so nothing is dropped.
default drop := false

# METADATA
# title: Replace a use case the policy did not accept
# description: |
#   The X-Use-Case header is free text from the client until the policy maps it
#   to one of the team's use cases. One that did not map (or any, when the
#   decision failed) is replaced, so nothing a client typed is kept.
mask contains {"op": "upsert", "path": "/input/context/use_case", "value": "not-entitled"} if {
	is_string(input.input.context.use_case)
	not _use_case_accepted
}

_use_case_accepted if input.input.context.use_case == input.result.use_case
