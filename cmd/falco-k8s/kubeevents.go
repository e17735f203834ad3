package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/internal/kube"
)

// Event reasons the agent records on its pod.
const (
	ReasonArtifactsAccepted = "ArtifactsAccepted"
	ReasonArtifactsIgnored  = "ArtifactsIgnored"
)

// kubeEvents sets opts.OnChange to record accepted/ignored rulesets as Kubernetes Events on the
// agent's pod when kubernetes.events asks for it (see default.yaml). It returns a stop function
// that flushes what is queued (a few seconds at most) once the agent has stopped.
func kubeEvents(cfg config.Kubernetes, opts *agent.Options, log zerolog.Logger) (stop func(), err error) {
	noop := func() {}
	if cfg.Events == "false" {
		return noop, nil
	}
	required := cfg.Events == "true"
	if !required && cfg.Kubeconfig == "" && !kube.InCluster() {
		return noop, nil
	}
	pod, ns := kube.PodIdentity(cfg.PodName, cfg.Namespace)
	if pod == "" || ns == "" {
		err := errors.New("kubernetes events: cannot tell which pod the agent runs in: set kubernetes.pod_name and kubernetes.namespace (or $POD_NAME and $POD_NAMESPACE)")
		if required {
			return nil, err
		}
		log.Info().Err(err).Msg("kubernetes events off")
		return noop, nil
	}
	client, err := kube.NewFor(cfg.Kubeconfig)
	if err != nil {
		if required {
			return nil, fmt.Errorf("kubernetes events: %w", err)
		}
		log.Warn().Err(err).Msg("kubernetes events off: no client")
		return noop, nil
	}
	elog := log.With().Str("component", "kube-events").Logger()
	rec := kube.NewRecorder(client, ns, pod, 64, elog)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	opts.OnChange = func(ch status.Change) {
		if reason, msg, typ, ok := changeEvent(ch); ok {
			rec.Record(reason, msg, typ)
		}
	}
	elog.Info().Str("pod", pod).Str("namespace", ns).Msg("recording ruleset changes as kubernetes events")
	return func() { cancel(); <-done }, nil
}

// changeEvent turns a ruleset change into an event. Loading the configured files at start-up
// is not a change anyone acts on, so it is not recorded; a start-up that had to set persisted
// artifacts aside is.
func changeEvent(ch status.Change) (reason, msg, typ string, ok bool) {
	from := ch.Origin
	if ch.Ref != "" {
		from += " " + ch.Ref
		if ch.Digest != "" {
			from += "@" + ch.Digest
		}
	}
	// The candidate's diff against the running ruleset, when known (followed artifacts).
	changes := ""
	if ch.Diff != nil {
		changes = "; changes: " + ch.Diff.Summary()
	}
	if ch.Accepted {
		if ch.Trigger == agent.TriggerStartup {
			return "", "", "", false
		}
		return ReasonArtifactsAccepted, fmt.Sprintf("ruleset generation %d loaded from %s (%s)%s",
			ch.Generation, from, ch.Trigger, changes), kube.EventNormal, true
	}
	return ReasonArtifactsIgnored, fmt.Sprintf("candidate from %s (%s) ignored; generation %d keeps running: %s%s",
		from, ch.Trigger, ch.Generation, ch.Reason, changes), kube.EventWarning, true
}
