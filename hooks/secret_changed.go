package hooks

// secret-changed: a Juju secret the charm uses (registry-credentials, webhook-tls) has a new
// revision. Reconcile reads that secret with --refresh (charm.Context.Credentials) and, when the
// content changed, pushes the new file and restarts the agent.
func init() { register("secret-changed", reconcile) }
