package main

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/internal/kube"
)

func TestChangeEvent(t *testing.T) {
	if _, _, _, ok := changeEvent(status.Change{Origin: agent.OriginFile, Trigger: agent.TriggerStartup, Accepted: true, Generation: 1}); ok {
		t.Error("the start-up load became an event")
	}
	reason, msg, typ, ok := changeEvent(status.Change{Origin: "follower", Trigger: agent.TriggerCandidate,
		Ref: "ghcr.io/org/rules:1", Digest: "sha256:ab", Accepted: true, Generation: 4})
	if !ok || reason != ReasonArtifactsAccepted || typ != "Normal" || msg != "ruleset generation 4 loaded from follower ghcr.io/org/rules:1@sha256:ab (candidate)" {
		t.Errorf("accepted: %q %q %q %v", reason, msg, typ, ok)
	}
	reason, msg, typ, ok = changeEvent(status.Change{Origin: "follower", Trigger: agent.TriggerStartup,
		Accepted: false, Generation: 1, Reason: "rules.yaml:3:1: error: bad"})
	if !ok || reason != ReasonArtifactsIgnored || typ != "Warning" || !strings.HasSuffix(msg, "generation 1 keeps running: rules.yaml:3:1: error: bad") {
		t.Errorf("ignored: %q %q %q %v", reason, msg, typ, ok)
	}
	// The guard's refusal carries the candidate's diff into the event.
	diff := &status.RulesetDiff{Disabled: []string{"Create Privileged Pod"},
		SwitchedOff: []status.SwitchedOff{{Rule: "Create Privileged Pod", Why: "disabled"}}}
	_, msg, _, _ = changeEvent(status.Change{Origin: "follower", Trigger: agent.TriggerCandidate, Accepted: false,
		Generation: 2, Reason: `candidate would switch off 1 active rule: "Create Privileged Pod" (disabled)`, Diff: diff})
	if !strings.HasSuffix(msg, `; changes: rules: 1 disabled ("Create Privileged Pod")`) {
		t.Errorf("ignored with diff: %q", msg)
	}
}

func TestKubeEventsSelection(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	kube.ServiceAccountNamespaceFile = "/nonexistent"
	log := zerolog.Nop()

	// Outside a cluster, auto is off and leaves OnChange alone.
	var opts agent.Options
	stop, err := kubeEvents(config.Kubernetes{Events: "auto"}, &opts, log)
	if err != nil || opts.OnChange != nil {
		t.Fatalf("auto outside a cluster: %v, OnChange set %v", err, opts.OnChange != nil)
	}
	stop()

	// true without a pod identity is a start-up error naming the keys to set.
	if _, err := kubeEvents(config.Kubernetes{Events: "true"}, &opts, log); err == nil || !strings.Contains(err.Error(), "kubernetes.pod_name") {
		t.Fatalf("events=true without a pod: %v", err)
	}

	// In a cluster, the downward-API variables name the pod.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("POD_NAME", "falco-k8s-0")
	t.Setenv("POD_NAMESPACE", "model")
	if pod, ns := kube.PodIdentity("", ""); pod != "falco-k8s-0" || ns != "model" {
		t.Fatalf("podIdentity = %q, %q", pod, ns)
	}
	if pod, ns := kube.PodIdentity("p", "n"); pod != "p" || ns != "n" {
		t.Fatalf("config wins: %q, %q", pod, ns)
	}
}
