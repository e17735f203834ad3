package agent

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
)

// admissionUnavailable is the status message when admission.mode asks for enforcement that
// engine: falco does not have.
const admissionUnavailable = "admission enforcement is a falco-k8s-engine feature: with engine: falco the events are evaluated by Falco, which has no admission webhook, so admission.mode has no effect; set engine: falco-k8s to enforce"

// engineInfo is /status's engine.
func (a *Agent) engineInfo() status.Engine {
	if a.falco == nil {
		return status.Engine{Name: EngineFalcoK8s, Version: a.opts.Version}
	}
	e := status.Engine{Name: EngineFalco, Version: a.falco.version, RulesDir: a.falco.dir, LastRefusal: a.falco.lastRefusal()}
	if a.cfg.Admission.Mode != "off" {
		e.Admission = admissionUnavailable
	}
	return e
}

// serveFalcoAlerts is POST /falco/alerts/<token>: Falco's http_output posting its JSON alerts
// (one per request; a body of several, one per line, is taken too). They go to the journal, the
// metrics and every output but stdout (Falco prints there itself), exactly like the engine's
// alerts. The token is compared in constant time and never logged or echoed.
func (a *Agent) serveFalcoAlerts(w http.ResponseWriter, r *http.Request) {
	tok := a.falcoToken.Load()
	if tok == nil || subtle.ConstantTimeCompare([]byte(r.PathValue("token")), *tok) != 1 {
		status.WriteError(w, http.StatusUnauthorized, "unauthorized: the path must end in the token of falco.alerts_token_file")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.cfg.Falco.MaxAlertSize)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over falco.max_alert_size (%d bytes)", mbe.Limit))
			return
		}
		status.WriteError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	alerts, err := ParseFalcoAlerts(body)
	if err != nil {
		a.log.Warn().Err(err).Msg("refused alerts from Falco")
		status.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	extra := a.extraFields()
	for _, al := range alerts {
		if al.Rule == HotRestartFailureRule && al.Source == "internal" {
			// Falco's own report of a reload its dry run refused (structured: rule and source).
			a.falco.noteReloadFailure(r.Context(), time.Now(), al.Output)
			a.log.Error().Str("falco", al.Output).Str("recheck", a.falco.lastRefusal().Recheck).Msg("Falco refused to reload its rules")
		}
		a.m.Alert(al.Rule, al.Priority.String())
		a.outs.Send(al.outputAlert(extra))
	}
	w.WriteHeader(http.StatusNoContent)
}

// FalcoAlert is one of Falco's JSON alerts as received.
type FalcoAlert struct {
	engine.AlertJSON
	Priority engine.Priority
	raw      []byte // compact, as Falco sent it
}

// ParseFalcoAlerts decodes a body of Falco JSON alerts: one object, or one per line. Each needs
// a rule, a known priority and an output; output_fields' numbers keep their digits (evt.time is
// a nanosecond count beyond float64's precision).
func ParseFalcoAlerts(body []byte) ([]*FalcoAlert, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out []*FalcoAlert
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("alert %d: not JSON: %w", n, err)
		}
		var al FalcoAlert
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&al.AlertJSON); err != nil {
			return nil, fmt.Errorf("alert %d: not a Falco JSON alert: %w", n, err)
		}
		if al.Rule == "" || al.Output == "" {
			return nil, fmt.Errorf("alert %d: a Falco JSON alert needs \"rule\" and \"output\"", n)
		}
		p, err := engine.ParsePriority(al.AlertJSON.Priority)
		if err != nil {
			return nil, fmt.Errorf("alert %d: %w", n, err)
		}
		al.Priority = p
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			return nil, fmt.Errorf("alert %d: %w", n, err)
		}
		al.raw = c.Bytes()
		out = append(out, &al)
	}
	if len(out) == 0 {
		return nil, errors.New("no alert in the body")
	}
	return out, nil
}

// outputAlert is the alert for the outputs: Falco's JSON unchanged, or with outputs.output_fields
// added to output_fields (the rule's own field of the same name wins, as for engine alerts).
func (al *FalcoAlert) outputAlert(extra []engine.AlertField) *output.Alert {
	o := &output.Alert{Rule: al.Rule, Priority: al.Priority, Text: al.Output, JSON: al.raw}
	if len(extra) == 0 {
		return o
	}
	doc := al.AlertJSON
	fields := make(map[string]any, len(doc.OutputFields)+len(extra))
	for _, f := range extra {
		fields[f.Key] = f.Value
	}
	for k, v := range doc.OutputFields {
		fields[k] = v
	}
	doc.OutputFields = fields
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(doc) == nil {
		o.JSON = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	return o
}
