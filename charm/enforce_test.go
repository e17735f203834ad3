package charm

import (
	"context"
	"errors"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

func TestParseEnforce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     map[string]any
		want    Enforce
		wantErr string
	}{
		{name: "default off", raw: map[string]any{}, want: Enforce{Mode: "off"}},
		{name: "names, tags, priority", raw: map[string]any{"enforce-mode": "Deny",
			"enforce-rules": "Privileged Container Started in Pod, tag:mitre_execution\npriority:CRITICAL,Exec or Attach Into Pod"},
			want: Enforce{Mode: "deny", Rules: []string{"Privileged Container Started in Pod", "Exec or Attach Into Pod"},
				Tags: []string{"mitre_execution"}, MinPriority: "critical"}},
		{name: "managed", raw: map[string]any{"enforce-mode": "warn", "enforce-rules": "tag:k8s", "manage-admission-webhook": true},
			want: Enforce{Mode: "warn", Tags: []string{"k8s"}, Manage: true}},
		{name: "bad mode", raw: map[string]any{"enforce-mode": "on"}, wantErr: `invalid config enforce-mode: "on" is not off, warn or deny`},
		{name: "nothing selected", raw: map[string]any{"enforce-mode": "warn"}, wantErr: "enforce-mode is warn but no rule is selected"},
		{name: "bad priority", raw: map[string]any{"enforce-rules": "priority:severe"}, wantErr: `enforce-rules: "priority:severe": want one priority:LEVEL`},
		{name: "two priorities", raw: map[string]any{"enforce-rules": "priority:error, priority:critical"}, wantErr: "want one priority:LEVEL"},
		{name: "empty tag", raw: map[string]any{"enforce-rules": "tag: "}, wantErr: "empty tag"},
		{name: "manage type", raw: map[string]any{"manage-admission-webhook": "yes"}, wantErr: "manage-admission-webhook: want true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings(tc.raw, "falco-k8s")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := s.Enforce
			if g.Mode != tc.want.Mode || strings.Join(g.Rules, "|") != strings.Join(tc.want.Rules, "|") ||
				strings.Join(g.Tags, "|") != strings.Join(tc.want.Tags, "|") || g.MinPriority != tc.want.MinPriority || g.Manage != tc.want.Manage {
				t.Errorf("got %+v, want %+v", g, tc.want)
			}
		})
	}
}

// TestBuildDesiredAdmission: the settings become the agent's admission section, which the agent's
// own validation accepts.
func TestBuildDesiredAdmission(t *testing.T) {
	s, err := ParseSettings(map[string]any{"enforce-mode": "deny", "enforce-rules": "Privileged Container Started in Pod, priority:critical"}, "falco-k8s")
	if err != nil {
		t.Fatal(err)
	}
	d, err := BuildDesired(s, Creds{}, Env{App: "falco-k8s", Model: "audit", Unit: "falco-k8s/0"}, "/bin/true", "id")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admission:", "mode: deny", "- Privileged Container Started in Pod", "min_priority: critical", "path: /k8s-admission"} {
		if !strings.Contains(string(d.AgentConfig), want) {
			t.Errorf("agent config lacks %q:\n%s", want, d.AgentConfig)
		}
	}
}

// recordingKube is the charm's Kube plus AdmissionKube, recording what the charm asks.
type recordingKube struct {
	calls   []string
	applied *admissionregistrationv1.ValidatingWebhookConfiguration
}

func (k *recordingKube) SecretKey(context.Context, string, string, string) ([]byte, error) {
	return nil, ErrSecretNotFound
}
func (k *recordingKube) ServiceClusterIP(context.Context, string, string) (string, error) {
	return "10.152.183.7", nil
}
func (k *recordingKube) ApplyValidatingWebhook(_ context.Context, w *admissionregistrationv1.ValidatingWebhookConfiguration) error {
	k.calls = append(k.calls, "apply "+w.Name)
	k.applied = w
	return nil
}
func (k *recordingKube) DeleteValidatingWebhook(_ context.Context, name string) error {
	k.calls = append(k.calls, "delete "+name)
	return nil
}

func TestManagedAdmissionWebhook(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	for _, tc := range []struct {
		name    string
		enforce Enforce
		ca      []byte
		want    string
		blocked string
	}{
		{name: "not managed: untouched", enforce: Enforce{Mode: "deny", Rules: []string{"x"}}, ca: ca, want: ""},
		{name: "managed, deny: applied", enforce: Enforce{Mode: "deny", Rules: []string{"x"}, Manage: true}, ca: ca, want: "apply falco-k8s.audit"},
		{name: "managed, off: deleted", enforce: Enforce{Mode: "off", Manage: true}, ca: ca, want: "delete falco-k8s.audit"},
		{name: "managed without TLS: blocked", enforce: Enforce{Mode: "warn", Tags: []string{"k8s"}, Manage: true}, blocked: "needs webhook-tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &recordingKube{}
			c := &Context{Env: Env{App: "falco-k8s", Model: "audit"}, NewKube: func() (Kube, error) { return k, nil }}
			err := c.syncAdmissionWebhook(context.Background(), &Settings{WebhookPort: 9765, Enforce: tc.enforce}, tc.ca)
			var be *blockedError
			if tc.blocked != "" {
				if !errors.As(err, &be) || !strings.Contains(be.msg, tc.blocked) {
					t.Fatalf("err %v, want blocked %q", err, tc.blocked)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(k.calls, ";"); got != tc.want {
				t.Fatalf("calls %q, want %q", got, tc.want)
			}
			if k.applied != nil {
				wh := k.applied.Webhooks[0]
				if *wh.ClientConfig.URL != "https://10.152.183.7:9765/k8s-admission" || string(wh.ClientConfig.CABundle) != string(ca) ||
					*wh.FailurePolicy != admissionregistrationv1.Ignore || wh.NamespaceSelector.MatchExpressions[0].Values[1] != "audit" {
					t.Errorf("applied %+v", wh)
				}
			}
		})
	}
	// remove deletes whatever the settings say.
	k := &recordingKube{}
	c := &Context{Env: Env{App: "falco-k8s", Model: "audit"}, NewKube: func() (Kube, error) { return k, nil }}
	if err := c.RemoveAdmissionWebhook(context.Background()); err != nil || strings.Join(k.calls, ";") != "delete falco-k8s.audit" {
		t.Fatalf("remove: %v %q", err, k.calls)
	}
}
