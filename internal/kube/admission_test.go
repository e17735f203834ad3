package kube_test

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func vwc(timeout int32) *admissionregistrationv1.ValidatingWebhookConfiguration {
	url := "https://10.0.0.10:9765/k8s-admission"
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "falco-k8s.kube-test", Labels: map[string]string{"app.kubernetes.io/managed-by": "falco-k8s"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "falco-k8s.kube-test.enforce.falco-k8s.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			FailurePolicy: &ignore, SideEffects: &none, TimeoutSeconds: &timeout, AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

// TestValidatingWebhook: apply creates, applying again updates, delete removes and deleting
// what is gone is not an error, against the real kube-apiserver.
func TestValidatingWebhook(t *testing.T) {
	c, cs := controlPlane(t)
	ctx := context.Background()
	if err := c.ApplyValidatingWebhook(ctx, vwc(5)); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyValidatingWebhook(ctx, vwc(7)); err != nil {
		t.Fatal(err)
	}
	got, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "falco-k8s.kube-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Webhooks) != 1 || *got.Webhooks[0].TimeoutSeconds != 7 {
		t.Fatalf("webhooks after the second apply: %+v", got.Webhooks)
	}
	for range 2 {
		if err := c.DeleteValidatingWebhook(ctx, "falco-k8s.kube-test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "falco-k8s.kube-test", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}
