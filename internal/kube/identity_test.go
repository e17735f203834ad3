package kube

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPodIdentity(t *testing.T) {
	saFile := filepath.Join(t.TempDir(), "namespace")
	if err := os.WriteFile(saFile, []byte("from-sa\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name            string
		cfgPod, cfgNS   string
		env             map[string]string
		sa              string
		wantPod, wantNS string
	}{
		{name: "configured values win", cfgPod: "p", cfgNS: "n", env: map[string]string{"POD_NAME": "e", "POD_NAMESPACE": "e"}, sa: saFile, wantPod: "p", wantNS: "n"},
		{name: "downward API", env: map[string]string{"POD_NAME": "falco-k8s-0", "POD_NAMESPACE": "model"}, sa: saFile, wantPod: "falco-k8s-0", wantNS: "model"},
		{name: "in a cluster: host name and service account namespace", env: map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, sa: saFile, wantPod: host, wantNS: "from-sa"},
		{name: "outside a cluster: nothing", sa: filepath.Join(t.TempDir(), "missing")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"POD_NAME", "POD_NAMESPACE", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} {
				t.Setenv(k, tc.env[k])
			}
			old := ServiceAccountNamespaceFile
			ServiceAccountNamespaceFile = tc.sa
			t.Cleanup(func() { ServiceAccountNamespaceFile = old })
			if pod, ns := PodIdentity(tc.cfgPod, tc.cfgNS); pod != tc.wantPod || ns != tc.wantNS {
				t.Fatalf("PodIdentity = %q, %q; want %q, %q", pod, ns, tc.wantPod, tc.wantNS)
			}
		})
	}
}
