// Package k8saudit is the k8s_audit event source of the engine: it splits webhook and file
// payloads into Kubernetes audit events, parses each event once, and implements the field
// extractors Falco gets from its plugins — the k8saudit plugin's ka.* fields, the json plugin's
// json.* fields with their jevt.* aliases, and libsinsp's generic evt.* fields for plugin events.
//
// The extraction semantics replicate the upstream plugins (k8saudit 0.18, json 0.7) including
// their quirks, because rules written for Falco were tuned against that behaviour: a "fixed"
// field would silently change which events alert. Every replicated upstream bug is called out
// in the field's description and next to its implementation.
//
// # Values and missing fields
//
// An Extractor appends byte-slice values. All ka.* and json.* fields are strings: a JSON string
// yields its unescaped text and any other JSON value its compact re-serialisation (so a JSON null
// is the present string "null"). A field is missing — and every comparison on it is false in
// libsinsp — when the plugin sets no value, hits an extraction error, or produces an empty list.
// Numeric and boolean evt.* values are rendered as decimal text and "true"/"false".
//
// # Memory
//
// Values alias the parser's memory or the event's scratch arena and stay valid until the Event
// is reused for the next audit event. The Decoder reuses one parser, one Event and every
// scratch buffer across events, so decoding and extraction do not allocate in steady state.
package k8saudit
