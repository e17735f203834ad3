package kube

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ApplyValidatingWebhook creates the ValidatingWebhookConfiguration, or replaces the webhooks
// of the existing one with the same name (the charm-managed admission webhook).
func (c *Client) ApplyValidatingWebhook(ctx context.Context, want *admissionregistrationv1.ValidatingWebhookConfiguration) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	api := c.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: Component}); err != nil {
			return fmt.Errorf("create ValidatingWebhookConfiguration %s: %w", want.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get ValidatingWebhookConfiguration %s: %w", want.Name, err)
	}
	cur.Labels, cur.Webhooks = want.Labels, want.Webhooks
	if _, err := api.Update(ctx, cur, metav1.UpdateOptions{FieldManager: Component}); err != nil {
		return fmt.Errorf("update ValidatingWebhookConfiguration %s: %w", want.Name, err)
	}
	return nil
}

// DeleteValidatingWebhook deletes the ValidatingWebhookConfiguration; one that does not exist is
// not an error.
func (c *Client) DeleteValidatingWebhook(ctx context.Context, name string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	err := c.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ValidatingWebhookConfiguration %s: %w", name, err)
	}
	return nil
}
