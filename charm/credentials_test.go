package charm

import (
	"context"
	"strings"
	"testing"
)

// secretTools answers secret-get from a map; the other tools are not used.
type secretTools struct {
	Tools
	content map[string]string
}

func (t secretTools) SecretGet(context.Context, string, bool) (map[string]string, error) {
	return t.content, nil
}

// Only the password of keyed registry-credentials is a credential: the registry host must stay
// visible, because the active status names the registry that refused.
func TestRegistryCredentialsRedactOnlyThePassword(t *testing.T) {
	c := &Context{Env: Env{App: "falco-k8s", Model: "audit"}, Tools: secretTools{content: map[string]string{
		"registry": "ghcr.io", "username": "falco", "password": "pw-123456"}}}
	cr, err := c.Credentials(context.Background(), &Settings{RegistryCredentials: "secret:d0nhl5nmp25c7f2pu3b0"})
	if err != nil {
		t.Fatal(err)
	}
	if cr.RegistryAuth != "ghcr.io,falco,pw-123456" {
		t.Errorf("registry auth %q", cr.RegistryAuth)
	}
	msg := "41 rules (built-in); registry ghcr.io refused the credentials (unauthorized); waiting for the falco container"
	if got := c.Redact(msg); got != msg {
		t.Errorf("status redacted beyond the password:\n got %q\nwant %q", got, msg)
	}
	if got := c.Redact("login with pw-123456 failed"); strings.Contains(got, "pw-123456") {
		t.Errorf("password not redacted: %q", got)
	}
}
