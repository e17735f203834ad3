package hooks

// leader-elected: the charm keeps no leader-only state (every unit follows the same references
// independently), so this is an ordinary reconcile.
func init() { register("leader-elected", reconcile) }
