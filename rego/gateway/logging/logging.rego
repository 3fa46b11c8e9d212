# METADATA
# title: Logging level
# description: |
#   "content" lets the gateway log prompts and completions; "metadata" limits
#   logs to tokens, provider, model, use case, status and latency. Content only
#   for a team that opted in, and only for requests classified "none": PHI and
#   PII are always metadata.
package gateway.logging

default level(_, _) := "metadata"

level(team, classification) := "content" if {
	team.log_content == true
	classification == "none"
}
