package hooks

// upgrade-charm follows `juju refresh`. The new charm binary has a new identity, so reconcile
// pushes it and restarts the agent; the accepted rules live in the agent's state directory in
// the container and are loaded again at start-up, so the upgrade keeps them.
func init() { register("upgrade-charm", reconcile) }
