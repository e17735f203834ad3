package kube

import (
	"os"
	"strings"
)

// ServiceAccountNamespaceFile is where kubelet mounts the pod's namespace with its service
// account (a variable for tests).
var ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// PodIdentity resolves the name and namespace of the pod this process runs in: the configured
// values, then the downward-API variables ($POD_NAME, $POD_NAMESPACE), then what every pod has
// (its host name in a cluster, its service account's namespace file). Either may come back
// empty when nothing tells.
func PodIdentity(pod, ns string) (string, string) {
	if pod == "" {
		pod = os.Getenv("POD_NAME")
	}
	if pod == "" && InCluster() {
		pod, _ = os.Hostname()
	}
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if b, err := os.ReadFile(ServiceAccountNamespaceFile); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	return pod, ns
}
