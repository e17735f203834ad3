package agent

import (
	"github.com/falco-k8s/falco-k8s/agent/admission"
	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/engine"
)

// newAdmission builds the validating admission webhook (agent/admission) on the running ruleset
// and the agent's outputs and metrics. Validate has checked the values.
func (a *Agent) newAdmission() *admission.Handler {
	c := a.cfg.Admission
	mode, _ := admission.ParseMode(c.Mode)
	policy, _ := admission.ParseFailurePolicy(c.FailurePolicy)
	needJSON := a.outs.NeedJSON()
	return admission.New(admission.Config{
		Mode: mode, FailurePolicy: policy, MaxBodySize: int64(c.MaxBodySize), MaxInflight: c.MaxInflight, Wait: c.Wait,
		Select:   admission.Selector{Rules: c.Enforce.Rules, Tags: c.Enforce.Tags, MinPriority: c.Enforce.MinPriority},
		Hostname: a.hostname,
	}, admission.Deps{
		Ruleset: func() *engine.Ruleset {
			if act := a.cur.Load(); act != nil {
				return act.rs
			}
			return nil
		},
		Send: func(al *engine.Alert) {
			a.m.Alert(al.Rule, al.Priority.String())
			a.outs.Send(output.FromEngine(al, needJSON))
		},
		Registerer: a.m.Registry,
		Log:        a.log.With().Str("component", "admission").Logger(),
	})
}
