package hooks

import (
	"context"
	"errors"

	"github.com/falco-k8s/falco-k8s/charm"
)

// remove: the unit is being removed. The opened port belongs to the application's Service and
// stays for the remaining units; nothing is pushed or replanned into the terminating pod. The
// admission webhook configuration is deleted whatever the settings say, so a removed
// application never leaves behind a webhook that blocks the cluster; when other units remain,
// their next reconcile re-creates it.
func init() { register("remove", remove) }

func remove(ctx context.Context, c *charm.Context) error {
	err := terminating("removing")(ctx, c)
	return errors.Join(err, c.RemoveAdmissionWebhook(ctx))
}
