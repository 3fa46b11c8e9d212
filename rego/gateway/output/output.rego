# METADATA
# title: Output decision
# description: |
#   The second decision, on a whole (non-stream) answer: the gateway runs the same
#   detectors on the completion and asks data.gateway.output_decision with
#   input.output ({signals, chars, error}) beside the request's input. Verdicts:
#   allow; redact (the listed signal types are replaced before the client sees
#   them); block (the client gets 403 policy_denied, output_phi_detected).
#   Streams are decided on their input only (see the README).
package gateway.output

import data.gateway.authn
import data.gateway.config
import data.gateway.content

team := object.get(config.teams, authn.team, {})

default signals := {}

signals := input.output.signals if is_object(input.output.signals)

present := {kind | some kind, n in signals; n > 0}

phi_present := {kind | some kind in present; kind in content.phi_types}

scan_failed if input.output.error == true

# METADATA
# title: Output verdict
# description: allow, redact or block; PHI teams always allow; other teams redact what their list covers, else block.
default verdict := "allow"

verdict := "block" if {
	not team.phi == true
	_unredactable
}

verdict := "redact" if {
	not team.phi == true
	not _unredactable
	count(redact) > 0
}

_unredactable if scan_failed

_unredactable if {
	some kind in phi_present
	not kind in object.get(team, "redact", [])
}

redact := sort([kind | some kind in object.get(team, "redact", []); kind in present])

decision := {
	"verdict": verdict,
	"redact": redact,
	"reasons": [r | verdict == "block"; r := _blocked],
}

_blocked := {"code": "output_phi_detected", "message": "the answer carries PHI this team may not receive"}
