package hooks

// start also fires after a pod restart, sometimes with no config-changed: the new container
// has none of the pushed files, and reconcile puts them back.
func init() { register("start", reconcile) }
