# METADATA
# title: Content signals
# description: |
#   What kind of data a request carries, from the gateway's detectors: counts per
#   type in input.content.signals, never the text. Which types make a request PHI
#   is policy data (content.phi_types); a scan that failed counts as PHI (fail
#   closed). Imports only config, so request, authz and main can all use it.
package gateway.content

import data.gateway.config

# METADATA
# title: PHI signal types
# description: Signal types that make a request PHI; content.phi_types in the policy data, else this default.
default phi_types := {"ssn", "mrn", "mbi", "dob", "address", "icd10"}

phi_types := {t | some t in config.content.phi_types}

# The signal counts the gateway found, {} when it sent none. (Read by its path, not through a bare
# `input`: the gateway's decision cache keys on the input fields the policy names.)
default signals := {}

signals := input.content.signals if is_object(input.content.signals)

# METADATA
# title: Scan failed
# description: The gateway could not scan the request; its content is unknown, so treated as PHI.
scan_failed if input.content.error == true

# METADATA
# title: PHI detected
# description: The request carries at least one PHI signal, or its scan failed.
phi_detected if {
	some kind, n in signals
	kind in phi_types
	n > 0
}

phi_detected if scan_failed

# The signal types present, for flags and the redact verdict.
present := {kind | some kind, n in signals; n > 0}
