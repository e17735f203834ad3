package charmtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// TestIndexEntrySigner: a falcoctl index entry's signature.cosign identity and issuer apply to
// the name resolved through it, end to end (charm binary, Pebble, agent, the reference registry,
// a keyless cosign v3 bundle from the test Sigstore and rules-trusted-root as the only signature
// option): the artifact signed by that identity is accepted and show-rules names its signer;
// once the index names another identity, a new digest signed by the first is ignored with the
// reason, the running artifact stays, and its signer is still reported by the restarted agent.
func TestIndexEntrySigner(t *testing.T) {
	const identity = "https://github.com/acme/rules/.github/workflows/release.yaml@refs/heads/main"
	const issuer = "https://token.actions.githubusercontent.com"
	vs := signaturetest.NewSigstore(t)
	reg := testregistry.New(t, testregistry.Options{})
	c, err := oci.NewClient(oci.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ref.Parse(reg.Host + "/acme/k8s-rules:2")
	push := func(version string) string {
		t.Helper()
		d := pushRules(t, reg, "", "", "acme/k8s-rules:2", map[string]string{"k8s_audit_rules.yaml": strings.ReplaceAll(rulesArtifact, "charm-test", version)})
		signaturetest.AttachBundle(t, c, r, d, signaturetest.KeylessBundle(t, vs, identity, issuer, reg.Host+"/acme/k8s-rules", d))
		return d
	}
	d1 := push("charm-test-1")
	idx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := identity
		if req.URL.Path == "/other.yaml" {
			id = "https://github.com/acme/rules/.github/workflows/other.yaml@refs/heads/main"
		}
		fmt.Fprintf(w, "- name: charm-rules\n  type: rulesfile\n  registry: %s\n  repository: acme/k8s-rules\n  description: test\n  home: https://example.com\n"+
			"  keywords: [k8s]\n  license: apache-2.0\n  maintainers: []\n  sources: []\n  signature:\n    cosign:\n"+
			"      certificate-oidc-issuer: %s\n      certificate-identity: %s\n", reg.Host, issuer, id)
	}))
	defer idx.Close()
	u := newUnit(t, unitOpts{})
	u.config(map[string]any{"rules-artifacts": "charm-rules:2", "indexes": "test," + idx.URL + "/index.yaml", "plain-http-registries": reg.Host,
		"rules-trusted-root": string(signaturetest.TrustedRootJSON(t, vs))})
	u.hook("install")
	waitActive(t, u, "k8s-rules@"+d1[:len("sha256:")+12])
	signer := "cosign keyless " + identity + " (issuer " + issuer + ")"
	wantSigner := func(when string) {
		t.Helper()
		res := u.action("show-rules", map[string]any{"format": "json", "filter": "charm test"})
		if want := reg.Host + "/acme/k8s-rules:2@" + d1 + ": " + signer; res["signers"] != want {
			t.Fatalf("%s: show-rules signers %q, want %q", when, res["signers"], want)
		}
	}
	wantSigner("accepted")

	started := u.agentStatus().StartedAt
	u.config(map[string]any{"indexes": "test," + idx.URL + "/other.yaml"})
	u.hook("config-changed")
	if u.agentStatus().StartedAt.Equal(started) {
		t.Fatal("the agent was not restarted with the index's new identity")
	}
	d2 := push("charm-test-2")
	res := u.action("sync-rules", nil)
	ref1 := res["references"].(map[string]any)["ref-1"].(map[string]any)
	if ref1["result"] != "ignored" || ref1["digest"] != d2 || !strings.Contains(fmt.Sprint(ref1["reason"]), "expected SAN value") ||
		!strings.Contains(fmt.Sprint(ref1["reason"]), "other.yaml") {
		t.Fatalf("sync-rules with another identity in the index: %v", res)
	}
	waitActive(t, u, "k8s-rules@"+d1[:len("sha256:")+12])
	wantSigner("after the agent restarted")
}
