package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

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

// saNamespaceFile is where kubelet mounts the pod's namespace with its service account.
var saNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

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
	pod, ns := podIdentity(cfg)
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

// podIdentity resolves the pod name and namespace: config, then the downward-API variables,
// then what every pod has (its host name, its service account's namespace file).
func podIdentity(cfg config.Kubernetes) (pod, ns string) {
	pod, ns = cfg.PodName, cfg.Namespace
	if pod == "" {
		pod = os.Getenv("POD_NAME")
	}
	if pod == "" && kube.InCluster() {
		pod, _ = os.Hostname()
	}
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if b, err := os.ReadFile(saNamespaceFile); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	return pod, ns
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
